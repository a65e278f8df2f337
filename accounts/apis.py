"""API keys through the API: list, create (shown once), revoke."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_keys import create_api_key, revoke_api_key
from accounts.models import ApiKey
from eora.schema import ERROR_RESPONSES


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
        ]


class ApiKeyListApi(APIView):
    class ApiKeyListInputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)

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
        keys = ApiKey.objects.filter(user=request.user).order_by("-created_at")
        return Response(
            self.ApiKeyListOutputSerializer({"success": True, "keys": keys}).data
        )

    @extend_schema(
        operation_id="api_keys_create",
        request=ApiKeyListInputSerializer,
        responses={201: CreatedApiKeySerializer, **ERROR_RESPONSES},
    )
    def post(self, request: Request) -> Response:
        payload = self.ApiKeyListInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        key, secret = create_api_key(
            user=request.user, name=payload.validated_data["name"]
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
        responses={200: RevokedApiKeySerializer, **ERROR_RESPONSES},
    )
    def delete(self, request: Request, key_id: int) -> Response:
        key = revoke_api_key(user=request.user, key_id=key_id)
        return Response(
            self.RevokedApiKeySerializer({"success": True, "key": key}).data
        )
