from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = _("Buying points")

    def ready(self) -> None:
        from billing.audit import order_problems
        from points.audit import register_check

        register_check(order_problems)
