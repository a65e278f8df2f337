import pytest
from django.test import Client
from django.urls import reverse

from chat.models import Conversation, Message
from points.exceptions import INSUFFICIENT_POINTS_MESSAGE
from points.services import adjust


@pytest.fixture
def signed_in(client: Client, user) -> Client:
    client.force_login(user)
    return client


def send(client: Client, message: str, session_id: str = ""):
    return client.post(
        reverse("chat:send"),
        {"message": message, "session_id": session_id},
        follow=True,
    )


def test_chat_list_shows_own_conversations_newest_first(
    signed_in: Client, user, make_user
) -> None:
    send(signed_in, "first question")
    send(signed_in, "second question")
    Conversation.objects.create(owner=make_user(), title="someone else's")

    response = signed_in.get(reverse("chat:index"))

    titles = [c.title for c in response.context["conversations"]]
    assert titles == ["second question", "first question"]


def test_chat_list_query_count_is_fixed(
    signed_in: Client, django_assert_num_queries
) -> None:
    for index in range(3):
        send(signed_in, f"question {index}")
    with django_assert_num_queries(4):
        signed_in.get(reverse("chat:index"))


def test_form_post_without_javascript_runs_a_turn(signed_in: Client, user) -> None:
    response = send(signed_in, "안녕하세요!")

    conversation = Conversation.objects.get(owner=user)
    assert response.redirect_chain[-1][0] == reverse(
        "chat:conversation", args=[conversation.pk]
    )
    page = response.content.decode()
    assert "안녕하세요!" in page
    assert Message.objects.filter(conversation=conversation).count() == 2
    answer = Message.objects.get(role="assistant")
    assert f"{answer.points_charged}" in page


def test_conversation_page_shows_tokens_and_points_per_answer(
    signed_in: Client,
) -> None:
    response = send(signed_in, "hello")
    answer = Message.objects.get(role="assistant")

    meta = f"{answer.prompt_tokens}"
    assert meta in response.content.decode()
    assert response.context["chat_messages"][1].points_charged == answer.points_charged


def test_conversation_page_of_another_user_is_404(signed_in: Client, make_user) -> None:
    theirs = Conversation.objects.create(owner=make_user())
    response = signed_in.get(reverse("chat:conversation", args=[theirs.pk]))
    assert response.status_code == 404


def test_form_post_without_points_shows_seed_message_and_points_link(
    signed_in: Client, user, staff_user
) -> None:
    adjust(
        account=user.points_account, delta=-99_999, reason="test", by_user=staff_user
    )

    response = send(signed_in, "hello")

    page = response.content.decode()
    assert str(INSUFFICIENT_POINTS_MESSAGE) in page
    assert f'href="{reverse("points:overview")}"' in page
    assert not Conversation.objects.exists()


def test_empty_form_post_shows_error(signed_in: Client) -> None:
    response = send(signed_in, "  ")
    assert response.status_code == 200
    assert list(response.context["messages"])
    assert not Conversation.objects.exists()


def test_chat_pages_need_login(client: Client) -> None:
    assert client.get(reverse("chat:index")).status_code == 302
    assert client.get(reverse("chat:new")).status_code == 302


def test_demo_model_is_labelled_offline_demo(signed_in: Client) -> None:
    page = signed_in.get(reverse("chat:new")).content.decode()
    assert "badge" in page


def test_english_page_on_request(signed_in: Client) -> None:
    signed_in.post(reverse("set_language"), {"language": "en", "next": "/chat/"})
    assert "New chat" in signed_in.get(reverse("chat:index")).content.decode()
