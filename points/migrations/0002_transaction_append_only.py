from django.db import migrations

from points import ledger_guard


def install_guard(apps, schema_editor):
    ledger_guard.install(schema_editor.connection)


def remove_guard(apps, schema_editor):
    ledger_guard.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("points", "0001_ledger")]

    operations = [migrations.RunPython(install_guard, remove_guard)]
