from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    # The throttles' shared state lives in the database cache unless REDIS_URL is
    # set; `migrate` alone must leave a working server.
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_api_keys")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
