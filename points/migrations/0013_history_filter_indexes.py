"""Indexes for the history filtered by model or by API key, newest first.

Plain CREATE INDEX on both databases: SQLite does not rebuild the table, so the
ledger guard and the roll-up trigger stay installed.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("points", "0012_usage_rollups"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="transaction",
            index=models.Index(
                fields=["account", "model", "-version"],
                name="points_tx_account_model_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="transaction",
            index=models.Index(
                fields=["account", "api_key", "-version"],
                name="points_tx_account_key_idx",
            ),
        ),
    ]
