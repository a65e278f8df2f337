from django.db import migrations

# A fresh install's packs; staff change or remove them in the admin.
DEFAULT_PACKS = [
    {"name": "Starter", "points": 100_000, "bonus_points": 0, "price": 5_000},
    {"name": "Standard", "points": 200_000, "bonus_points": 10_000, "price": 10_000},
    {"name": "Pro", "points": 600_000, "bonus_points": 60_000, "price": 30_000},
]


def add_default_packs(apps, schema_editor):
    PointPack = apps.get_model("billing", "PointPack")
    if PointPack.objects.exists():
        return
    PointPack.objects.bulk_create(
        PointPack(currency="krw", position=position, **pack)
        for position, pack in enumerate(DEFAULT_PACKS, start=1)
    )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(add_default_packs, migrations.RunPython.noop)]
