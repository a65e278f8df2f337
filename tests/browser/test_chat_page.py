"""Drive the chat page in Chromium as a person would, against the real server."""

import re
import secrets
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    StorageState,
    ViewportSize,
    expect,
)

pytestmark = pytest.mark.browser

SHOTS_FOR_REVIEW = Path("/tmp/eora-shots")
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
GREETING = "안녕하세요!"
CONVERSATION_PATH = re.compile(r"/chat/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}/$")
CHAT_SCRIPT = r"/static/js/chat\.[0-9a-f]{12}\.js$"
STYLESHEET = r"/static/css/app\.[0-9a-f]{12}\.css$"
# An integer grouped as Intl.NumberFormat or intcomma write it: 1,234 / 1.234 / 1 234.
GROUPED_INTEGER = re.compile(r"\d+(?:[,.\u00a0\u202f]\d{3})*")
STREAM_SECONDS = 15
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


@dataclass
class Visitor:
    """A person's browser tab, with what it fetched and the script errors it hit."""

    page: Page
    responses: list[Response] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)

    def statuses_of(self, url_pattern: str) -> list[int]:
        return [r.status for r in self.responses if re.search(url_pattern, r.url)]

    def record_response(self, response: Response) -> None:
        self.responses.append(response)

    def record_console(self, message: ConsoleMessage) -> None:
        # The site has no favicon; Chromium's own request for one is not the page's.
        if message.type == "error" and not message.location["url"].endswith(
            "/favicon.ico"
        ):
            self.script_errors.append(f"{message.text} ({message.location['url']})")


OpenVisitor = Callable[..., Visitor]


@pytest.fixture
def open_visitor(browser: Browser, server_url: str) -> Iterator[OpenVisitor]:
    """Open a fresh browser context (a new person) with a viewport and Korean locale."""
    contexts: list[BrowserContext] = []

    def open_context(
        viewport: ViewportSize,
        *,
        is_mobile: bool = False,
        storage_state: StorageState | None = None,
    ) -> Visitor:
        context = browser.new_context(
            base_url=server_url,
            viewport=viewport,
            is_mobile=is_mobile,
            has_touch=is_mobile,
            device_scale_factor=2 if is_mobile else 1,
            locale="ko-KR",
            storage_state=storage_state,
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        visitor = Visitor(page=context.new_page())
        context.on("response", visitor.record_response)
        visitor.page.on(
            "pageerror", lambda error: visitor.script_errors.append(str(error))
        )
        visitor.page.on("console", visitor.record_console)
        return visitor

    yield open_context
    for context in contexts:
        context.close()


def sign_up(page: Page) -> None:
    page.goto("/accounts/signup/")
    password = f"Bx-{secrets.token_urlsafe(12)}"
    page.fill("input[name=email]", f"browser-{uuid.uuid4().hex[:12]}@example.com")
    page.fill("input[name=password1]", password)
    page.fill("input[name=password2]", password)
    page.click("main form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/chat/$"))


def header_balance(page: Page) -> int:
    return int(re.sub(r"\D", "", page.locator("#balance").inner_text()))


def points_in(meta_line: str) -> int:
    """Return the points of an answer's meta line: its last number."""
    numbers = GROUPED_INTEGER.findall(meta_line)
    assert numbers, f"no numbers in the meta line {meta_line!r}"
    return int(re.sub(r"\D", "", numbers[-1]))


def send(page: Page, message: str) -> None:
    page.fill("#message", message)
    page.click("#send")


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


def test_greeting_streams_in_pieces_and_charges_the_points_shown(
    open_visitor: OpenVisitor,
) -> None:
    # Given a person who just signed up and opened a new chat
    visitor = open_visitor(DESKTOP)
    page = visitor.page
    sign_up(page)
    page.click("#new-chat")
    expect(page).to_have_url(re.compile(r"/chat/new/$"))
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
    points = points_in(answer.locator(".meta").inner_text())
    assert points > 0
    assert header_balance(page) == balance_before - points
    expect(page).to_have_url(CONVERSATION_PATH)
    assert visitor.script_errors == []

    # And a reload shows the same conversation and balance, from the server
    page.reload()
    expect(page.locator("#messages .bubble.user .content")).to_have_text([GREETING])
    expect(page.locator("#messages .bubble.assistant .content")).to_have_text(
        [answer_text]
    )
    assert points_in(
        page.locator("#messages .bubble.assistant .meta").inner_text()
    ) == (points)
    assert header_balance(page) == balance_before - points


def test_chat_page_keeps_the_composer_on_screen_on_a_phone(
    open_visitor: OpenVisitor, tmp_path: Path
) -> None:
    # Given a conversation with one answer, seen on a desktop
    desktop = open_visitor(DESKTOP)
    sign_up(desktop.page)
    desktop.page.goto("/chat/new/")
    send(desktop.page, GREETING)
    expect(desktop.page.locator("#messages .bubble.assistant .meta")).to_be_visible()
    expect(desktop.page).to_have_url(CONVERSATION_PATH)
    conversation_url = desktop.page.url
    desktop_shot = tmp_path / "chat-desktop.png"
    desktop.page.screenshot(path=desktop_shot)

    # When the same person opens it on a phone
    phone = open_visitor(
        PHONE, is_mobile=True, storage_state=desktop.page.context.storage_state()
    )
    phone.page.goto(conversation_url)
    phone_shot = tmp_path / "chat-phone.png"
    phone.page.screenshot(path=phone_shot)
    SHOTS_FOR_REVIEW.mkdir(exist_ok=True)
    for shot in (desktop_shot, phone_shot):
        shutil.copy(shot, SHOTS_FOR_REVIEW / shot.name)

    # Then the answer and the whole composer fit the screen, with no sideways scroll
    expect(phone.page.locator("#messages .bubble.assistant")).to_be_visible()
    for selector in ("#composer", "#message", "#send"):
        expect(phone.page.locator(selector)).to_be_visible()
    composer = phone.page.locator("#composer").bounding_box()
    topbar = phone.page.locator(".topbar").bounding_box()
    assert composer is not None and topbar is not None
    composer_bottom = composer["y"] + composer["height"]
    assert composer_bottom <= PHONE["height"], (
        f"the composer ends at {composer_bottom:.0f} px, below the "
        f"{PHONE['height']} px screen (top bar {topbar['height']:.0f} px tall)"
    )
    page_width = phone.page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= PHONE["width"]
    assert phone.script_errors == []
    assert desktop.script_errors == []
