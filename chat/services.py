"""One chat turn: validate, reserve, (generate elsewhere), settle or fail.

The turn is two short database transactions around the model's generation, which
runs outside any transaction (`chat.streaming.stream_turn`): `prepare_turn` places
a hold for the most the turn may cost; `settle_turn` saves the messages and
captures the hold at the real cost in one transaction; `fail_turn` releases it.
"""

import logging
import time
from contextlib import suppress
from dataclasses import dataclass, field
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from accounts.models import ApiKey, User
from chat.exceptions import (
    ContextTooLong,
    InvalidMessage,
    MessageTooLong,
    ProviderError,
    TurnAbandoned,
    TurnInProgress,
    UnknownModel,
)
from chat.models import Conversation, Message, MessageRole, MessageStatus
from chat.providers import ProviderUsage
from chat.selectors import conversation_for
from points import services as ledger
from points.exceptions import (
    HoldExpired,
    HoldNotOpen,
    InsufficientPoints,
)
from points.models import Account, Hold, HoldStatus, Transaction
from points.pricing import (
    Rates,
    Usage,
    completion_tokens_affordable,
    cost_of,
    rates_for,
)
from points.selectors import account_for_user
from points.tokens import count_chat_tokens, count_tokens

logger = logging.getLogger(__name__)

CHAT_KEY_PREFIX = "chat:"
INSTRUCTION_ROLES = {"system", "developer"}
TITLE_LENGTH = 60


@dataclass
class TurnRequest:
    user: User
    message: str
    model: str | None = None
    conversation_id: UUID | str | None = None
    # Whether the turn is kept as a conversation (the OpenAI-compatible endpoint
    # passes its own messages and stores nothing by default).
    store: bool = True
    history: list[dict[str, str]] | None = None
    max_completion_tokens: int | None = None
    idempotency_key: str | None = None
    fingerprint: str | None = None
    # The API key that made the request, recorded on the ledger row.
    api_key: ApiKey | None = None
    # Sampling options passed through to the provider (temperature, top_p, ...).
    options: dict[str, object] = field(default_factory=dict)


@dataclass
class TurnResult:
    text: str
    status: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    points_charged: int
    remaining: int
    conversation_id: UUID | None
    message_id: int | None
    transaction_id: int | None
    usage_source: str = "counted"
    uncharged_points: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class PreparedTurn:
    request: TurnRequest
    account: Account
    conversation: Conversation | None
    model: str
    rates: Rates
    messages: list[dict[str, str]]
    prompt_tokens: int
    completion_limit: int
    hold: Hold
    timings: dict[str, float] = field(default_factory=dict)


def available_models() -> list[str]:
    return list(settings.LLM_MODELS)


