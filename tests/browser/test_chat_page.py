"""Drive the chat page in Chromium as a person would, against the real server."""

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from chat.providers import demo_answer
from points.tokens import count_tokens
from tests.browser.pages import (
    BOTH_SIZES,
    CONVERSATION_PATH,
    DESKTOP,
    GREETING,
    LAST_ANSWER,
    PHONE,
    OpenVisitor,
    Visitor,
    api,
    conversation_id_of,
    conversation_messages,
    fetch_from_page,
    header_balance,
    inside_viewport,
    numbers_in,
    open_size,
    points_in,
    poll,
    send,
    sign_up,
    tokens_in,
    wait_for_answer,
)
from tests.live_server import LiveServer, shell

pytestmark = pytest.mark.browser

CHAT_SCRIPT = r"/static/js/chat\.[0-9a-f]{12}\.js$"
STYLESHEET = r"/static/css/app\.[0-9a-f]{12}\.css$"
STREAM_SECONDS = 15
MAX_CHARS = 300
# Return [length of the last answer so far or null, whether its meta line is there,
# the error box's text if it is shown].
SAMPLE_ANSWER = """() => {
  const error = document.getElementById("chat-error");
  const answer = document.querySelector("#messages .bubble.assistant:last-child");
  return [
    answer ? answer.querySelector(".content").textContent.length : null,
    answer ? answer.querySelector(".meta") !== null : false,
    error && !error.hidden ? error.textContent : null,
  ];
}"""
# Run by `manage.py shell`: a user whose available points are below the notice's
# threshold (the default 1,000).
LOW_BALANCE_USER = """
from accounts.services import register_user
from points import services
user = register_user(email=%(email)r, password=%(password)r)
account = services.account_of(user=user)
services.debit(account=account, amount=account.available - 700, description="test")
"""


@pytest.fixture(scope="module")
def server_settings() -> dict[str, str]:
    return {
        "LLM_PROVIDER": "demo",
        "LLM_MODELS": "eora-demo",
        # Slow enough that the answer visibly arrives in pieces, and can be stopped.
        "DEMO_STREAM_DELAY_MS": "60",
        "CHAT_MAX_MESSAGE_CHARS": str(MAX_CHARS),
    }


def watch_answer(page: Page) -> list[int]:
    """Sample the streaming answer's length until its meta line appears."""
    lengths: list[int] = []
    deadline = time.monotonic() + STREAM_SECONDS
    while time.monotonic() < deadline:
        length, finished, error = page.evaluate(SAMPLE_ANSWER)
        assert error is None, f"the chat page showed an error: {error}"
        if length is not None:
            lengths.append(length)
        if finished:
            return lengths
        page.wait_for_timeout(25)
    pytest.fail(f"no finished answer within {STREAM_SECONDS} s; lengths {lengths}")


def assert_static_files_served(visitor: Visitor) -> None:
    assert visitor.statuses_of(CHAT_SCRIPT) == [200]
    assert visitor.statuses_of(STYLESHEET)
    assert set(visitor.statuses_of(STYLESHEET)) <= {200, 304}
    topbar_position = visitor.page.locator(".topbar").evaluate(
        "element => getComputedStyle(element).position"
    )
    assert topbar_position == "sticky", "app.css was not applied"


def chat_requests(visitor: Visitor) -> int:
    return len(visitor.statuses_of(r"/api/chat$"))


def test_greeting_streams_in_pieces_and_charges_the_points_shown(
    open_visitor: OpenVisitor,
) -> None:
    # Given a person who just signed up and opened a new chat
    visitor = open_visitor(DESKTOP)
    page = visitor.page
    sign_up(page)
    page.click("#new-chat")
    expect(page).to_have_url(re.compile(r"/chat/new/$"))
    page.wait_for_load_state("load")
    assert_static_files_served(visitor)
    balance_before = header_balance(page)
    assert balance_before > 0

    # When they send a greeting in Korean
    send(page, GREETING)
    lengths = watch_answer(page)

    # Then the answer grew in pieces, and the header balance dropped by its points
    answer = page.locator("#messages .bubble.assistant")
    answer_text = answer.locator(".content").text_content() or ""
    assert answer_text.strip()
    assert lengths == sorted(lengths), f"the answer shrank: {lengths}"
    assert any(0 < length < len(answer_text) for length in lengths), lengths
    meta = answer.locator(".meta").inner_text()
    points = points_in(meta)
    assert points > 0
    assert "eora-demo" in meta
    assert header_balance(page) == balance_before - points
    expect(page.locator("#conversation-points")).to_contain_text(f"{points:,}")
    expect(page).to_have_url(CONVERSATION_PATH)
    assert visitor.script_errors == []

    # And a reload shows the same conversation and balance, from the server
    page.reload()
    expect(page.locator("#messages .bubble.user .content")).to_have_text([GREETING])
    expect(page.locator("#messages .bubble.assistant .content")).to_have_text(
        [answer_text]
    )
    assert points_in(page.locator(f"{LAST_ANSWER} .meta").inner_text()) == points
    assert header_balance(page) == balance_before - points
    expect(page.locator("#conversation-points")).to_contain_text(f"{points:,}")


