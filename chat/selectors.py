from uuid import UUID

from django.db.models import Q, QuerySet

from chat.exceptions import ConversationNotFound, TurnNotFound
from chat.models import Conversation, Message
from points.models import Hold
from points.services import turn_key

# The id breaks ties between conversations updated at the same instant.
CONVERSATION_ORDERING = ("-updated_at", "-id")


def conversations_for(user: object) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner=user).order_by(*CONVERSATION_ORDERING)


def messages_of(conversation: Conversation) -> QuerySet[Message]:
    """Return the conversation's messages in order, each with its ledger row
    (whose list cost the page shows beside a discounted charge)."""
    return conversation.messages.select_related("transaction").order_by(
        "created_at", "id"
    )


def conversation_for(user: object, conversation_id: object) -> Conversation:
    """Return the user's conversation, or raise ConversationNotFound (404)."""
    try:
        return Conversation.objects.get(pk=UUID(str(conversation_id)), owner=user)
    except (ValueError, Conversation.DoesNotExist) as error:
        raise ConversationNotFound() from error


def matching(conversations: QuerySet[Conversation], query: str) -> QuerySet:
    """Return the conversations whose title or any message contains `query`."""
    return conversations.filter(
        Q(title__icontains=query) | Q(messages__content__icontains=query)
    ).distinct()


def turn_hold(user: object, idempotency_key: str) -> Hold:
    """Return the hold of the user's turn sent with this key, or raise 404."""
    hold = Hold.objects.filter(
        account__user=user, idempotency_key=turn_key(idempotency_key)
    ).first()
    if hold is None:
        raise TurnNotFound()
    return hold
