import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("imports", "0006_items_by_batch_and_row"),
    ]

    operations = [
        migrations.AddField(
            model_name="importjob",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, default=django.utils.timezone.now, null=True),
        ),
        # Jobs from before the heartbeat: their last sign of life is their start (or queueing).
        migrations.RunSQL(
            "UPDATE imports_importjob SET heartbeat_at = coalesce(started_at, created_at)",
            migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name="importitem",
            index=models.Index(
                condition=models.Q(("prior_batch_id__isnull", False)),
                fields=["prior_batch_id"],
                name="item_prior_batch",
            ),
        ),
    ]