def test_chat_page_keeps_the_composer_on_screen_on_a_phone(
    open_visitor: OpenVisitor, artifacts_dir: Path
) -> None:
    # Given a conversation with one answer, seen on a desktop
    desktop = open_visitor(DESKTOP)
    sign_up(desktop.page)
    desktop.page.goto("/chat/new/")
    send(desktop.page, GREETING)
    wait_for_answer(desktop.page)
    expect(desktop.page).to_have_url(CONVERSATION_PATH)
    conversation_url = desktop.page.url

    # When the same person opens it on a phone
    phone = open_visitor(
        PHONE, is_mobile=True, storage_state=desktop.page.context.storage_state()
    )
    phone.page.goto(conversation_url)
    phone.page.screenshot(path=artifacts_dir / "chat-answered-phone.png")

    # Then the answer and the whole composer fit the screen, with no sideways scroll
    expect(phone.page.locator("#messages .bubble.assistant")).to_be_visible()
    for selector in ("#composer", "#message", "#send", "#model"):
        expect(phone.page.locator(selector)).to_be_visible()
    composer = phone.page.locator("#composer").bounding_box()
    assert composer is not None
    assert composer["y"] + composer["height"] <= PHONE["height"]
    page_width = phone.page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= PHONE["width"]
    assert phone.script_errors == []
    assert desktop.script_errors == []


@pytest.mark.parametrize(*BOTH_SIZES)
def test_enter_while_an_answer_streams_sends_nothing(
    open_visitor: OpenVisitor, size: str
) -> None:
    # Given a new chat whose first answer is streaming
    visitor = open_size(open_visitor, size)
    page = visitor.page
    sign_up(page)
    page.goto("/chat/new/")
    send(page, GREETING)
    expect(page.locator("#stop")).to_be_visible()
    # (announced politely once it is complete)
    expect(page.locator("#messages")).to_have_attribute("aria-busy", "true")

    # When the person types another message and presses Enter, twice, mid-stream
    page.fill("#message", "두 번째 질문입니다")
    page.press("#message", "Enter")
    page.press("#message", "Enter")
    wait_for_answer(page)

    # Then only the first message went out: one conversation of one turn
    assert chat_requests(visitor) == 1
    expect(page.locator("#messages .bubble.user")).to_have_count(1)
    expect(page.locator("#message")).to_have_value("두 번째 질문입니다")
    conversations = api(page, "GET", "/api/conversations")["conversations"]
    assert len(conversations) == 1
    assert len(conversation_messages(page, conversations[0]["id"])) == 2
    assert visitor.script_errors == []


def test_stop_keeps_and_charges_only_the_text_shown(open_visitor: OpenVisitor) -> None:
    # Given an answer that is streaming in a new chat
    visitor = open_visitor(DESKTOP)
    page = visitor.page
    sign_up(page)
    page.goto("/chat/new/")
    balance_before = header_balance(page)
    send(page, GREETING)
    answer = page.locator(LAST_ANSWER)
    poll(lambda: len(answer.locator(".content").text_content() or "") > 20)

    # When the person presses Stop
    page.click("#stop")

    # Then the answer is marked stopped, with its cost, and the stream was cut short
    meta = wait_for_answer(page)
    expect(answer.locator(".meta .stopped")).to_have_text("중단됨")
    expect(page.locator("#stop")).to_be_hidden()
    shown = answer.locator(".content").text_content() or ""
    prompt_tokens, completion_tokens = tokens_in(meta)
    points = points_in(meta)
    # And what was kept is exactly what was shown, charged for that text alone
    expect(page).to_have_url(CONVERSATION_PATH)
    question, kept = conversation_messages(page, conversation_id_of(page))
    full_answer = demo_answer(GREETING)
    assert kept["status"] == "partial"
    assert kept["content"].strip() == shown.strip()
    assert full_answer.startswith(kept["content"])
    assert len(kept["content"]) < len(full_answer)
    assert kept["completion_tokens"] == completion_tokens
    assert completion_tokens == count_tokens(kept["content"], "eora-demo")
    assert kept["points_charged"] == points == 2 * (prompt_tokens + completion_tokens)
    assert header_balance(page) == balance_before - points
    # And a reload shows it stopped too
    page.reload()
    expect(page.locator(f"{LAST_ANSWER} .meta .stopped")).to_have_text("중단됨")
    assert question["content"] == GREETING
    assert visitor.script_errors == []


