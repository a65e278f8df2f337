from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PointsConfig(AppConfig):
    name = "points"
    verbose_name = _("Points")

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from points import ledger_guard, rollup

        connection_created.connect(ledger_guard.prepare_connection)
        connection_created.connect(rollup.on_connection_created)
