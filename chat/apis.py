"""Conversations through the API: list, read with messages, delete."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.models import Conversation, Message
from chat.selectors import conversation_for, conversations_for
from chat.services import delete_conversation
from eora.schema import ERROR_RESPONSES

CONVERSATIONS_DEFAULT_LIMIT = 20
CONVERSATIONS_MAX_LIMIT = 100


class ConversationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Conversation
        fields = ["id", "title", "created_at", "updated_at"]


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id",
            "role",
            "content",
            "model",
            "status",
            "prompt_tokens",
            "completion_tokens",
            "points_charged",
            "created_at",
        ]


class ConversationListApi(APIView):
    class ConversationPageFilterSerializer(serializers.Serializer):
        limit = serializers.IntegerField(
            min_value=1,
            max_value=CONVERSATIONS_MAX_LIMIT,
            default=CONVERSATIONS_DEFAULT_LIMIT,
        )
        before = serializers.DateTimeField(
            required=False, help_text="`next_cursor` of the previous page."
        )

    class ConversationPageSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        conversations = ConversationSerializer(many=True)
        next_cursor = serializers.DateTimeField(allow_null=True)

    @extend_schema(
        operation_id="conversations_list",
        parameters=[ConversationPageFilterSerializer],
        responses={200: ConversationPageSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        filters = self.ConversationPageFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        limit = filters.validated_data["limit"]
        rows = conversations_for(request.user)
        if "before" in filters.validated_data:
            rows = rows.filter(updated_at__lt=filters.validated_data["before"])
        page = list(rows[: limit + 1])
        more = len(page) > limit
        page = page[:limit]
        return Response(
            self.ConversationPageSerializer(
                {
                    "success": True,
                    "conversations": page,
                    "next_cursor": page[-1].updated_at if more else None,
                }
            ).data
        )


class ConversationDetailApi(APIView):
    class ConversationDetailSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        conversation = ConversationSerializer()
        messages = MessageSerializer(many=True)

    class DeletedConversationSerializer(serializers.Serializer):
        success = serializers.BooleanField()

    @extend_schema(
        operation_id="conversations_read",
        responses={200: ConversationDetailSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        conversation = conversation_for(request.user, conversation_id)
        return Response(
            self.ConversationDetailSerializer(
                {
                    "success": True,
                    "conversation": conversation,
                    "messages": conversation.messages.order_by("created_at", "id"),
                }
            ).data
        )

    @extend_schema(
        operation_id="conversations_delete",
        responses={200: DeletedConversationSerializer, **ERROR_RESPONSES},
    )
    def delete(self, request: Request, conversation_id: str) -> Response:
        delete_conversation(user=request.user, conversation_id=conversation_id)
        return Response({"success": True})