def _clean_message(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidMessage()
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise MessageTooLong(
            gettext("The message is longer than %(limit)d characters.")
            % {"limit": limit}
        )
    return text.strip()


def _earlier_messages(conversation: Conversation | None) -> list[dict[str, str]]:
    if conversation is None:
        return []
    rows = conversation.messages.exclude(status=MessageStatus.FAILED).values_list(
        "role", "content"
    )
    return [{"role": role, "content": content} for role, content in rows]


def _fit_context(
    system: list[dict[str, str]],
    earlier: list[dict[str, str]],
    new: dict[str, str],
    model: str,
    completion_limit: int,
) -> tuple[list[dict[str, str]], int]:
    """Drop the oldest earlier messages until the prompt and answer fit the context."""
    fixed = count_chat_tokens([*system, new], model)
    costs = [
        count_chat_tokens([message], model) - count_chat_tokens([], model)
        for message in earlier
    ]
    total = fixed + sum(costs)
    budget = settings.LLM_CONTEXT_TOKENS - completion_limit
    start = 0
    while total > budget and start < len(earlier):
        total -= costs[start]
        start += 1
    if total > budget:
        raise ContextTooLong()
    return [*system, *earlier[start:], new], total


def _chat_key(key: str | None) -> str | None:
    return None if key is None else CHAT_KEY_PREFIX + key


def replay_result(hold: Hold) -> TurnResult:
    """Return the first outcome of a turn whose idempotency key is used again."""
    if hold.status == HoldStatus.OPEN:
        raise TurnInProgress()
    if hold.status != HoldStatus.CAPTURED:
        if Message.objects.filter(hold=hold, status=MessageStatus.FAILED).exists():
            raise ProviderError()
        raise TurnAbandoned()
    answer = Message.objects.select_related("transaction").get(transaction__hold=hold)
    return _result_from_answer(answer, answer.transaction.balance_after)


def _result_from_answer(answer: Message, remaining: int) -> TurnResult:
    entry = answer.transaction
    return TurnResult(
        text=answer.content,
        status=answer.status,
        model=answer.model,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        points_charged=answer.points_charged,
        remaining=remaining,
        conversation_id=answer.conversation_id,
        message_id=answer.pk,
        transaction_id=entry.pk if entry else None,
        uncharged_points=entry.uncharged_points if entry else 0,
    )


def prepare_turn(request: TurnRequest) -> PreparedTurn | TurnResult:
    """Validate the turn and reserve its most expensive outcome.

    Returns the first result instead when the idempotency key was used before.
    Raises a 4xx `ServiceError` (nothing written) when the turn cannot start.
    """
    started = time.perf_counter()
    text = _clean_message(request.message)
    model = request.model or available_models()[0]
    if model not in available_models():
        raise UnknownModel(
            gettext("The model %(model)s is not available.") % {"model": model}
        )
    conversation = (
        conversation_for(request.user, request.conversation_id)
        if request.conversation_id is not None
        else None
    )
    account = account_for_user(request.user)
    key = _chat_key(request.idempotency_key)
    if key is not None:
        # Before sizing a new hold: a repeat must get its first answer even if the
        # balance could no longer pay for it.
        earlier = ledger.replayed_hold(
            account=account,
            idempotency_key=key,
            request_fingerprint=request.fingerprint,
        )
        if earlier is not None:
            return replay_result(earlier)

    limit = min(
        request.max_completion_tokens or settings.CHAT_MAX_COMPLETION_TOKENS,
        settings.CHAT_MAX_COMPLETION_TOKENS,
    )
    if request.history is None:
        system = [{"role": "system", "content": settings.CHAT_SYSTEM_PROMPT}]
        earlier = _earlier_messages(conversation)
    else:
        # The caller's own instructions are kept whole; only the exchange is trimmed.
        system = [m for m in request.history if m["role"] in INSTRUCTION_ROLES]
        earlier = [m for m in request.history if m["role"] not in INSTRUCTION_ROLES]
    messages, prompt_tokens = _fit_context(
        system, earlier, {"role": "user", "content": text}, model, limit
    )
    rates = rates_for(model)
    counted = time.perf_counter()

    if account.held:
        ledger.expire_holds(account=account)
        account.refresh_from_db()
    available = account.available
    minimum = min(settings.CHAT_MIN_COMPLETION_TOKENS, limit)
    if (
        cost_of(prompt_tokens=prompt_tokens, completion_tokens=limit, rates=rates)
        > available
    ):
        limit = completion_tokens_affordable(
            points=available, prompt_tokens=prompt_tokens, rates=rates
        )
        if limit < minimum:
            raise InsufficientPoints(
                available=available,
                required=cost_of(
                    prompt_tokens=prompt_tokens, completion_tokens=minimum, rates=rates
                ),
            )
    hold = ledger.place_hold(
        account=account,
        amount=cost_of(
            prompt_tokens=prompt_tokens, completion_tokens=limit, rates=rates
        ),
        description=gettext("Chat turn"),
        idempotency_key=key,
        request_fingerprint=request.fingerprint if key else None,
    )
    if hold.replayed:
        return replay_result(hold)
    held = time.perf_counter()
    return PreparedTurn(
        request=request,
        account=account,
        conversation=conversation,
        model=model,
        rates=rates,
        messages=messages,
        prompt_tokens=prompt_tokens,
        completion_limit=limit,
        hold=hold,
        timings={"count": counted - started, "hold": held - counted},
    )


def _save_user_message(
    turn: PreparedTurn, status: str, now, error_code: str = ""
) -> Conversation | None:
    if not turn.request.store:
        return None
    conversation = turn.conversation
    text = turn.request.message.strip()
    if conversation is None:
        conversation = Conversation.objects.create(
            owner=turn.request.user,
            title=text[:TITLE_LENGTH],
            created_at=now,
            updated_at=now,
        )
        turn.conversation = conversation
    else:
        if not conversation.title:
            conversation.title = text[:TITLE_LENGTH]
        conversation.updated_at = now
        conversation.save(update_fields=["title", "updated_at"])
    Message.objects.create(
        conversation=conversation,
        role=MessageRole.USER,
        content=text,
        model=turn.model,
        status=status,
        hold=turn.hold,
        error_code=error_code,
        created_at=now,
    )
    return conversation


def settle_turn(
    turn: PreparedTurn, *, text: str, usage: ProviderUsage | None, dropped: bool = False
) -> TurnResult:
    """Save the messages and charge the turn, together or not at all."""
    started = time.perf_counter()
    if usage is not None and not dropped:
        metered = Usage(
            usage.prompt_tokens, usage.completion_tokens, turn.model, turn.rates
        )
        source = "provider"
    else:
        metered = Usage(
            turn.prompt_tokens, count_tokens(text, turn.model), turn.model, turn.rates
        )
        source = "counted"
    status = MessageStatus.PARTIAL if dropped else MessageStatus.COMPLETE
    with transaction.atomic():
        now = timezone.now()
        conversation = _save_user_message(turn, status, now)
        try:
            entry = ledger.capture_hold(
                hold=turn.hold,
                actual_cost=metered.cost,
                usage=metered,
                api_key=turn.request.api_key,
            )
        except HoldExpired:
            # The turn outlived its hold; charge what is still available instead.
            entry = _charge_after_expiry(turn, metered)
        answer = None
        if conversation is not None:
            answer = Message.objects.create(
                conversation=conversation,
                role=MessageRole.ASSISTANT,
                content=text,
                model=turn.model,
                status=status,
                prompt_tokens=metered.prompt_tokens,
                completion_tokens=metered.completion_tokens,
                points_charged=-entry.amount if entry else 0,
                transaction=entry,
                created_at=now,
            )
    turn.timings["settle"] = time.perf_counter() - started
    return TurnResult(
        text=text,
        status=status,
        model=turn.model,
        prompt_tokens=metered.prompt_tokens,
        completion_tokens=metered.completion_tokens,
        points_charged=-entry.amount if entry else 0,
        remaining=entry.account.available if entry else _available(turn.account),
        conversation_id=conversation.pk if conversation else None,
        message_id=answer.pk if answer else None,
        transaction_id=entry.pk if entry else None,
        usage_source=source,
        uncharged_points=(entry.uncharged_points if entry else metered.cost),
    )


def _available(account: Account) -> int:
    account.refresh_from_db(fields=["balance", "held"])
    return account.available


def _charge_after_expiry(turn: PreparedTurn, metered: Usage) -> Transaction | None:
    entry = ledger.charge_available(
        account=turn.account, usage=metered, api_key=turn.request.api_key
    )
    if entry is None:
        logger.warning(
            "Chat turn on account %s outlived its hold with nothing available; "
            "%d points not charged.",
            turn.account.pk,
            metered.cost,
        )
    return entry


def fail_turn(turn: PreparedTurn, error: Exception) -> None:
    """Release the turn's hold, charge nothing, and keep the question as failed."""
    with transaction.atomic():
        with suppress(HoldNotOpen):
            ledger.release_hold(hold=turn.hold)
        _save_user_message(
            turn,
            MessageStatus.FAILED,
            timezone.now(),
            error_code=getattr(error, "code", "error"),
        )


def release_unstarted_turn(turn: PreparedTurn) -> None:
    """Release the hold of a turn whose client left before anything was delivered."""
    with suppress(HoldNotOpen):
        ledger.release_hold(hold=turn.hold)


def delete_conversation(*, user: User, conversation_id: object) -> None:
    """Delete a conversation and its messages; the ledger rows that paid stay."""
    with transaction.atomic():
        conversation_for(user, conversation_id).delete()
