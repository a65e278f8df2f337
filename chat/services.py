"""One chat turn: validate, build the prompt, reserve; afterwards save and settle.

The turn is two short database transactions around the model's generation, which
runs outside any transaction (`chat.streaming.stream_turn`): `prepare_turn` asks
the ledger to `reserve` the most the turn may cost; `settle_turn` saves the
messages and has the ledger `settle` the turn in one transaction; `fail_turn`
releases the hold. Every rule about the turn's points lives in
`points.services`; this module passes it facts (token counts, limits).
"""

import hashlib
import json
import logging
import re
import time
from contextlib import suppress
from dataclasses import dataclass, field
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Value, When
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
    TurnNotKept,
    TurnNotSaved,
    UnknownModel,
    UnstorableText,
)
from chat.models import Conversation, Message, MessageRole, MessageStatus
from chat.providers import ProviderUsage
from chat.selectors import conversation_for
from common import metrics
from common.connections import return_to_pool
from common.metrics import Endpoint, TurnOutcome
from points import services as ledger
from points.exceptions import HoldNotOpen, InsufficientPoints, SpendingLimitReached
from points.models import Account, Hold, HoldStatus, Transaction
from points.pipeline import flush as flush_ledger_writes
from points.pipeline import ledger_transaction
from points.pricing import Quote, quote, rates_for
from points.selectors import active_tier
from points.services import Reservation, Settlement, TokenCount
from points.tokens import count_chat_tokens, count_tokens

logger = logging.getLogger(__name__)

INSTRUCTION_ROLES = {"system", "developer"}
TITLE_LENGTH = 60
# What PostgreSQL cannot keep in text (NUL) and what UTF-8 cannot encode (a lone
# surrogate, which JSON's "\ud800" escape can carry).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


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
    # The API key that made the request, recorded on the ledger row.
    api_key: ApiKey | None = None
    # Sampling options passed through to the provider (temperature, top_p, ...).
    options: dict[str, object] = field(default_factory=dict)
    # Where the turn came in, for the metrics.
    endpoint: Endpoint = Endpoint.API_CHAT


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
    # The completion limit the turn ran with (0 for a replayed result).
    completion_limit: int = 0
    # The cost before the tier discount (None for a row written before tiers),
    # and the code of the tier whose discount was applied.
    list_cost: int | None = None
    tier: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class PreparedTurn:
    request: TurnRequest
    conversation: Conversation | None
    messages: list[dict[str, str]]
    reservation: Reservation
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.reservation.model

    @property
    def hold(self) -> Hold:
        return self.reservation.hold

    @property
    def prompt_tokens(self) -> int:
        return self.reservation.prompt_tokens

    @property
    def completion_limit(self) -> int:
        return self.reservation.completion_limit


def available_models() -> list[str]:
    return list(settings.LLM_MODELS)


def _require_storable(text: str) -> str:
    if UNSTORABLE.search(text):
        raise UnstorableText()
    return text


