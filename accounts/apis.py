"""API keys through the API: list, create (shown once), revoke."""

from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_keys import (
    MAX_ACTIVE_KEYS,
    MAX_NAME_LENGTH,
    create_api_key,
    revoke_api_key,
)
from accounts.models import ApiKey
from common.api import StrictCharField
from common.errors import ServiceError
from common.schema import ERROR_RESPONSES, ErrorSerializer
from points.limits import LimitPeriod
from points.selectors import key_spending

KEY_NAME_REQUIRED_MESSAGE = _("A key needs a name.")
SESSION_ONLY_DESCRIPTION = (
    "Needs a signed-in browser session (with its CSRF token). A request made "
    "with an API key is refused with 403 `session_required`, so that a leaked "
    "key can neither make new keys nor revoke the owner's other keys."
)
SESSION_ONLY_RESPONSES = {
    **ERROR_RESPONSES,
    403: OpenApiResponse(
        ErrorSerializer,
        description="CSRF failure, or `session_required`: called with an API key.",
    ),
}
CREATE_KEY_RESPONSES = {
    **SESSION_ONLY_RESPONSES,
    400: OpenApiResponse(
        ErrorSerializer,
        description=(
            f"Bad request, or the user already has {MAX_ACTIVE_KEYS} active keys."
        ),
    ),
    413: OpenApiResponse(ErrorSerializer, description="Body too large."),
    415: OpenApiResponse(ErrorSerializer, description="The body is not JSON."),
}


class SessionRequired(ServiceError):
    code = "session_required"
    status_code = 403
    default_message = _(
        "Creating or revoking API keys needs a signed-in session (the API keys "
        "page of the website): an API key cannot do it."
    )


def require_session(request: Request) -> None:
    """Refuse a request authenticated by an API key.

    A key that could make keys would let a leaked key outlive its revocation.
    """
    if isinstance(request.auth, ApiKey):
        raise SessionRequired()


class ApiKeySerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(source="is_active")

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "created_at",
            "last_used_at",
            "revoked_at",
            "active",
            "points_limit",
            "limit_period",
            "spent_in_period",
        ]

    spent_in_period = serializers.SerializerMethodField(
        help_text="Points spent through the key in its current limit period "
        "(TIME_ZONE's day, week or month; all time for `none`), including "
        "what its answers in progress hold."
    )

    def get_spent_in_period(self, key: ApiKey) -> int:
        spending = self.context.get("key_spending")
        if spending is None:
            return key_spending([key.pk])[key.pk]
        return spending.get(key.pk, 0)


class ApiKeyListApi(APIView):
    class ApiKeyListInputSerializer(serializers.Serializer):
        # Spaces around the name are removed when the key is made; the length
        # limit counts them, as the schema's maxLength does.
        name = StrictCharField(
            max_length=MAX_NAME_LENGTH,
            trim_whitespace=False,
            validators=[RegexValidator(r"\S", message=KEY_NAME_REQUIRED_MESSAGE)],
            help_text="Any text with a non-space character; spaces around it "
            "are removed.",
        )
        points_limit = serializers.IntegerField(
            required=False, allow_null=True, min_value=1, max_value=10**15
        )
        limit_period = serializers.ChoiceField(
            choices=LimitPeriod.choices, required=False, default=LimitPeriod.NONE
        )

    class ApiKeyListOutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        keys = ApiKeySerializer(many=True)

    class CreatedApiKeySerializer(serializers.Serializer):
        success = serializers.BooleanField()
        key = ApiKeySerializer()
        secret = serializers.CharField(help_text="The full key. It is shown only once.")

    @extend_schema(
        operation_id="api_keys_list",
        responses={200: ApiKeyListOutputSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        keys = list(ApiKey.objects.filter(user=request.user).order_by("-created_at"))
        spending = key_spending([key.pk for key in keys])
        return Response(
            self.ApiKeyListOutputSerializer(
                {"success": True, "keys": keys}, context={"key_spending": spending}
            ).data
        )

    @extend_schema(
        operation_id="api_keys_create",
        description=SESSION_ONLY_DESCRIPTION
        + f" A user has at most {MAX_ACTIVE_KEYS} active keys.",
        request=ApiKeyListInputSerializer,
        responses={201: CreatedApiKeySerializer, **CREATE_KEY_RESPONSES},
    )
    def post(self, request: Request) -> Response:
        require_session(request)
        payload = self.ApiKeyListInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        key, secret = create_api_key(
            user=request.user,
            name=payload.validated_data["name"],
            points_limit=payload.validated_data.get("points_limit"),
            limit_period=payload.validated_data["limit_period"],
        )
        return Response(
            self.CreatedApiKeySerializer(
                {"success": True, "key": key, "secret": secret}
            ).data,
            status=status.HTTP_201_CREATED,
        )


class ApiKeyDetailApi(APIView):
    class RevokedApiKeySerializer(serializers.Serializer):
        success = serializers.BooleanField()
        key = ApiKeySerializer()

    @extend_schema(
        operation_id="api_keys_revoke",
        description=SESSION_ONLY_DESCRIPTION,
        responses={200: RevokedApiKeySerializer, **SESSION_ONLY_RESPONSES},
    )
    def delete(self, request: Request, key_id: int) -> Response:
        require_session(request)
        key = revoke_api_key(user=request.user, key_id=key_id)
        return Response(
            self.RevokedApiKeySerializer({"success": True, "key": key}).data
        )
