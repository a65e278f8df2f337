"""The chat pages and what they call: the home page, conversation lists grouped by
day and searched, the conversation page, the estimate and turn-outcome endpoints,
renaming, the pages' language, and the error pages."""

import re
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.template import loader
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import path, reverse
from django.utils import translation

from accounts.api_keys import create_api_key
from chat import views as chat_views
from chat.models import Conversation, Message
from common import views as errors_views
from eora import urls as project_urls
from points import services as ledger
from points.models import Hold, IdempotencyRecord, ModelRate, Transaction

ROOT = Path(__file__).resolve().parents[2]
SEOUL = ZoneInfo("Asia/Seoul")
TWO_MODELS = ["eora-demo", "eora-large"]

# The URLs of the project with `/` pointed at the home page, as eora/urls.py is to
# route it (tests marked `urls(__name__)` use them).
urlpatterns = [
    path("", chat_views.home, name="home"),
    *[p for p in project_urls.urlpatterns if getattr(p, "name", "") != "home"],
]
handler404 = project_urls.handler404
handler500 = project_urls.handler500


@pytest.fixture
def signed_in(client: Client, user) -> Client:
    client.force_login(user)
    return client


def ask(client: Client, message: str, *, session_id: str = "", **fields: str):
    """Run a turn through the page's form post (the no-JavaScript path)."""
    return client.post(
        reverse("chat:send"),
        {"message": message, "session_id": session_id, **fields},
        follow=True,
    )


def ask_api(client: Client, body: dict, key: str | None = None):
    """Run a turn through /api/chat as the chat page does (JSON, no stream)."""
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(
        reverse("api-chat"),
        {"stream": False, **body},
        content_type="application/json",
        headers=headers,
    )


def estimate(client: Client, body: dict, **extra):
    return client.post(
        reverse("chat:estimate"), body, content_type="application/json", **extra
    )


def rows_written() -> tuple[int, ...]:
    return tuple(
        model.objects.count()
        for model in (Conversation, Message, Hold, Transaction, IdempotencyRecord)
    )


# The home page ------------------------------------------------------------------------


@pytest.mark.urls(__name__)
def test_home_page_says_what_eora_is_and_how_points_work(
    client: Client, db: None, settings
) -> None:
    settings.POINTS_PER_TOKEN = "1.5"
    settings.SIGNUP_BONUS_POINTS = 30_000

    page = client.get("/")

    assert page.status_code == 200
    text = page.content.decode()
    assert "토큰당 1.5 포인트" in text
    assert "30,000 포인트" in text
    assert "20,000토큰" in text
    assert f'href="{reverse("accounts:signup")}"' in text
    assert f'href="{reverse("accounts:login")}"' in text


@pytest.mark.urls(__name__)
def test_home_page_sends_signed_in_people_to_their_chats(signed_in: Client) -> None:
    response = signed_in.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:index")


# Conversation lists -------------------------------------------------------------------


def test_chat_list_groups_conversations_by_seoul_day(
    signed_in: Client, settings
) -> None:
    # Given conversations last active at these Seoul times
    settings.TIME_ZONE = "Asia/Seoul"
    moments = {
        "older": datetime(2025, 2, 1, 12, 0, tzinfo=SEOUL),
        "last week": datetime(2025, 3, 5, 9, 0, tzinfo=SEOUL),
        # The same UTC day as "now", but the day before in Seoul.
        "yesterday": datetime(2025, 3, 10, 23, 50, tzinfo=SEOUL),
        "today": datetime(2025, 3, 11, 0, 10, tzinfo=SEOUL),
    }
    for title, moment in moments.items():
        with time_machine.travel(moment, tick=False):
            ask(signed_in, title)

    # When the list is read early on 11 March in Seoul (still 10 March in UTC)
    with time_machine.travel(datetime(2025, 3, 11, 0, 30, tzinfo=SEOUL), tick=False):
        response = signed_in.get(reverse("chat:index"))

    # Then each is under its Seoul day
    groups = [
        (group.label, [c.title for c in group.conversations])
        for group in response.context["conversation_groups"]
    ]
    assert groups == [
        ("오늘", ["today"]),
        ("어제", ["yesterday"]),
        ("지난 7일", ["last week"]),
        ("이전", ["older"]),
    ]


def test_chat_list_searches_titles_and_messages_of_own_conversations(
    signed_in: Client, make_user
) -> None:
    ask(signed_in, "감자튀김 만드는 법")
    ask(signed_in, "날씨 이야기")
    stranger = Client()
    stranger.force_login(make_user())
    ask(stranger, "감자튀김 좋아하세요")

    by_title = signed_in.get(reverse("chat:index"), {"q": "감자튀김"})
    # The demo model's answers say it is an offline demo model.
    by_content = signed_in.get(reverse("chat:index"), {"q": "오프라인"})

    assert [c.title for c in by_title.context["conversations"]] == [
        "감자튀김 만드는 법"
    ]
    assert [c.title for c in by_content.context["conversations"]] == [
        "날씨 이야기",
        "감자튀김 만드는 법",
    ]
    assert "감자튀김" in by_title.content.decode()


