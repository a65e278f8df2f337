"""Conversations through the API: list, read with messages, delete."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.models import Conversation, Message
from chat.selectors import CONVERSATION_ORDERING, conversation_for, conversations_for
from chat.services import delete_conversation, rename_conversation
from common.api import QuerySerializer
from common.pagination import CursorPage
from common.schema import ERROR_RESPONSES, PAGE_CURSOR_HELP

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
    class ConversationPageFilterSerializer(QuerySerializer):
        limit = serializers.IntegerField(
            min_value=1,
            max_value=CONVERSATIONS_MAX_LIMIT,
            default=CONVERSATIONS_DEFAULT_LIMIT,
        )
        # Decoded by CursorPage; declared here to be checked and documented.
        before = serializers.CharField(required=False, help_text=PAGE_CURSOR_HELP)

    class ConversationPageSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        conversations = ConversationSerializer(many=True)
        next_cursor = serializers.CharField(
            allow_null=True, help_text="`before` of the next page; null on the last."
        )

    @extend_schema(
        operation_id="conversations_list",
        parameters=[ConversationPageFilterSerializer],
        responses={200: ConversationPageSerializer, **ERROR_RESPONSES},
    )
    def get(self, request: Request) -> Response:
        filters = self.ConversationPageFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        pages = CursorPage(
            ordering=CONVERSATION_ORDERING,
            cursor_query_param="before",
            page_size=filters.validated_data["limit"],
        )
        page = pages.paginate_queryset(conversations_for(request.user), request)
        return Response(
            self.ConversationPageSerializer(
                {
                    "success": True,
                    "conversations": page,
                    "next_cursor": pages.next_cursor(),
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

    class ConversationRenameInputSerializer(serializers.Serializer):
        title = serializers.CharField(
            max_length=Conversation._meta.get_field("title").max_length
        )

    class RenamedConversationSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        conversation = ConversationSerializer()

    @extend_schema(
        operation_id="conversations_rename",
        request=ConversationRenameInputSerializer,
        responses={200: RenamedConversationSerializer, **ERROR_RESPONSES},
    )
    def patch(self, request: Request, conversation_id: str) -> Response:
        serializer = self.ConversationRenameInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = rename_conversation(
            user=request.user,
            conversation_id=conversation_id,
            title=serializer.validated_data["title"],
        )
        return Response(
            self.RenamedConversationSerializer(
                {"success": True, "conversation": conversation}
            ).data
        )
