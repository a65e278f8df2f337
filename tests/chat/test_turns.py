from contextlib import aclosing
from datetime import timedelta

import pytest
import time_machine
from asgiref.sync import async_to_sync
from django.utils import timezone

from chat.exceptions import (
    ContextTooLong,
    ConversationNotFound,
    InvalidMessage,
    MessageTooLong,
    ProviderError,
    TurnAbandoned,
    TurnInProgress,
    UnknownModel,
)
from chat.models import Conversation, Message, MessageStatus
from chat.providers import ProviderUsage
from chat.services import PreparedTurn, TurnRequest, estimate_turn, prepare_turn
from chat.streaming import Delta, Failed, Finished, stream_turn
from points.audit import audit_accounts
from points.exceptions import IdempotencyConflict, InsufficientPoints
from points.models import Account, Hold, HoldStatus, Transaction, TransactionType
from points.pricing import cost_of, default_rates
from points.services import adjust
from points.tokens import count_tokens
from tests.chat.fakes import ScriptedProvider


def run(turn: PreparedTurn, provider, *, stop_after: int | None = None) -> list:
    """Consume a turn's events; stop (as a departing client does) after N deltas."""

    async def consume() -> list:
        seen: list = []
        async with aclosing(stream_turn(turn, provider)) as events:
            async for event in events:
                seen.append(event)
                deltas = sum(isinstance(e, Delta) for e in seen)
                if stop_after is not None and deltas == stop_after:
                    break
        return seen

    return async_to_sync(consume)()


def account_of(user) -> Account:
    return Account.objects.get(user=user)


def usage_rows(user) -> list[Transaction]:
    return list(
        Transaction.objects.filter(account__user=user, type=TransactionType.CHAT_USAGE)
    )


# Validation: a clear error and nothing written ------------------------------------


@pytest.mark.parametrize("message", ["", "   ", None, 42])
def test_prepare_turn_rejects_empty_or_non_text_message(user, message) -> None:
    with pytest.raises(InvalidMessage):
        prepare_turn(TurnRequest(user=user, message=message))
    assert not Hold.objects.exists()


def test_prepare_turn_rejects_message_over_limit(user, settings) -> None:
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    with pytest.raises(MessageTooLong):
        prepare_turn(TurnRequest(user=user, message="x" * 11))
    assert not Hold.objects.exists()


def test_prepare_turn_rejects_unknown_model(user) -> None:
    with pytest.raises(UnknownModel):
        prepare_turn(TurnRequest(user=user, message="hi", model="gpt-9"))
    assert not Hold.objects.exists()


def test_prepare_turn_hides_other_users_conversation(user, make_user) -> None:
    other = make_user()
    theirs = Conversation.objects.create(owner=other, title="private")

    with pytest.raises(ConversationNotFound):
        prepare_turn(TurnRequest(user=user, message="hi", conversation_id=theirs.pk))
    assert not Hold.objects.exists()


@pytest.mark.parametrize(
    "session_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"]
)
def test_prepare_turn_rejects_unknown_conversation(user, session_id) -> None:
    with pytest.raises(ConversationNotFound):
        prepare_turn(TurnRequest(user=user, message="hi", conversation_id=session_id))


def test_prepare_turn_rejects_prompt_beyond_context(user, settings) -> None:
    settings.LLM_CONTEXT_TOKENS = 256
    settings.CHAT_MAX_COMPLETION_TOKENS = 200
    with pytest.raises(ContextTooLong):
        prepare_turn(TurnRequest(user=user, message="word " * 200))


# Reservation ------------------------------------------------------------------------


def test_prepare_turn_holds_prompt_plus_completion_limit(user, settings) -> None:
    settings.CHAT_MAX_COMPLETION_TOKENS = 100

    turn = prepare_turn(TurnRequest(user=user, message="안녕하세요!"))

    expected = cost_of(
        prompt_tokens=turn.prompt_tokens, completion_tokens=100, rates=default_rates()
    )
    assert (turn.hold.amount, turn.completion_limit) == (expected, 100)
    assert account_of(user).held == expected


def test_prepare_turn_counts_system_prompt_history_and_framing(user, settings) -> None:
    turn = prepare_turn(TurnRequest(user=user, message="안녕하세요!"))

    assert turn.messages == [
        {"role": "system", "content": settings.CHAT_SYSTEM_PROMPT},
        {"role": "user", "content": "안녕하세요!"},
    ]
    plain = sum(
        count_tokens(m["role"]) + count_tokens(m["content"]) for m in turn.messages
    )
    assert turn.prompt_tokens == plain + 2 * 3 + 3


def test_prepare_turn_lowers_completion_limit_to_what_balance_affords(
    user, staff_user, settings
) -> None:
    settings.CHAT_MAX_COMPLETION_TOKENS = 1000
    adjust(account=account_of(user), delta=-99_700, reason="test", by_user=staff_user)

    turn = prepare_turn(TurnRequest(user=user, message="hi"))

    assert turn.completion_limit == (300 - 2 * turn.prompt_tokens) // 2
    assert turn.hold.amount <= 300


