"""Answers from an OpenAI-compatible model (a fake one, over real HTTP): Markdown as
it streams, hostile Markdown, Stop, copy / regenerate / edit, the model picker."""

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from points.tokens import count_tokens
from tests.browser.pages import (
    BOTH_SIZES,
    LAST_ANSWER,
    OpenVisitor,
    Visitor,
    assert_fits_the_screen,
    conversation_id_of,
    conversation_messages,
    header_balance,
    open_size,
    points_in,
    send,
    sign_up,
    tokens_in,
    wait_for_answer,
)
from tests.chat.fake_openai import FakeOpenAI, Script
from tests.live_server import LiveServer, shell

pytestmark = pytest.mark.browser

DEFAULT_MODEL = "gpt-4o-mini"
PRICIER_MODEL = "gpt-4o"
MARKDOWN_PIECES = [
    "## 요약\n\n",
    "- 첫째 항목\n- **둘째** 항목\n\n",
    "| 모델 | 포인트 |\n|:--|--:|\n| gpt-4o | 2,500 |\n\n",
    "[문서](https://example.com/docs)와 `inline code`\n\n",
    '```python\ndef hello():\n    return "안녕"\n```\n',
    "\n끝.",
]
CODE = 'def hello():\n    return "안녕"'
HOSTILE_PIECES = [
    "<img src=x onerror=\"window.__pwned='img'\">\n\n",
    "<script>window.__pwned='script'</script>\n\n",
    "[클릭](javascript:window.__pwned='link')\n\n",
    "<a href=\"javascript:window.__pwned='a'\" "
    "onclick=\"window.__pwned='click'\">링크</a>\n\n",
    "<style>body { display: none }</style>\n\n",
    '<p style="position:fixed;inset:0" class="button danger">가짜 버튼</p>\n\n',
    "<iframe src=\"javascript:window.__pwned='iframe'\"></iframe>\n\n",
    "<svg><script>window.__pwned='svg'</script></svg>\n\n",
    "![사진](https://example.com/x.png)\n\n",
    '<form action="/accounts/logout/" method="post"><button>로그아웃</button></form>',
]
HOSTILE_QUESTION = "<img src=x onerror=\"window.__pwned='user'\"> **굵게?**"
# Everything the sanitizer must have left out of the answer.
FORBIDDEN = (
    "script, style, img, iframe, svg, form, button:not(.copy-code), "
    "[style], [onclick], [onerror]"
)
# Run by `manage.py shell`: the pricier model's rates, per token.
MODEL_RATE = """
from decimal import Decimal
from points.models import ModelRate
ModelRate.objects.create(
    model=%(model)r, prompt_rate=Decimal("2.5"), completion_rate=Decimal("10")
)
"""


@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server_settings(fake_model: FakeOpenAI) -> dict[str, str]:
    return {
        "LLM_PROVIDER": "openai",
        "LLM_BASE_URL": fake_model.url,
        "LLM_API_KEY": "test-key",
        "LLM_MODELS": f"{DEFAULT_MODEL},{PRICIER_MODEL}",
        "LLM_MAX_RETRIES": "0",
        "LLM_TIMEOUT": "10",
    }


@pytest.fixture(scope="module", autouse=True)
def pricier_model_rate(live: LiveServer) -> None:
    shell(live.env, MODEL_RATE % {"model": PRICIER_MODEL})


@pytest.fixture
def script(fake_model: FakeOpenAI) -> Iterator[Script]:
    """The fake model's next answers; a gate it holds is opened afterwards."""
    fake_model.script = Script()
    yield fake_model.script
    if fake_model.script.gate is not None:
        fake_model.script.gate.set()


def signed_in(open_visitor: OpenVisitor, size: str) -> Visitor:
    visitor = open_size(open_visitor, size)
    visitor.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_up(visitor.page)
    visitor.page.goto("/chat/new/")
    return visitor


def clipboard(page: Page) -> str:
    return page.evaluate("navigator.clipboard.readText()")


def last_question_sent(fake_model: FakeOpenAI) -> tuple[str, str]:
    """Return the model and the last user message of the model's last request."""
    body = fake_model.chat_requests[-1].body or {}
    return body["model"], body["messages"][-1]["content"]


