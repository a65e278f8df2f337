"""Every page on a desktop and a phone: fits the screen, works by keyboard, and the
conversation list, user menu, API keys and error pages behave."""

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import (
    BOTH_SIZES,
    CONVERSATION_PATH,
    LAST_ANSWER,
    PHONE,
    OpenVisitor,
    assert_fits_the_screen,
    inside_viewport,
    open_size,
    poll,
    send,
    sign_up,
    wait_for_answer,
)

pytestmark = pytest.mark.browser

# A first message of 60 Korean characters without a space: the conversation's title.
LONG_TITLE = "가나다라마바사아자차카타파하거너더러머버서어저처커터퍼허" * 2 + "고노도로"
LONG_MESSAGE = LONG_TITLE + " " + "아주긴단어" * 40 + "\n\n" + "짧은 줄입니다. " * 30
LONG_KEY_NAME = "배포서버용키" * 16
# Return, for every visible control, [a description of it, its accessible name].
CONTROL_NAMES = """() => {
  const controls = document.querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, summary"
  );
  const visible = (el) => el.getClientRects().length > 0
    && getComputedStyle(el).visibility !== "hidden";
  const name = (el) => {
    if (el.getAttribute("aria-label")) return el.getAttribute("aria-label");
    const by = el.getAttribute("aria-labelledby");
    if (by) return document.getElementById(by)?.textContent || "";
    if (el.labels && el.labels.length) return el.labels[0].textContent;
    return el.textContent || el.title || el.value || "";
  };
  return Array.from(controls).filter(visible).map((el) => [
    el.outerHTML.slice(0, 120), name(el).trim(),
  ]);
}"""


@pytest.fixture(scope="module")
def server_settings() -> dict[str, str]:
    # Answers at once: these tests are about the pages around them.
    return {
        "LLM_PROVIDER": "demo",
        "LLM_MODELS": "eora-demo",
        "DEMO_STREAM_DELAY_MS": "0",
    }


def start_conversation(page: Page, message: str) -> str:
    page.goto("/chat/new/")
    send(page, message)
    wait_for_answer(page)
    expect(page).to_have_url(CONVERSATION_PATH)
    return page.url


def check_page(page: Page, path: str, name: str, size: str, shots: Path) -> None:
    page.goto(path)
    page.wait_for_load_state("load")
    page.screenshot(path=shots / f"{name}-{size}.png", full_page=True)
    assert_fits_the_screen(page, f"{path} ({size})")


@pytest.mark.parametrize(*BOTH_SIZES)
def test_no_page_is_wider_than_the_screen(
    open_visitor: OpenVisitor, size: str, artifacts_dir: Path
) -> None:
    # Given a signed-out visitor
    visitor = open_size(open_visitor, size)
    page = visitor.page
    for path, name in [
        ("/", "home"),
        ("/accounts/login/", "login"),
        ("/accounts/signup/", "signup"),
        ("/accounts/password/reset/", "password-reset"),
    ]:
        check_page(page, path, name, size, artifacts_dir)

    # Given a person with a long Korean conversation, a long key name and history
    sign_up(page)
    conversation = start_conversation(page, LONG_MESSAGE)
    expect(page.locator("#chat-title")).to_have_text(LONG_TITLE)
    send(page, "```python\n" + "x = '" + "가" * 300 + "'\n```")
    wait_for_answer(page, 2)
    page.goto("/settings/api-keys/")
    page.fill("input[name=name]", LONG_KEY_NAME)
    page.click("main form.inline-form button[type=submit]")
    expect(page.locator("#new-secret")).to_be_visible()
    page.screenshot(path=artifacts_dir / f"api-keys-new-{size}.png", full_page=True)
    assert_fits_the_screen(page, f"API keys with a new key ({size})")

    # Then every page fits its window, in width, at this size
    for path, name in [
        (conversation, "conversation"),
        ("/chat/", "chats"),
        ("/chat/?q=가나다", "chats-search"),
        ("/chat/new/", "new-chat"),
        ("/points/", "points"),
        ("/settings/api-keys/", "api-keys"),
        ("/accounts/password/change/", "password-change"),
        (f"/chat/{uuid.uuid4()}/", "not-found"),
    ]:
        check_page(page, path, name, size, artifacts_dir)
    assert visitor.script_errors == []


def test_user_menu_opens_on_the_screen_on_a_phone(open_visitor: OpenVisitor) -> None:
    for size in ("phone", "desktop"):
        visitor = open_size(open_visitor, size)
        page = visitor.page
        sign_up(page)
        page.click("details.menu summary")
        expect(page.locator(".menu-body")).to_be_visible()
        assert inside_viewport(page, ".menu-body"), size
        # And it closes with Escape, giving the focus back
        page.keyboard.press("Escape")
        expect(page.locator(".menu-body")).to_be_hidden()
        expect(page.locator("details.menu summary")).to_be_focused()


