from django.db import migrations, models

from points import ledger_guard


def reinstall_guard(apps, schema_editor):
    # SQLite rebuilds the table to add a column, and its triggers go with it.
    ledger_guard.install(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("points", "0010_automatic_tiers")]

    operations = [
        migrations.AddField(
            model_name="transaction",
            name="tier",
            field=models.CharField(
                blank=True,
                default="",
                help_text="Code of the tier whose discount the turn was held at.",
                max_length=32,
                verbose_name="tier",
            ),
        ),
        migrations.RunPython(reinstall_guard, migrations.RunPython.noop),
    ]
