from dataclasses import dataclass
from datetime import date, timedelta
from uuid import UUID

from django.db.models import Count, F, Q, QuerySet, Sum

from chat.exceptions import ConversationNotFound, TurnNotFound
from chat.models import Conversation, Message
from points.models import Account, Hold
from points.services import turn_key
from points.usage import day_bounds

# The id breaks ties between conversations updated at the same instant.
CONVERSATION_ORDERING = ("-updated_at", "-id")
# An answer is saved at the instant its turn began to settle, its ledger row a
# moment later in the same transaction: answers this much older than a range
# cannot have been paid for in it.
ANSWER_BEFORE_LEDGER_ROW = timedelta(hours=1)


@dataclass(frozen=True)
class ConversationCost:
    conversation_id: str
    title: str
    points: int
    turns: int


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


def costliest_conversations(
    *, account: Account, since: date, until: date, limit: int = 10
) -> list[ConversationCost]:
    """Return the user's conversations whose turns of `since..until` (TIME_ZONE
    dates) cost the most points, with the points their ledger rows took.

    One query: the user's conversations touched since the range began (index
    on owner and updated_at), their answers of the range (index on conversation
    and created_at) and the answers' ledger rows of the range (index on account
    and created_at), whose time decides the day.
    """
    start, end = day_bounds(since, until)
    rows = (
        Message.objects.filter(
            conversation__owner_id=account.user_id,
            conversation__updated_at__gte=start - ANSWER_BEFORE_LEDGER_ROW,
            created_at__gte=start - ANSWER_BEFORE_LEDGER_ROW,
            created_at__lt=end,
            transaction__account=account,
            transaction__created_at__gte=start,
            transaction__created_at__lt=end,
        )
        .values("conversation_id", "conversation__title")
        .annotate(points=Sum(-F("transaction__amount")), turns=Count("id"))
        .order_by("-points", "conversation_id")[:limit]
    )
    return [
        ConversationCost(
            conversation_id=str(row["conversation_id"]),
            title=row["conversation__title"],
            points=row["points"],
            turns=row["turns"],
        )
        for row in rows
    ]
