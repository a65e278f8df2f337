from dataclasses import dataclass
from datetime import date
from uuid import UUID

from django.db.models import OuterRef, Q, QuerySet, Subquery, Sum

from chat.exceptions import ConversationNotFound, TurnNotFound
from chat.models import Conversation, Message
from points.models import Account, ConversationDay, Hold
from points.services import turn_key

# The id breaks ties between conversations updated at the same instant.
CONVERSATION_ORDERING = ("-updated_at", "-id")


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

    One query on the `ConversationDay` roll-up (the ledger rows of each
    conversation and day), limited to the user's conversations that still exist.
    """
    titles = Conversation.objects.filter(pk=OuterRef("conversation_id")).values(
        "title"
    )[:1]
    rows = (
        ConversationDay.objects.filter(
            account=account,
            day__gte=since,
            day__lte=until,
            conversation_id__in=Conversation.objects.filter(
                owner_id=account.user_id
            ).values("id"),
        )
        .values("conversation_id")
        .annotate(points=-Sum("amount"), turns=Sum("rows"), title=Subquery(titles))
        .order_by("-points", "conversation_id")[:limit]
    )
    return [
        ConversationCost(
            conversation_id=str(row["conversation_id"]),
            title=row["title"] or "",
            points=row["points"],
            turns=row["turns"],
        )
        for row in rows
    ]
