from uuid import UUID

from django.db.models import QuerySet

from chat.exceptions import ConversationNotFound
from chat.models import Conversation, Message

# The id breaks ties between conversations updated at the same instant.
CONVERSATION_ORDERING = ("-updated_at", "-id")


def conversations_for(user: object) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner=user).order_by(*CONVERSATION_ORDERING)


def messages_of(conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.order_by("created_at", "id")


def conversation_for(user: object, conversation_id: object) -> Conversation:
    """Return the user's conversation, or raise ConversationNotFound (404)."""
    try:
        return Conversation.objects.get(pk=UUID(str(conversation_id)), owner=user)
    except (ValueError, Conversation.DoesNotExist) as error:
        raise ConversationNotFound() from error
