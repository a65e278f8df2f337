from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts")

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from accounts import schema  # noqa: F401  (registers the API-key scheme)
        from accounts.api_keys import on_key_changed, on_user_changed
        from accounts.models import ApiKey, User
        from common import checks  # noqa: F401  (registers the middleware checks)

        for signal in (post_save, post_delete):
            signal.connect(on_key_changed, sender=ApiKey)
            signal.connect(on_user_changed, sender=User)