def test_points_and_key_tables_need_no_sideways_scrolling_on_a_phone(
    open_visitor: OpenVisitor,
) -> None:
    # Given a person with a chat turn in their history and a key
    visitor = open_size(open_visitor, "phone")
    page = visitor.page
    sign_up(page)
    start_conversation(page, "안녕하세요!")
    page.goto("/settings/api-keys/")
    page.fill("input[name=name]", LONG_KEY_NAME)
    page.click("main form.inline-form button[type=submit]")

    for path in ("/points/", "/settings/api-keys/"):
        page.goto(path)
        # Then each table row is a card that fits the screen, cells labelled
        wrap = page.locator(".table-wrap")
        assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth"), path
        for row in page.locator("table.stacked tbody tr").all():
            box = row.bounding_box()
            assert box is not None and box["x"] + box["width"] <= PHONE["width"], path
        label = page.locator("table.stacked tbody td").first.evaluate(
            "cell => getComputedStyle(cell, '::before').content"
        )
        assert label not in ("none", "normal", '""'), path
        assert_fits_the_screen(page, path)


@pytest.mark.parametrize(*BOTH_SIZES)
def test_a_new_key_is_shown_once_and_a_reload_makes_no_second_key(
    open_visitor: OpenVisitor, size: str
) -> None:
    # Given a person on the API keys page
    visitor = open_size(open_visitor, size)
    page = visitor.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_up(page)
    page.goto("/settings/api-keys/")

    # When they create a key
    page.fill("input[name=name]", "배포용 키")
    page.click("main form.inline-form button[type=submit]")

    # Then the form post was answered with a redirect, and the key is shown once
    assert visitor.statuses_of(r"/settings/api-keys/$")[-2:] == [302, 200]
    secret = page.locator("#new-secret").inner_text()
    assert re.fullmatch(r"eora_[a-z0-9]{12}_[\w-]{43}", secret)
    page.click("#copy-secret")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    expect(page.locator("#copy-secret")).to_have_text("복사됨")

    # When the page is reloaded
    page.reload()

    # Then there is still one key, and its secret is not shown again
    expect(page.locator("#new-secret")).to_have_count(0)
    expect(page.locator("table.history tbody tr")).to_have_count(1)

    # When they revoke it, a confirmation comes first; cancelling keeps the key
    revoke = page.locator("button[name=revoke]")
    revoke.click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("배포용 키")
    dialog.locator("button[value=cancel]").click()
    expect(dialog).to_be_hidden()
    expect(revoke).to_be_visible()
    revoke.click()
    dialog.locator("button[value=confirm]").click()

    # Then the key is revoked
    expect(page.locator("table.history tbody")).to_contain_text("폐기됨")
    assert visitor.script_errors == []


@pytest.mark.parametrize(*BOTH_SIZES)
def test_conversations_are_grouped_searched_renamed_and_deleted(
    open_visitor: OpenVisitor, size: str
) -> None:
    # Given two conversations
    visitor = open_size(open_visitor, size)
    page = visitor.page
    sign_up(page)
    start_conversation(page, "첫 번째 대화입니다")
    start_conversation(page, "두 번째 대화: 감자튀김 이야기")

    # Then the list groups them under today
    page.goto("/chat/")
    expect(page.locator(".group-label")).to_have_text(["오늘"])
    expect(page.locator(".conversation-list li")).to_have_count(2)

    # When searching by a word that only the answers hold, then by one title's
    page.fill("#search", "오프라인")
    page.press("#search", "Enter")
    expect(page.locator(".conversation-list li")).to_have_count(2)
    page.fill("#search", "감자튀김")
    page.press("#search", "Enter")
    expect(page).to_have_url(re.compile(r"\?q=%EA%B0%90"))
    expect(page.locator(".conversation-list li")).to_have_count(1)
    page.goto("/chat/")

    # When one is renamed
    item = page.locator(".conversation-list li").filter(has_text="첫 번째 대화입니다")
    item.locator("[data-rename]").click()
    page.fill("#rename-title", "이름을 바꾼 대화")
    page.press("#rename-title", "Enter")
    expect(page.locator("#rename-dialog")).to_be_hidden()
    expect(page.locator(".conversation-list")).to_contain_text("이름을 바꾼 대화")

    # When the other is deleted, after a confirmation (cancel first)
    doomed = page.locator(".conversation-list li").filter(has_text="감자튀김")
    doomed.locator("[data-delete]").click()
    page.locator("#confirm-dialog button[value=cancel]").click()
    expect(doomed).to_have_count(1)
    doomed.locator("[data-delete]").click()
    page.locator("#confirm-dialog button[value=confirm]").click()
    expect(doomed).to_have_count(0)

    # Then after a reload the server agrees
    page.reload()
    expect(page.locator(".conversation-list li")).to_have_text(
        [re.compile("이름을 바꾼 대화")]
    )
    assert visitor.script_errors == []