def test_chat_list_search_query_count_is_fixed(
    signed_in: Client, django_assert_num_queries
) -> None:
    for index in range(3):
        ask(signed_in, f"question {index}")
    with django_assert_num_queries(4):
        signed_in.get(reverse("chat:index"), {"q": "question"})


# The conversation page ----------------------------------------------------------------


def test_conversation_page_preselects_the_model_of_its_last_message(
    signed_in: Client, settings
) -> None:
    settings.LLM_MODELS = TWO_MODELS
    ask(signed_in, "first", model="eora-large")
    conversation = Conversation.objects.get()

    page = signed_in.get(reverse("chat:conversation", args=[conversation.pk]))
    new_chat = signed_in.get(reverse("chat:new"))

    assert page.context["selected_model"] == "eora-large"
    assert '<option value="eora-large" selected>' in page.content.decode()
    assert new_chat.context["selected_model"] == "eora-demo"


def test_model_picker_shows_each_models_price_per_thousand_tokens(
    signed_in: Client, settings
) -> None:
    settings.LLM_MODELS = TWO_MODELS
    ModelRate.objects.create(
        model="eora-large", prompt_rate="0.5", completion_rate="1.25"
    )

    page = signed_in.get(reverse("chat:new")).content.decode()

    assert "eora-demo · 1,000토큰당 2,000 포인트" in page
    assert "eora-large · 1,000토큰당 입력 500 / 출력 1,250 포인트" in page


def test_conversation_page_shows_each_answer_and_the_running_total(
    signed_in: Client,
) -> None:
    ask(signed_in, "안녕하세요!")
    conversation = Conversation.objects.get()
    ask(signed_in, "한 번 더", session_id=str(conversation.pk))
    answers = list(Message.objects.filter(role="assistant"))

    page = signed_in.get(reverse("chat:conversation", args=[conversation.pk]))

    text = page.content.decode()
    total = sum(answer.points_charged for answer in answers)
    assert page.context["conversation_points"] == total
    assert f"이 채팅: {total:,} 포인트" in text
    for answer in answers:
        assert (
            f"eora-demo · 토큰: 입력 {answer.prompt_tokens} / 출력 "
            f"{answer.completion_tokens} · {answer.points_charged:,} 포인트"
        ) in text
    # The text is kept whole for the page's Markdown; no length cut on the box
    assert "<br>" not in text.split('id="messages"')[1].split("</ol>")[0]
    assert "maxlength" not in text.split('id="message"')[1].split(">")[0]


def test_conversation_page_query_count_is_fixed(
    signed_in: Client, django_assert_num_queries
) -> None:
    ask(signed_in, "one")
    conversation = Conversation.objects.get()
    for index in range(3):
        ask(signed_in, f"more {index}", session_id=str(conversation.pk))
        ask(signed_in, f"another conversation {index}")
    # session, user, conversation, its messages, the sidebar, the points account
    # (the model's rate was read by the turns just before, and kept)
    with django_assert_num_queries(6):
        signed_in.get(reverse("chat:conversation", args=[conversation.pk]))


def test_header_shows_a_low_balance_notice_below_the_threshold(
    signed_in: Client, user, settings
) -> None:
    settings.LOW_BALANCE_POINTS = 2_000
    above = signed_in.get(reverse("chat:new")).content.decode()
    ledger.debit(
        account=user.points_account,
        amount=user.points_account.available - 1_999,
        description="test",
    )

    below = signed_in.get(reverse("chat:new")).content.decode()

    notice = re.compile(r'<p class="low-balance" id="low-balance"[^>]*>')
    assert notice.search(above) and " hidden" in notice.search(above).group(0)
    assert notice.search(below) and " hidden" not in notice.search(below).group(0)
    assert "2,000 포인트 미만" in below
    assert f'<a href="{reverse("points:overview")}">' in below


# The estimate -------------------------------------------------------------------------


