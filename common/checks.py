"""Django's deploy checks, for the Django middleware the project subclasses."""

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks.security import base, csrf
from django.test.utils import override_settings

# Ours (common.middleware) and the Django class each subclasses.
SUBCLASSES = {
    "common.middleware.SecurityMiddleware": (
        "django.middleware.security.SecurityMiddleware"
    ),
    "common.middleware.CsrfViewMiddleware": "django.middleware.csrf.CsrfViewMiddleware",
    "common.middleware.XFrameOptionsMiddleware": (
        "django.middleware.clickjacking.XFrameOptionsMiddleware"
    ),
}
# The checks Django runs only when it finds its middleware by that dotted name.
CHECKS = (
    base.check_security_middleware,
    base.check_xframe_options_middleware,
    base.check_sts,
    base.check_sts_include_subdomains,
    base.check_sts_preload,
    base.check_content_type_nosniff,
    base.check_ssl_redirect,
    base.check_xframe_deny,
    base.check_referrer_policy,
    base.check_cross_origin_opener_policy,
    csrf.check_csrf_middleware,
    csrf.check_csrf_cookie_secure,
)


@register(Tags.security, deploy=True)
def subclassed_middleware_checks(app_configs: object, **kwargs: object) -> list:
    """Run Django's deploy checks of its security, CSRF and X-Frame-Options
    middleware with our subclasses standing for them.

    Django finds its middleware by name, so with ours in MIDDLEWARE its own
    checks would pass silently (those that ask for the middleware are silenced
    in settings); these run them as if Django's classes were installed.
    """
    if not any(name in SUBCLASSES for name in settings.MIDDLEWARE):
        return []
    renamed = [SUBCLASSES.get(name, name) for name in settings.MIDDLEWARE]
    found: list[CheckMessage] = []
    with override_settings(MIDDLEWARE=renamed):
        for check in CHECKS:
            found.extend(check(app_configs))
    return found