def test_prepare_turn_refuses_when_prompt_and_minimal_answer_unaffordable(
    user, staff_user, settings
) -> None:
    adjust(account=account_of(user), delta=-99_990, reason="test", by_user=staff_user)

    with pytest.raises(InsufficientPoints) as refused:
        prepare_turn(TurnRequest(user=user, message="hello"))

    assert refused.value.available == 10
    assert refused.value.required > 10
    assert not Hold.objects.exists()


def test_prepare_turn_expires_stale_holds_of_the_account_first(user, settings) -> None:
    settings.HOLD_TTL_SECONDS = 60
    stale = prepare_turn(TurnRequest(user=user, message="first"))

    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        prepare_turn(TurnRequest(user=user, message="second"))

    stale.hold.refresh_from_db()
    assert stale.hold.status == HoldStatus.EXPIRED


# Settlement -----------------------------------------------------------------------


def test_turn_with_provider_usage_is_billed_by_it(user) -> None:
    provider = ScriptedProvider(["Hel", "lo"], usage=ProviderUsage(44, 33))
    turn = prepare_turn(TurnRequest(user=user, message="hi"))

    events = run(turn, provider)

    result = events[-1].result
    assert [e.text for e in events[:-1]] == ["Hel", "lo"]
    assert (result.points_charged, result.usage_source) == (154, "provider")
    row = usage_rows(user)[0]
    assert (row.amount, row.prompt_tokens, row.completion_tokens) == (-154, 44, 33)
    assert row.description == "채팅 사용 (토큰: 77, 입력: 44, 출력: 33)"
    assert account_of(user).balance == 100_000 - 154
    assert audit_accounts() == []


def test_turn_without_provider_usage_is_billed_by_our_count(user) -> None:
    turn = prepare_turn(TurnRequest(user=user, message="hi"))

    result = run(turn, ScriptedProvider(["Hello ", "there"]))[-1].result

    completion = count_tokens("Hello there", turn.model)
    assert (result.prompt_tokens, result.completion_tokens) == (
        turn.prompt_tokens,
        completion,
    )
    assert result.points_charged == 2 * (turn.prompt_tokens + completion)
    assert account_of(user).held == 0


def test_turn_saves_both_messages_with_ledger_link(user) -> None:
    turn = prepare_turn(TurnRequest(user=user, message="hi"))
    result = run(turn, ScriptedProvider(["Hi!"]))[-1].result

    question, answer = Message.objects.filter(conversation_id=result.conversation_id)
    assert (question.role, question.content, question.status) == (
        "user",
        "hi",
        "complete",
    )
    assert (answer.content, answer.points_charged) == ("Hi!", result.points_charged)
    assert answer.transaction.amount == -result.points_charged
    assert answer.transaction.hold == turn.hold


def test_turn_in_existing_conversation_sends_history(user) -> None:
    first = run(
        prepare_turn(TurnRequest(user=user, message="one")), ScriptedProvider(["A1"])
    )
    conversation_id = first[-1].result.conversation_id
    provider = ScriptedProvider(["A2"])

    turn = prepare_turn(
        TurnRequest(user=user, message="two", conversation_id=conversation_id)
    )
    run(turn, provider)

    sent = [(m["role"], m["content"]) for m in provider.calls[0]["messages"][1:]]
    assert sent == [("user", "one"), ("assistant", "A1"), ("user", "two")]


def test_history_is_trimmed_oldest_first_to_fit_context(user, settings) -> None:
    first = run(
        prepare_turn(TurnRequest(user=user, message="old " * 120)),
        ScriptedProvider(["A1"]),
    )
    conversation_id = first[-1].result.conversation_id
    settings.LLM_CONTEXT_TOKENS = 256
    settings.CHAT_MAX_COMPLETION_TOKENS = 150

    turn = prepare_turn(
        TurnRequest(user=user, message="new", conversation_id=conversation_id)
    )

    assert [m["content"] for m in turn.messages[1:]] == ["A1", "new"]


def test_turn_never_charges_more_than_the_hold(user) -> None:
    turn = prepare_turn(TurnRequest(user=user, message="hi"))

    result = run(turn, ScriptedProvider(["x"], usage=ProviderUsage(10, 10**6)))[
        -1
    ].result

    assert result.points_charged == turn.hold.amount
    assert usage_rows(user)[0].uncharged_points == 2 * (10 + 10**6) - turn.hold.amount
    assert audit_accounts() == []


# Failure and departure ------------------------------------------------------------


def test_provider_failure_charges_nothing_and_marks_question_failed(user) -> None:
    turn = prepare_turn(TurnRequest(user=user, message="hi"))

    events = run(turn, ScriptedProvider(["partial"], fail_after=1))

    assert isinstance(events[-1], Failed)
    assert events[-1].error.code == "provider_error"
    account = account_of(user)
    assert (account.balance, account.held, usage_rows(user)) == (100_000, 0, [])
    assert Message.objects.get().status == MessageStatus.FAILED
    turn.hold.refresh_from_db()
    assert turn.hold.status == HoldStatus.RELEASED


