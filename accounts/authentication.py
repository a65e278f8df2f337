"""Who calls the API: a personal API key (Bearer) or the browser's session."""

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.api_keys import key_for
from accounts.models import ApiKey, User

INVALID_KEY_MESSAGE = _("The API key is invalid or revoked.")


def bearer_token(authorization: str) -> str | None:
    """Return the token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _separator, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def user_for_bearer(authorization: str) -> tuple[User, ApiKey]:
    """Return the user and key of a Bearer header; raise AuthenticationFailed."""
    token = bearer_token(authorization)
    key = key_for(token) if token else None
    if key is None:
        raise exceptions.AuthenticationFailed(
            INVALID_KEY_MESSAGE, code="invalid_api_key"
        )
    return key.user, key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        authorization = request.headers.get("Authorization", "")
        if not authorization:
            return None
        return user_for_bearer(authorization)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
