from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PointsConfig(AppConfig):
    name = "points"
    verbose_name = _("Points")

    def ready(self) -> None:
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_delete, post_save

        from points import ledger_guard, rollup
        from points.models import ModelRate
        from points.pricing import on_rate_changed

        connection_created.connect(ledger_guard.prepare_connection)
        connection_created.connect(rollup.on_connection_created)
        post_save.connect(on_rate_changed, sender=ModelRate)
        post_delete.connect(on_rate_changed, sender=ModelRate)