def test_estimate_is_what_the_following_turn_holds(signed_in: Client) -> None:
    # Given a conversation with history, so the prompt carries context
    ask(signed_in, "안녕하세요!")
    conversation = Conversation.objects.get()
    body = {"session_id": str(conversation.pk), "message": "포인트는 어떻게 쓰나요?"}

    # When the page asks for an estimate, then sends the turn
    quote = estimate(signed_in, body).json()
    assert ask_api(signed_in, body).status_code == 200

    # Then the turn held the estimate's maximum for the same prompt
    hold = Hold.objects.order_by("-created_at", "-pk").first()
    answer = Message.objects.filter(role="assistant").order_by("-pk").first()
    assert quote["success"] is True
    assert hold.amount == quote["maximum_points"]
    assert answer.prompt_tokens == quote["prompt_tokens"]
    assert quote["minimum_points"] <= answer.points_charged <= quote["maximum_points"]
    assert quote["completion_limit"] > 0
    assert quote["affordable"] is True


def test_estimate_writes_nothing(signed_in: Client) -> None:
    ask(signed_in, "안녕하세요!")
    conversation = Conversation.objects.get()
    before = rows_written()

    with CaptureQueriesContext(connection) as queries:
        response = estimate(
            signed_in, {"session_id": str(conversation.pk), "message": "더 알려줘"}
        )

    assert response.status_code == 200
    assert rows_written() == before
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if re.match(r"\s*(INSERT|UPDATE|DELETE)", q["sql"], re.I)
    ]
    assert writes == []


def test_estimate_warns_when_the_balance_cannot_pay_a_full_answer(
    signed_in: Client, user
) -> None:
    ledger.debit(
        account=user.points_account,
        amount=user.points_account.available - 100,
        description="test",
    )

    quote = estimate(signed_in, {"message": "안녕하세요!"}).json()

    assert quote["available"] == 100
    assert quote["maximum_points"] > 100
    assert quote["affordable"] is False


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"message": "가" * 9}, 400, "message_too_long"),
        ({"message": "  "}, 400, "invalid_message"),
        ({"message": "hi", "model": "no-such-model"}, 404, "model_not_found"),
        (
            {"message": "hi", "session_id": str(uuid.uuid4())},
            404,
            "conversation_not_found",
        ),
        ({"message": 5}, 400, "invalid_request"),
    ],
)
def test_estimate_refuses_bad_input_in_the_api_envelope(
    signed_in: Client, settings, body: dict, status: int, code: str
) -> None:
    settings.CHAT_MAX_MESSAGE_CHARS = 8

    response = estimate(signed_in, body)

    assert response.status_code == status
    assert response.json()["success"] is False
    assert response.json()["code"] == code
    assert response.json()["error"]


def test_estimate_needs_a_session_and_csrf(user) -> None:
    anonymous = Client()
    with_session = Client(enforce_csrf_checks=True)
    with_session.force_login(user)

    assert estimate(anonymous, {"message": "hi"}).status_code == 401
    assert estimate(anonymous, {"message": "hi"}).json()["code"] == "not_authenticated"
    assert estimate(with_session, {"message": "hi"}).status_code == 403
    assert with_session.get(reverse("chat:estimate")).status_code == 405


def test_estimate_of_another_users_conversation_is_404(
    signed_in: Client, make_user
) -> None:
    theirs = Client()
    theirs.force_login(make_user())
    ask(theirs, "private")
    conversation = Conversation.objects.get()

    response = estimate(
        signed_in, {"session_id": str(conversation.pk), "message": "hi"}
    )

    assert response.status_code == 404


# How a turn ended (after Stop) --------------------------------------------------------


def test_turn_outcome_repeats_the_turns_result_without_charging(
    signed_in: Client, user
) -> None:
    key = uuid.uuid4().hex
    first = ask_api(signed_in, {"message": "안녕하세요!"}, key=key).json()
    charges = Transaction.objects.count()

    outcome = signed_in.get(reverse("chat:turn-outcome", args=[key]))

    assert outcome.status_code == 200
    body = outcome.json()
    assert body["response"] == first["response"]
    assert body["status"] == "complete"
    assert body["session_id"] == first["session_id"]
    assert body["points_info"]["deducted"] == first["points_info"]["deducted"]
    assert Transaction.objects.count() == charges


def test_turn_outcome_is_only_for_the_turns_owner(signed_in: Client, make_user) -> None:
    key = uuid.uuid4().hex
    ask_api(signed_in, {"message": "안녕하세요!"}, key=key)
    stranger = Client()
    stranger.force_login(make_user())

    assert stranger.get(reverse("chat:turn-outcome", args=[key])).status_code == 404
    unknown = signed_in.get(reverse("chat:turn-outcome", args=[uuid.uuid4().hex]))
    assert unknown.json()["code"] == "turn_not_found"
    assert Client().get(reverse("chat:turn-outcome", args=[key])).status_code == 401
    assert (
        signed_in.get(reverse("chat:turn-outcome", args=["x" * 32])).status_code == 404
    )


# Renaming through the API -------------------------------------------------------------