def _clean_message(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidMessage()
    limit = settings.CHAT_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise MessageTooLong(
            gettext("The message is longer than %(limit)d characters.")
            % {"limit": limit}
        )
    return _require_storable(text.strip())


def storable(text: str) -> str:
    """Return the model's text with what cannot be stored replaced by U+FFFD."""
    return UNSTORABLE.sub("\ufffd", text)


def turn_fingerprint(request: TurnRequest) -> str:
    """Return what makes two turns the same request, for idempotency keys."""
    canonical = json.dumps(
        {
            "conversation": str(request.conversation_id or ""),
            "message": request.message,
            "model": request.model,
            "history": request.history,
            "max_completion_tokens": request.max_completion_tokens,
            "options": request.options,
            "store": request.store,
        },
        sort_keys=True,
        default=str,
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


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


def replay_result(hold: Hold) -> TurnResult:
    """Return the first outcome of a turn whose idempotency key is used again."""
    if hold.status == HoldStatus.OPEN:
        raise TurnInProgress()
    entry = Transaction.objects.filter(hold=hold).first()
    if entry is None:
        if Message.objects.filter(hold=hold, status=MessageStatus.FAILED).exists():
            raise ProviderError()
        raise TurnAbandoned()
    answer = (
        Message.objects.filter(transaction=entry).select_related("transaction").first()
    )
    if answer is None:
        # Charged, but the answer was not kept (`store: false`, or its
        # conversation was deleted): its figures are all there is to repeat.
        raise TurnNotKept(entry)
    return _result_from_answer(answer, entry.balance_after)


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
        list_cost=entry.list_cost if entry else None,
    )


def _context(
    request: TurnRequest, conversation: Conversation | None, text: str, model: str
) -> tuple[list[dict[str, str]], int, int]:
    """Return the prompt's messages, its tokens and the answer's token limit."""
    limit = min(
        request.max_completion_tokens or settings.CHAT_MAX_COMPLETION_TOKENS,
        settings.CHAT_MAX_COMPLETION_TOKENS,
    )
    if request.history is None:
        system = [{"role": "system", "content": settings.CHAT_SYSTEM_PROMPT}]
        earlier = _earlier_messages(conversation)
    else:
        for message in request.history:
            _require_storable(message["content"])
        # The caller's own instructions are kept whole; only the exchange is trimmed.
        system = [m for m in request.history if m["role"] in INSTRUCTION_ROLES]
        earlier = [m for m in request.history if m["role"] not in INSTRUCTION_ROLES]
    messages, prompt_tokens = _fit_context(
        system, earlier, {"role": "user", "content": text}, model, limit
    )
    return messages, prompt_tokens, limit


def _validated(request: TurnRequest) -> tuple[str, str, Conversation | None]:
    """Return the turn's message, model and conversation, or raise a 4xx error."""
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
    return text, model, conversation


def estimate_turn(request: TurnRequest) -> Quote:
    """Return what the turn would cost if sent now, writing nothing.

    The prompt is built exactly as `prepare_turn` builds it (the same context and
    trimming), so its tokens are what the turn would hold for.
    """
    text, model, conversation = _validated(request)
    _messages, prompt_tokens, limit = _context(request, conversation, text, model)
    account = Account.objects.filter(user=request.user).first()
    tier = active_tier(account) if account else None
    return quote(
        prompt_tokens=prompt_tokens,
        completion_limit=limit,
        rates=rates_for(model),
        available=account.available if account else 0,
        discount_bps=tier.discount_bps if tier else 0,
    )


def prepare_turn(request: TurnRequest) -> PreparedTurn | TurnResult:
    """Validate the turn, build its prompt and reserve its most expensive outcome.

    Returns the first result instead when the idempotency key was used before.
    Raises a 4xx `ServiceError` (nothing written) when the turn cannot start.
    Either way the database connection goes back to its pool: the model's
    answer is awaited without one.
    """
    try:
        return _prepare_turn(request)
    finally:
        return_to_pool()


def _prepare_turn(request: TurnRequest) -> PreparedTurn | TurnResult:
    started = time.perf_counter()
    text, model, conversation = _validated(request)
    messages, prompt_tokens, limit = _context(request, conversation, text, model)
    account = ledger.account_of(
        user=request.user, account_id=getattr(request.api_key, "account_id", None)
    )
    counted = time.perf_counter()
    try:
        reservation = ledger.reserve(
            account=account,
            model=model,
            rates=rates_for(model),
            prompt_tokens=prompt_tokens,
            completion_tokens=limit,
            minimum_completion_tokens=settings.CHAT_MIN_COMPLETION_TOKENS,
            idempotency_key=request.idempotency_key,
            request_fingerprint=(
                turn_fingerprint(request) if request.idempotency_key is not None else ""
            ),
            description=gettext("Chat turn"),
            api_key=request.api_key,
        )
    except (InsufficientPoints, SpendingLimitReached) as refusal:
        # A repeated key's refusal is the first turn's, counted then.
        if not getattr(refusal, "replayed", False):
            metrics.count_turn(endpoint=request.endpoint, outcome=TurnOutcome.REFUSED)
        raise
    if reservation.replayed:
        return replay_result(reservation.hold)
    return PreparedTurn(
        request=request,
        conversation=conversation,
        messages=messages,
        reservation=reservation,
        timings={"count": counted - started, "hold": time.perf_counter() - counted},
    )


def _save_user_message(
    turn: PreparedTurn, status: str, now, error_code: str = ""
) -> Conversation | None:
    """Save the question; return its conversation, or None if it is not kept.

    A conversation deleted while its answer was generated is not brought back:
    the turn is still settled, without its messages.
    """
    if not turn.request.store:
        return None
    text = turn.request.message.strip()
    conversation = turn.conversation
    if conversation is None:
        conversation = Conversation.objects.create(
            owner=turn.request.user,
            title=text[:TITLE_LENGTH],
            created_at=now,
            updated_at=now,
        )
        turn.conversation = conversation
    else:
        # An UPDATE, not save(): it locks the row against a concurrent delete
        # until this transaction ends, and finds out whether the row is gone.
        kept = Conversation.objects.filter(pk=conversation.pk).update(
            title=Case(
                When(title="", then=Value(text[:TITLE_LENGTH])), default=F("title")
            ),
            updated_at=now,
        )
        if not kept:
            return None
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


def _save_turn(
    turn: PreparedTurn,
    *,
    text: str,
    status: str,
    counted: TokenCount,
    reported: TokenCount | None,
) -> tuple[Settlement, Conversation | None, Message | None]:
    # One transaction: the ledger's writes are sent with its COMMIT.
    with ledger_transaction():
        now = timezone.now()
        conversation = _save_user_message(turn, status, now)
        settlement = ledger.settle(
            reservation=turn.reservation,
            counted=counted,
            reported=reported,
            delivered_in_full=status == MessageStatus.COMPLETE,
            api_key=turn.request.api_key,
            conversation_id=conversation.pk if conversation is not None else None,
        )
        answer = None
        if conversation is not None:
            flush_ledger_writes()  # the answer points at its ledger row
            answer = Message.objects.create(
                conversation=conversation,
                role=MessageRole.ASSISTANT,
                content=storable(text),
                model=turn.model,
                status=status,
                prompt_tokens=settlement.usage.prompt_tokens,
                completion_tokens=settlement.usage.completion_tokens,
                points_charged=settlement.charged,
                transaction=settlement.entry,
                created_at=now,
            )
    return settlement, conversation, answer


def _count_settled(turn: PreparedTurn, settlement: Settlement, status: str) -> None:
    """Count a settled turn and, if it made a ledger row, what the row charged."""
    metrics.count_turn(endpoint=turn.request.endpoint, outcome=TurnOutcome(status))
    if settlement.entry is not None:
        metrics.count_charge(
            model=turn.model,
            prompt_tokens=settlement.usage.prompt_tokens,
            completion_tokens=settlement.usage.completion_tokens,
            points=settlement.charged,
        )


def settle_turn(
    turn: PreparedTurn,
    *,
    text: str,
    usage: ProviderUsage | None,
    delivered_in_full: bool = True,
    reached_client: bool = True,
) -> TurnResult:
    """Save the messages and charge the turn, together or not at all.

    If that fails after the model has answered, the turn is still settled: by our
    own count of the text when it reached the client (`reached_client`), else by
    releasing its hold; then `TurnNotSaved` says what happened.
    """
    started = time.perf_counter()
    counted = TokenCount(turn.prompt_tokens, count_tokens(text, turn.model))
    reported = (
        TokenCount(usage.prompt_tokens, usage.completion_tokens) if usage else None
    )
    status = MessageStatus.COMPLETE if delivered_in_full else MessageStatus.PARTIAL
    try:
        settlement, conversation, answer = _save_turn(
            turn, text=text, status=status, counted=counted, reported=reported
        )
    except Exception as error:
        logger.exception(
            "Saving the turn of hold %s failed; settling it without its messages.",
            turn.hold.pk,
        )
        charged = _settle_unsaved(turn, counted, reached_client)
        raise TurnNotSaved(charged=charged) from error
    _count_settled(turn, settlement, status)
    turn.timings["settle"] = time.perf_counter() - started
    return TurnResult(
        text=text,
        status=status,
        model=turn.model,
        prompt_tokens=settlement.usage.prompt_tokens,
        completion_tokens=settlement.usage.completion_tokens,
        points_charged=settlement.charged,
        remaining=settlement.remaining,
        conversation_id=conversation.pk if conversation else None,
        message_id=answer.pk if answer else None,
        transaction_id=settlement.entry.pk if settlement.entry else None,
        usage_source=settlement.source,
        uncharged_points=settlement.uncharged,
        completion_limit=turn.completion_limit,
        list_cost=settlement.list_cost,
        tier=turn.reservation.tier,
    )


def _settle_unsaved(
    turn: PreparedTurn, counted: TokenCount, reached_client: bool
) -> int | None:
    """End the hold of a turn whose save failed; return the points charged.

    Returns None when not even that could be written (the hold then expires).
    The turn counts as partial if it was settled, else as failed.
    """
    settlement = None
    charged: int | None = 0
    try:
        if reached_client:
            settlement = ledger.settle(
                reservation=turn.reservation,
                counted=counted,
                delivered_in_full=False,
                api_key=turn.request.api_key,
            )
        else:
            ledger.release_hold(hold=turn.hold)
    except HoldNotOpen:
        pass
    except Exception:
        logger.exception(
            "Charging the unsaved turn of hold %s failed; releasing the hold.",
            turn.hold.pk,
        )
        charged = _release_unsaved(turn)
    if settlement is not None:
        _count_settled(turn, settlement, MessageStatus.PARTIAL)
        return settlement.charged
    metrics.count_turn(endpoint=turn.request.endpoint, outcome=TurnOutcome.FAILED)
    return charged


def _release_unsaved(turn: PreparedTurn) -> int | None:
    """Release the hold of a turn that could not be charged; return 0, or None if
    not even that could be written."""
    try:
        ledger.release_hold(hold=turn.hold)
    except Exception:
        logger.exception(
            "Hold %s of an unsaved turn could not be released; it ends at %s.",
            turn.hold.pk,
            turn.hold.expires_at,
        )
        return None
    logger.error(
        "Hold %s released: its turn could not be charged or saved.", turn.hold.pk
    )
    return 0


def fail_turn(turn: PreparedTurn, error: Exception) -> None:
    """Release the turn's hold, charge nothing, and keep the question as failed."""
    try:
        with transaction.atomic():
            with suppress(HoldNotOpen):
                ledger.release_hold(hold=turn.hold)
            _save_user_message(
                turn,
                MessageStatus.FAILED,
                timezone.now(),
                error_code=getattr(error, "code", "error"),
            )
    except Exception:
        logger.exception(
            "Saving the failed question of hold %s failed; releasing the hold.",
            turn.hold.pk,
        )
        with suppress(HoldNotOpen):
            ledger.release_hold(hold=turn.hold)
    metrics.count_turn(endpoint=turn.request.endpoint, outcome=TurnOutcome.FAILED)


def release_unstarted_turn(turn: PreparedTurn) -> None:
    """Release the hold of a turn whose client left before anything was delivered."""
    with suppress(HoldNotOpen):
        ledger.release_hold(hold=turn.hold)
    metrics.count_turn(endpoint=turn.request.endpoint, outcome=TurnOutcome.ABANDONED)


def delete_conversation(*, user: User, conversation_id: object) -> None:
    """Delete a conversation and its messages; the ledger rows that paid stay."""
    with transaction.atomic():
        conversation_for(user, conversation_id).delete()


def rename_conversation(
    *, user: User, conversation_id: object, title: str
) -> Conversation:
    """Rename the user's conversation; it keeps its place in the list."""
    conversation = conversation_for(user, conversation_id)
    conversation.title = title
    # Not `updated_at`: a new name does not move the conversation up the list.
    conversation.save(update_fields=["title"])
    return conversation
