from django.db.models import QuerySet

from chat.models import Conversation, Message


def conversations_for(user: object) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner=user).order_by("-updated_at")


def messages_of(conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.order_by("created_at", "id")