def test_dropped_stream_charges_only_delivered_text(user) -> None:
    turn = prepare_turn(TurnRequest(user=user, message="hi"))
    deltas = ["One ", "two ", "three ", "four ", "five"]

    run(turn, ScriptedProvider(deltas, usage=ProviderUsage(999, 999)), stop_after=3)

    # The third delta was taken but the client never came back for more, so only
    # the first two count as delivered.
    delivered = "One two "
    expected = 2 * (turn.prompt_tokens + count_tokens(delivered, turn.model))
    row = usage_rows(user)[0]
    assert -row.amount == expected
    answer = Message.objects.get(role="assistant")
    assert (answer.content, answer.status) == (delivered, MessageStatus.PARTIAL)
    assert account_of(user).held == 0
    assert audit_accounts() == []


def test_stream_dropped_before_anything_delivered_charges_nothing(user) -> None:
    turn = prepare_turn(TurnRequest(user=user, message="hi"))

    run(turn, ScriptedProvider(["One ", "two"]), stop_after=1)

    assert usage_rows(user) == []
    assert account_of(user).held == 0


# Idempotency ----------------------------------------------------------------------


def keyed(user, message: str = "hi", key: str = "k1") -> TurnRequest:
    return TurnRequest(user=user, message=message, idempotency_key=key)


def test_repeated_key_returns_first_result_without_second_charge(user) -> None:
    first = run(prepare_turn(keyed(user)), ScriptedProvider(["Hi!"]))[-1].result

    again = prepare_turn(keyed(user))

    assert (again.text, again.points_charged, again.message_id) == (
        "Hi!",
        first.points_charged,
        first.message_id,
    )
    assert len(usage_rows(user)) == 1


def test_repeated_key_with_different_request_conflicts(user) -> None:
    run(prepare_turn(keyed(user)), ScriptedProvider(["Hi!"]))
    with pytest.raises(IdempotencyConflict):
        prepare_turn(keyed(user, message="something else"))


def test_repeated_key_while_first_is_running_is_in_progress(user) -> None:
    prepare_turn(keyed(user))
    with pytest.raises(TurnInProgress):
        prepare_turn(keyed(user))
    assert Hold.objects.count() == 1


def test_finished_turn_is_the_outcome_event(user) -> None:
    events = run(
        prepare_turn(TurnRequest(user=user, message="hi")), ScriptedProvider(["a"])
    )
    assert isinstance(events[-1], Finished)


def test_turn_that_outlives_its_hold_is_still_charged(make_user, settings) -> None:
    settings.SIGNUP_BONUS_POINTS = 500
    user = make_user()
    turn = prepare_turn(TurnRequest(user=user, message="hello"))
    assert turn.hold.amount == 500

    later = timezone.now() + timedelta(seconds=settings.HOLD_TTL_SECONDS + 1)
    with time_machine.travel(later):
        result = run(turn, ScriptedProvider(["hi there"]))[-1].result

    account = account_of(user)
    assert result.points_charged == 2 * (turn.prompt_tokens + count_tokens("hi there"))
    assert (account.held, account.balance) == (0, 500 - result.points_charged)
    assert (
        Message.objects.get(role="assistant").transaction.amount
        == -result.points_charged
    )
    assert audit_accounts() == []


def test_repeated_key_of_turn_that_failed_replays_the_failure(user) -> None:
    run(prepare_turn(keyed(user)), ScriptedProvider(["x"], fail_after=0))
    with pytest.raises(ProviderError):
        prepare_turn(keyed(user))


def test_repeated_key_of_abandoned_turn_says_so(user) -> None:
    run(prepare_turn(keyed(user)), ScriptedProvider(["One ", "two"]), stop_after=1)
    with pytest.raises(TurnAbandoned):
        prepare_turn(keyed(user))


# Estimate -------------------------------------------------------------------------


def test_estimate_agrees_with_what_the_turn_then_holds(user, settings) -> None:
    settings.CHAT_MAX_COMPLETION_TOKENS = 100
    first = run(
        prepare_turn(TurnRequest(user=user, message="first")), ScriptedProvider(["Hi"])
    )
    conversation_id = first[-1].result.conversation_id
    request = TurnRequest(user=user, message="second", conversation_id=conversation_id)

    estimate = estimate_turn(request)
    turn = prepare_turn(request)

    assert estimate.prompt_tokens == turn.prompt_tokens
    assert estimate.maximum_points == turn.hold.amount
    assert estimate.minimum_points == 2 * turn.prompt_tokens
    assert estimate.affordable


def test_estimate_writes_nothing_and_warns_when_unaffordable(user, staff_user) -> None:
    adjust(account=account_of(user), delta=-99_990, reason="test", by_user=staff_user)
    holds = Hold.objects.count()

    estimate = estimate_turn(TurnRequest(user=user, message="hello"))

    assert (estimate.available, estimate.affordable) == (10, False)
    assert Hold.objects.count() == holds
