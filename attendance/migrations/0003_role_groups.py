from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = ("attendance_employee", "attendance_approver", "attendance_importer", "attendance_admin")
ADMIN_MODELS = {
    "attendance": [
        "organisation",
        "employee",
        "attendancerecord",
        "adjustmentrequest",
        "apitoken",
        "punch",
    ],
    "audit": ["auditevent"],
    "imports": ["importbatch"],
    "auth": ["user"],
}
READ_ONLY = {("audit", "auditevent"), ("attendance", "punch")}


def create_role_groups(apps, schema_editor):
    # Permissions are normally created after migrate; create them now so the admin role
    # can be granted its model permissions in the same step.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name in ROLES:
        Group.objects.get_or_create(name=name)
    admin = Group.objects.get(name="attendance_admin")
    for app_label, models in ADMIN_MODELS.items():
        for model in models:
            actions = ["view"] if (app_label, model) in READ_ONLY else ["view", "add", "change"]
            if (app_label, model) == ("attendance", "apitoken"):
                actions.append("delete")
            admin.permissions.add(
                *Permission.objects.filter(
                    content_type__app_label=app_label,
                    codename__in=[f"{action}_{model}" for action in actions],
                )
            )


def remove_role_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("attendance", "0002_initial"),
        ("audit", "0001_initial"),
        ("imports", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