@pytest.mark.parametrize(*BOTH_SIZES)
def test_answer_is_rendered_as_markdown_while_it_streams(
    open_visitor: OpenVisitor, script: Script, size: str, artifacts_dir: Path
) -> None:
    # Given a model whose answer stops before its last piece until a gate opens
    script.deltas = MARKDOWN_PIECES
    script.gate = threading.Event()
    visitor = signed_in(open_visitor, size)
    page = visitor.page

    # When a question is sent and all but the last piece have arrived
    send(page, "마크다운으로 답해 주세요")
    answer = page.locator(f"{LAST_ANSWER} .content")
    expect(answer.locator("pre code")).to_contain_text("return")

    # Then the answer is already Markdown: heading, list, table, link, code
    expect(answer.locator("h2")).to_have_text("요약")
    expect(answer.locator("li")).to_have_count(2)
    expect(answer.locator("li strong")).to_have_text("둘째")
    expect(answer.locator("table td")).to_have_text(["gpt-4o", "2,500"])
    link = answer.locator("a[href='https://example.com/docs']")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(answer.locator("p code")).to_have_text("inline code")
    # with the code block highlighted
    expect(answer.locator("pre code.hljs .hljs-keyword").first).to_have_text("def")
    assert page.locator(f"{LAST_ANSWER} .meta").count() == 0

    # When the last piece arrives
    script.gate.set()
    wait_for_answer(page)
    expect(answer).to_contain_text("끝.")

    # Then the code block's copy button copies the code alone
    page.locator(f"{LAST_ANSWER} .copy-code").click()
    assert clipboard(page).strip() == CODE
    # And nothing is wider than the screen
    page.screenshot(path=artifacts_dir / f"answer-markdown-{size}.png")
    assert_fits_the_screen(page, f"an answer in Markdown ({size})")
    assert visitor.script_errors == []


def test_hostile_markdown_and_html_run_no_script(
    open_visitor: OpenVisitor, script: Script
) -> None:
    # Given a model that answers with script, handlers, styles and javascript: links
    script.deltas = HOSTILE_PIECES
    visitor = signed_in(open_visitor, "desktop")
    page = visitor.page

    # When a person sends a question that carries HTML of its own
    send(page, HOSTILE_QUESTION)
    wait_for_answer(page)
    answer = page.locator(f"{LAST_ANSWER} .content")
    for text in ("클릭", "링크"):
        answer.get_by_text(text).click()
    assert page.evaluate("window.__pwned") is None
    page.reload()

    # Then nothing ran, the question shows as typed, and only safe HTML is left,
    # as streamed and as reloaded from the server
    assert page.evaluate("window.__pwned") is None
    expect(page.locator("#messages .bubble.user .content")).to_have_text(
        HOSTILE_QUESTION
    )
    answer = page.locator(f"{LAST_ANSWER} .content")
    # HTML written in an answer shows as text
    expect(answer).to_contain_text("<script>window.__pwned='script'</script>")
    expect(answer).to_contain_text("가짜 버튼")
    assert answer.locator(FORBIDDEN).count() == 0
    hrefs = answer.locator("a").evaluate_all("links => links.map(a => a.href)")
    assert all(not href.startswith("javascript:") for href in hrefs), hrefs
    assert "https://example.com/x.png" in hrefs
    assert answer.locator(".button, .danger").count() == 0
    assert page.locator("body").is_visible()
    # (a sanitizer that let anything through would also trip the page's CSP,
    # which Chromium reports as a console error)
    assert visitor.script_errors == []


@pytest.mark.parametrize(*BOTH_SIZES)
def test_stop_keeps_and_charges_only_the_text_shown(
    open_visitor: OpenVisitor, script: Script, fake_model: FakeOpenAI, size: str
) -> None:
    # Given an answer whose last piece never comes until the gate opens
    script.deltas = ["하나 ", "둘 ", "셋 ", "넷 다섯 여섯 일곱 여덟"]
    script.gate = threading.Event()
    visitor = signed_in(open_visitor, size)
    page = visitor.page
    balance_before = header_balance(page)
    send(page, "숫자를 세어 주세요")
    expect(page.locator(f"{LAST_ANSWER} .content")).to_have_text("하나 둘 셋")

    # When the person presses Stop
    page.click("#stop")

    # Then the answer shows as stopped, with its cost line
    meta = wait_for_answer(page)
    expect(page.locator(f"{LAST_ANSWER} .meta .stopped")).to_have_text("중단됨")
    prompt_tokens, completion_tokens = tokens_in(meta)
    points = points_in(meta)
    # And only the three pieces shown were kept and charged
    _question, kept = conversation_messages(page, conversation_id_of(page))
    assert (kept["status"], kept["content"]) == ("partial", "하나 둘 셋 ")
    assert completion_tokens == count_tokens("하나 둘 셋 ", DEFAULT_MODEL)
    assert kept["points_charged"] == points == 2 * (prompt_tokens + completion_tokens)
    assert header_balance(page) == balance_before - points
    assert visitor.script_errors == []