@pytest.mark.parametrize(*BOTH_SIZES)
def test_conversation_page_renames_and_deletes_its_conversation(
    open_visitor: OpenVisitor, size: str
) -> None:
    visitor = open_size(open_visitor, size)
    page = visitor.page
    sign_up(page)
    # A new chat has nothing to rename until its first answer
    page.goto("/chat/new/")
    expect(page.locator("[data-rename-current]")).to_be_hidden()
    send(page, "이름을 바꿀 대화")
    wait_for_answer(page)
    page.click("[data-rename-current]")
    page.fill("#rename-title", "새 이름")
    page.click("#rename-save")
    expect(page.locator("#chat-title")).to_have_text("새 이름")
    expect(page.locator("#sidebar-list a.active")).to_have_text("새 이름")
    page.reload()
    expect(page.locator("#chat-title")).to_have_text("새 이름")
    page.click("[data-delete-current]")
    page.locator("#confirm-dialog button[value=confirm]").click()
    expect(page).to_have_url(re.compile(r"/chat/$"))
    expect(page.locator(".conversation-list li")).to_have_count(0)
    assert visitor.script_errors == []


def test_the_chat_list_is_a_drawer_on_a_phone(open_visitor: OpenVisitor) -> None:
    # Given a conversation seen on a phone
    visitor = open_size(open_visitor, "phone")
    page = visitor.page
    sign_up(page)
    start_conversation(page, "서랍 시험")
    sidebar = page.locator("#sidebar")
    expect(sidebar).to_be_hidden()

    # When the chat list button is pressed
    opener = page.locator("#open-drawer")
    opener.click()

    # Then the list slides in, on the screen, and Escape puts it away
    expect(sidebar).to_be_visible()
    expect(opener).to_have_attribute("aria-expanded", "true")
    page.wait_for_timeout(300)  # the slide
    assert inside_viewport(page, "#sidebar")
    expect(sidebar.locator("a.active")).to_have_text("서랍 시험")
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()
    expect(opener).to_be_focused()
    assert_fits_the_screen(page, "chat with the drawer closed")
    assert visitor.script_errors == []


@pytest.mark.parametrize(*BOTH_SIZES)
def test_missing_pages_answer_404_in_the_site_layout(
    open_visitor: OpenVisitor, size: str
) -> None:
    visitor = open_size(open_visitor, size)
    page = visitor.page
    sign_up(page)
    response = page.goto(f"/chat/{uuid.uuid4()}/")
    assert response is not None and response.status == 404
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    expect(page.locator(".topbar #balance")).to_be_visible()
    expect(page.locator("h1")).to_have_text("페이지를 찾을 수 없습니다")
    assert visitor.script_errors == []


@pytest.mark.parametrize(*BOTH_SIZES)
def test_every_control_is_labelled_and_the_chat_works_by_keyboard(
    open_visitor: OpenVisitor, size: str
) -> None:
    # Given a person with one answered question
    visitor = open_size(open_visitor, size)
    page = visitor.page
    sign_up(page)
    conversation = start_conversation(page, "키보드로 보냅니다")

    # Then every visible control on the main pages has a name
    for path in (conversation, "/chat/", "/points/", "/settings/api-keys/"):
        page.goto(path)
        unnamed = [html for html, name in page.evaluate(CONTROL_NAMES) if not name]
        assert unnamed == [], f"{path}: {unnamed}"

    # And the first Tab stop skips to the content
    page.goto(conversation)
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()

    # And a question is typed and sent with the keyboard alone
    page.locator("#message").focus()
    page.keyboard.type("두 번째 질문")
    page.keyboard.press("Enter")
    wait_for_answer(page, 2)
    expect(page.locator("#messages")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#message")).to_be_focused()
    # And Tab from the message box reaches the send button and the model picker
    reached = []
    for _ in range(3):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id"))
    assert {"send", "model"} <= set(reached), reached
    assert visitor.script_errors == []


@pytest.mark.parametrize(*BOTH_SIZES)
def test_reopened_conversation_opens_at_its_latest_answer(
    open_visitor: OpenVisitor, size: str
) -> None:
    # Given a new chat, where the message box has the focus
    visitor = open_size(open_visitor, size)
    page = visitor.page
    sign_up(page)
    page.goto("/chat/new/")
    expect(page.locator("#message")).to_be_focused()
    # and a conversation long enough to scroll
    for turn in range(4):
        send(page, f"긴 대화의 {turn + 1}번째 질문입니다. " * 6)
        wait_for_answer(page, turn + 1)
        # The cost line of the answer just finished is in view.
        assert inside_viewport(page, f"{LAST_ANSWER} .meta")

    # When it is opened again
    page.reload()

    # Then the list is scrolled to its end, the last cost line in view
    messages = page.locator("#messages")
    poll(lambda: messages.evaluate("list => list.scrollTop") > 0)
    scrolled = messages.evaluate(
        "list => list.scrollHeight - list.scrollTop - list.clientHeight"
    )
    assert scrolled <= 2
    assert inside_viewport(page, f"{LAST_ANSWER} .meta")
    assert visitor.script_errors == []
