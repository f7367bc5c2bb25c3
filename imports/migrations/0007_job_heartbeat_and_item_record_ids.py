import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("imports", "0006_items_by_batch_and_row"),
        ("attendance", "0004_lean_import_indexes"),
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
        # Rollback now finds a batch's days by primary key: inserted days get theirs (the
        # apply writes it from now on), for batches that are still committed.
        migrations.RunSQL(
            """
            UPDATE imports_importitem i SET record_id = a.id
            FROM imports_importbatch b, attendance_attendancerecord a
            WHERE b.id = i.batch_id AND b.status = 'committed'
              AND i.action = 'inserted' AND i.record_id IS NULL
              AND a.employee_id = i.employee_id AND a.work_date = i.work_date
              AND a.batch_id = i.batch_id
            """,
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