def test_conversation_can_be_renamed_with_patch(client: Client, user) -> None:
    _key, secret = create_api_key(user=user, name="test")
    conversation = Conversation.objects.create(owner=user, title="old")
    updated_at = conversation.updated_at
    url = reverse("api-conversation", args=[conversation.pk])
    auth = {"Authorization": f"Bearer {secret}"}

    response = client.patch(
        url, {"title": "  새 이름  "}, content_type="application/json", headers=auth
    )
    blank = client.patch(
        url, {"title": "   "}, content_type="application/json", headers=auth
    )
    too_long = client.patch(
        url, {"title": "가" * 201}, content_type="application/json", headers=auth
    )

    assert response.status_code == 200
    assert response.json()["conversation"]["title"] == "새 이름"
    conversation.refresh_from_db()
    assert (conversation.title, conversation.updated_at) == ("새 이름", updated_at)
    assert (blank.status_code, blank.json()["success"]) == (400, False)
    assert too_long.status_code == 400


def test_renaming_another_users_conversation_is_404(
    client: Client, user, make_user
) -> None:
    _key, secret = create_api_key(user=user, name="test")
    theirs = Conversation.objects.create(owner=make_user(), title="theirs")

    response = client.patch(
        reverse("api-conversation", args=[theirs.pk]),
        {"title": "mine now"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.title == "theirs"


# The pages' language and the API's ----------------------------------------------------


def test_api_called_from_the_pages_answers_in_the_pages_language(
    signed_in: Client,
) -> None:
    # A signed-in page never chose a language: Korean, whatever the browser says
    korean = ask_api(signed_in, {"message": " "}, key=None)
    english_browser = signed_in.post(
        reverse("api-chat"),
        {"message": " "},
        content_type="application/json",
        headers={"Accept-Language": "en-US,en;q=0.9"},
    )
    assert korean.json()["error"] == english_browser.json()["error"]
    assert english_browser["Content-Language"] == "ko"

    # After choosing English in the menu, pages and API are English
    signed_in.post(reverse("set_language"), {"language": "en", "next": "/chat/"})
    english = ask_api(signed_in, {"message": " "})
    assert english["Content-Language"] == "en"
    assert english.json()["error"] != korean.json()["error"]


def test_api_clients_still_choose_with_accept_language(client: Client, user) -> None:
    _key, secret = create_api_key(user=user, name="test")

    response = client.post(
        reverse("api-chat"),
        {"message": " "},
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}", "Accept-Language": "en"},
    )

    assert response["Content-Language"] == "en"


# Error pages --------------------------------------------------------------------------


def test_missing_page_is_shown_in_the_site_layout_and_language(
    signed_in: Client,
) -> None:
    korean = signed_in.get(f"/chat/{uuid.uuid4()}/")
    signed_in.post(reverse("set_language"), {"language": "en", "next": "/"})
    english = signed_in.get("/no-such-page/")

    assert korean.status_code == 404
    assert 'class="topbar"' in korean.content.decode()
    assert "페이지를 찾을 수 없습니다" in korean.content.decode()
    assert english.status_code == 404
    assert "Page not found" in english.content.decode()


def test_server_error_page_is_shown_in_the_site_layout(db: None) -> None:
    # Django renders 500.html with no request and no context at all, in the
    # language the failed request had activated
    with translation.override("ko"):
        bare = loader.get_template("500.html").render()
        response = errors_views.server_error(RequestFactory().get("/chat/"))

    assert response.status_code == 500
    page = response.content.decode()
    assert 'class="topbar"' in page
    assert "문제가 발생했습니다" in page
    assert "csrfmiddlewaretoken" not in page
    assert "문제가 발생했습니다" in bare


# Vendored browser libraries -----------------------------------------------------------


def test_vendored_libraries_are_the_versions_the_makefile_fetches() -> None:
    vendor = ROOT / "static" / "vendor"
    versions = dict(
        line.split(" ", 1) for line in (vendor / "VERSIONS").read_text().splitlines()
    )
    makefile = (ROOT / "Makefile").read_text()
    variables = {
        "marked": "MARKED_VERSION",
        "dompurify": "DOMPURIFY_VERSION",
        "@highlightjs/cdn-assets": "HIGHLIGHT_VERSION",
    }
    for package, variable in variables.items():
        assert f"{variable} ?= {versions[package]}\n" in makefile
    assert (
        f"marked v{versions['marked']}" in (vendor / "marked/marked.umd.js").read_text()
    )
    assert (
        f"@license DOMPurify {versions['dompurify']}"
        in (vendor / "dompurify/purify.min.js").read_text()
    )
    assert (
        f"Highlight.js v{versions['@highlightjs/cdn-assets']}"
        in (vendor / "highlight/highlight.min.js").read_text()
    )
    for library in ("marked", "dompurify", "highlight"):
        assert (vendor / library / "LICENSE").is_file()
