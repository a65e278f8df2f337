from django.db import migrations

from points import ledger_guard


def reinstall_guard(apps, schema_editor):
    # The guard now stands aside for a connection in maintenance (tests only),
    # instead of relying on database backends of this project's own.
    ledger_guard.install(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("points", "0003_transaction_api_key")]

    operations = [migrations.RunPython(reinstall_guard, migrations.RunPython.noop)]