@pytest.mark.parametrize(*BOTH_SIZES)
def test_a_message_over_the_limit_is_counted_and_refused_not_cut(
    open_visitor: OpenVisitor, size: str
) -> None:
    # Given a new chat
    visitor = open_size(open_visitor, size)
    page = visitor.page
    sign_up(page)
    page.goto("/chat/new/")
    textarea = page.locator("#message")
    assert textarea.get_attribute("maxlength") is None

    # When a message near the limit is typed, the counter shows; under 80 % it does not
    page.fill("#message", "가" * (MAX_CHARS // 2))
    expect(page.locator("#message-counter")).to_be_hidden()
    page.fill("#message", "가" * (MAX_CHARS - 10))
    expect(page.locator("#message-counter")).to_have_text(
        f"{MAX_CHARS - 10} / {MAX_CHARS}자"
    )

    # When a longer message is pasted and sent by Enter or the button
    too_long = "나" * (MAX_CHARS + 5)
    textarea.fill(too_long)
    page.press("#message", "Enter")
    page.locator("#send").click(force=True)

    # Then it stays whole, is marked too long, and nothing is sent or charged
    expect(textarea).to_have_value(too_long)
    expect(page.locator("#message-counter")).to_have_class(re.compile(r"\bover\b"))
    expect(page.locator("#send")).to_be_disabled()
    expect(textarea).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#estimate")).to_contain_text(f"{MAX_CHARS}자")
    assert chat_requests(visitor) == 0
    expect(page.locator("#messages .bubble")).to_have_count(0)
    assert visitor.script_errors == []


def test_the_estimate_quotes_the_turn_that_follows(open_visitor: OpenVisitor) -> None:
    # Given a conversation with one answer (so the estimate covers its context)
    visitor = open_visitor(DESKTOP)
    page = visitor.page
    sign_up(page)
    page.goto("/chat/new/")
    send(page, GREETING)
    wait_for_answer(page)
    balance = header_balance(page)

    # When the next question is typed
    question = "포인트는 어떻게 계산되나요?"
    page.fill("#message", question)
    estimate = page.locator("#estimate")
    expect(estimate).to_contain_text("이번 턴")
    prompt_tokens = int(estimate.get_attribute("data-prompt-tokens") or 0)
    minimum = int(estimate.get_attribute("data-minimum-points") or 0)
    maximum = int(estimate.get_attribute("data-maximum-points") or 0)
    assert numbers_in(estimate.inner_text())[:3] == [prompt_tokens, minimum, maximum]
    assert estimate.locator(".warning").count() == 0

    # Then the turn sent next counts the same prompt and costs within the range
    page.click("#send")
    meta = wait_for_answer(page, 2)
    assert tokens_in(meta)[0] == prompt_tokens
    assert minimum <= points_in(meta) <= maximum
    # And no estimate was charged: the balance fell by the turn's points alone
    assert header_balance(page) == balance - points_in(meta)
    assert visitor.script_errors == []


def test_estimate_warns_when_the_balance_cannot_pay_a_full_answer(
    open_visitor: OpenVisitor, live: LiveServer
) -> None:
    # Given a person with 700 points available, under the notice's 1,000
    email, password = "low-balance@example.com", "Low-balance-1"
    shell(live.env, LOW_BALANCE_USER % {"email": email, "password": password})
    visitor = open_visitor(PHONE, is_mobile=True)
    page = visitor.page
    page.goto("/accounts/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("main form button[type=submit]")
    page.goto("/chat/new/")

    # Then the header says points are low and links to the points page
    notice = page.locator("#low-balance")
    expect(notice).to_be_visible()
    expect(notice.locator("a")).to_have_attribute("href", "/points/top-up/")
    assert inside_viewport(page, "#low-balance")

    # And the estimate warns that a full answer is not affordable
    page.fill("#message", GREETING)
    expect(page.locator("#estimate .warning")).to_contain_text("700")
    assert visitor.script_errors == []


def test_page_and_api_errors_speak_the_same_language(
    open_visitor: OpenVisitor,
) -> None:
    # Given a person whose browser prefers English but who never chose a language
    visitor = open_visitor(DESKTOP, locale="en-US")
    page = visitor.page
    sign_up(page)
    page.goto("/chat/new/")
    expect(page.locator("html")).to_have_attribute("lang", "ko")

    # When the page's API refuses a turn, its message is in the page's language
    korean = fetch_from_page(page, "POST", "/api/chat", {"message": " "})
    assert korean["code"] == "invalid_message"
    assert re.search(r"[가-힣]", korean["error"]), korean

    # And after choosing English in the menu, both are English
    page.select_option("form.lang select", "en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    english = fetch_from_page(page, "POST", "/api/chat", {"message": " "})
    assert not re.search(r"[가-힣]", english["error"]), english
    assert visitor.script_errors == []