@pytest.mark.parametrize(*BOTH_SIZES)
def test_copy_regenerate_and_edit_the_last_turn(
    open_visitor: OpenVisitor, script: Script, fake_model: FakeOpenAI, size: str
) -> None:
    # Given one answered question
    script.deltas = ["첫 답변 ", "**굵게**"]
    visitor = signed_in(open_visitor, size)
    page = visitor.page
    send(page, "질문 하나")
    first_meta = wait_for_answer(page)
    balance = header_balance(page)

    # When the answer is copied, the clipboard holds its Markdown
    page.locator(f"{LAST_ANSWER} [data-action=copy]").click()
    assert clipboard(page) == "첫 답변 **굵게**"

    # When it is regenerated: the same question again, as a new, charged turn
    page.locator(f"{LAST_ANSWER} [data-action=regenerate]").click()
    second_meta = wait_for_answer(page, 2)
    assert last_question_sent(fake_model) == (DEFAULT_MODEL, "질문 하나")
    expect(page.locator("#messages .bubble.user .content")).to_have_text(
        ["질문 하나", "질문 하나"]
    )
    assert header_balance(page) == balance - points_in(second_meta)
    assert points_in(first_meta) > 0
    # Only the last answer offers to regenerate, only the last question to edit
    expect(page.locator("[data-action=regenerate]")).to_have_count(1)
    expect(page.locator("[data-action=edit]")).to_have_count(1)

    # When the last question is edited and sent
    page.locator("#messages .bubble.user").last.locator("[data-action=edit]").click()
    expect(page.locator("#message")).to_be_focused()
    expect(page.locator("#message")).to_have_value("질문 하나")
    page.fill("#message", "질문 둘")
    page.press("#message", "Enter")
    wait_for_answer(page, 3)

    # Then it went as a new turn with the edited text
    assert last_question_sent(fake_model) == (DEFAULT_MODEL, "질문 둘")
    expect(page.locator("#messages .bubble.user")).to_have_count(3)
    assert visitor.script_errors == []


@pytest.mark.parametrize(*BOTH_SIZES)
def test_the_model_picker_keeps_the_conversation_model_and_shows_prices(
    open_visitor: OpenVisitor, script: Script, fake_model: FakeOpenAI, size: str
) -> None:
    # Given a new chat: the default model is chosen, each priced per 1,000 tokens
    script.deltas = ["네, 알겠습니다."]
    visitor = signed_in(open_visitor, size)
    page = visitor.page
    picker = page.locator("#model")
    expect(picker).to_have_value(DEFAULT_MODEL)
    expect(picker.locator("option")).to_have_text(
        [
            f"{DEFAULT_MODEL} · 1,000토큰당 2,000 포인트",
            f"{PRICIER_MODEL} · 1,000토큰당 입력 2,500 / 출력 10,000 포인트",
        ]
    )

    # When the pricier model is chosen for the first turn
    picker.select_option(PRICIER_MODEL)
    send(page, "첫 질문")
    meta = wait_for_answer(page)
    assert PRICIER_MODEL in meta
    assert last_question_sent(fake_model) == (PRICIER_MODEL, "첫 질문")

    # Then after a reload the conversation's model is still chosen, and used
    page.reload()
    expect(page.locator("#model")).to_have_value(PRICIER_MODEL)
    send(page, "둘째 질문")
    wait_for_answer(page, 2)
    assert last_question_sent(fake_model) == (PRICIER_MODEL, "둘째 질문")
    # And a new chat starts from the default again
    page.goto("/chat/new/")
    expect(page.locator("#model")).to_have_value(DEFAULT_MODEL)
    expect(page.locator("#message")).to_be_focused()
    assert visitor.script_errors == []
