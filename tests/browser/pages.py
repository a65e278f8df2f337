"""What the browser tests do as a person would: sign up, send, read the page."""

import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, Response, expect

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = {"desktop": DESKTOP, "phone": PHONE}
GREETING = "안녕하세요!"
CONVERSATION_PATH = re.compile(r"/chat/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}/$")
# An integer grouped as Intl.NumberFormat or intcomma write it: 1,234 / 1.234 / 1 234.
GROUPED_INTEGER = re.compile(r"\d+(?:[,.\u00a0\u202f]\d{3})*")
ANSWER_SECONDS = 15
LAST_ANSWER = "#messages .bubble.assistant:last-child"


@dataclass
class Visitor:
    """A person's browser tab, with what it fetched and the script errors it hit."""

    page: Page
    responses: list[Response] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)

    @classmethod
    def watching(cls, page: Page) -> "Visitor":
        visitor = cls(page=page)
        page.context.on("response", visitor.record_response)
        page.on("pageerror", lambda error: visitor.script_errors.append(str(error)))
        page.on("console", visitor.record_console)
        return visitor

    def statuses_of(self, url_pattern: str) -> list[int]:
        return [r.status for r in self.responses if re.search(url_pattern, r.url)]

    def record_response(self, response: Response) -> None:
        self.responses.append(response)
        # Refusals the page asks for (a 402, a 409 while a turn settles) are not
        # errors; a server error or a missing static file is.
        missing_static = "/static/" in response.url and response.status >= 400
        if response.status >= 500 or missing_static:
            self.script_errors.append(f"{response.status} {response.url}")

    def record_console(self, message: ConsoleMessage) -> None:
        # Chromium also logs each failed request, which record_response judges.
        if message.type == "error" and not message.text.startswith(
            "Failed to load resource"
        ):
            self.script_errors.append(f"{message.text} ({message.location['url']})")


OpenVisitor = Callable[..., Visitor]
# Parametrize a test with this to run it on a desktop and on a phone.
BOTH_SIZES = ("size", ["desktop", "phone"])


def open_size(open_visitor: OpenVisitor, size: str, **options: object) -> Visitor:
    """Open a new person's tab at a size by name (a phone is a touch device)."""
    viewport = SIZES[size]
    return open_visitor(viewport, is_mobile=viewport is PHONE, **options)


def new_email() -> str:
    return f"browser-{uuid.uuid4().hex[:12]}@example.com"


def new_password() -> str:
    return f"Bx-{secrets.token_urlsafe(12)}"


def sign_up(page: Page) -> str:
    """Sign up through the form; return the email."""
    email, password = new_email(), new_password()
    page.goto("/accounts/signup/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password1]", password)
    page.fill("input[name=password2]", password)
    page.click("main form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/chat/$"))
    return email


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("main form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/chat/$"))


def header_balance(page: Page) -> int:
    return int(re.sub(r"\D", "", page.locator("#balance").inner_text()))


def numbers_in(text: str) -> list[int]:
    return [int(re.sub(r"\D", "", n)) for n in GROUPED_INTEGER.findall(text)]


def points_in(meta_line: str) -> int:
    """Return the points of an answer's meta line: its last number."""
    numbers = numbers_in(meta_line)
    assert numbers, f"no numbers in the meta line {meta_line!r}"
    return numbers[-1]


def tokens_in(meta_line: str) -> tuple[int, int]:
    """Return the (prompt, completion) tokens of an answer's meta line."""
    match = re.search(r"(\d+)\D+?(\d+)\D+?[\d,]+\D*$", meta_line)
    assert match, f"no token counts in the meta line {meta_line!r}"
    return int(match.group(1)), int(match.group(2))


def send(page: Page, message: str) -> None:
    page.fill("#message", message)
    page.click("#send")


def wait_for_answer(page: Page, count: int = 1) -> str:
    """Wait until `count` answers carry their meta line; return the last one's."""
    meta = page.locator("#messages .bubble.assistant .meta")
    expect(meta).to_have_count(count, timeout=ANSWER_SECONDS * 1000)
    return meta.last.inner_text()


def poll(check: Callable[[], Any], *, seconds: float = 10) -> Any:
    """Call `check` until it returns something truthy; return that."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{check} stayed false for {seconds} s")


def api(page: Page, method: str, path: str, body: Any = None) -> Any:
    """Call the REST API with the page's session (and its CSRF token)."""
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    response = page.request.fetch(
        path,
        method=method,
        headers={"X-CSRFToken": cookies.get("csrftoken", "")},
        data=body,
    )
    return response.json()


FETCH_FROM_PAGE = """async ([method, path, body]) => {
  const token = (document.cookie.match(/(?:^|; )csrftoken=([^;]*)/) || [])[1] || "";
  const response = await fetch(path, {
    method: method,
    credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRFToken": token},
    body: body === null ? undefined : JSON.stringify(body),
  });
  return await response.json();
}"""


def fetch_from_page(page: Page, method: str, path: str, body: Any = None) -> Any:
    """Call the API from the page's own script, as the page's code does."""
    return page.evaluate(FETCH_FROM_PAGE, [method, path, body])


def conversation_messages(page: Page, conversation_id: str) -> list[dict[str, Any]]:
    return api(page, "GET", f"/api/conversations/{conversation_id}")["messages"]


def conversation_id_of(page: Page) -> str:
    match = CONVERSATION_PATH.search(page.url)
    assert match, f"{page.url} is not a conversation"
    return page.url.rstrip("/").rsplit("/", 1)[-1]


def page_widths(page: Page) -> tuple[int, int]:
    """Return (the document's scrollable width, the viewport's width)."""
    return page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )


def assert_fits_the_screen(page: Page, what: str) -> None:
    document_width, viewport_width = page_widths(page)
    assert document_width == viewport_width, (
        f"{what}: the page is {document_width} px wide in a {viewport_width} px window"
    )


def inside_viewport(page: Page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    viewport = page.viewport_size
    assert box is not None and viewport is not None
    return (
        box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= viewport["width"]
        and box["y"] + box["height"] <= viewport["height"]
    )
