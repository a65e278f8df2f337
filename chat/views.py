"""The chat pages. Sending works with JavaScript (streamed through /api/chat) and
without it (a form post that answers with a redirect)."""

import uuid

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from chat.models import Conversation
from chat.providers import get_provider, provider_label
from chat.selectors import conversations_for, messages_of
from chat.services import TurnRequest, TurnResult, available_models, prepare_turn
from chat.streaming import Failed, complete_turn
from eora.errors import ServiceError
from points.exceptions import InsufficientPoints

SIDEBAR_CONVERSATIONS = 30


def _page_context(request: HttpRequest, conversation: Conversation | None) -> dict:
    return {
        "conversation": conversation,
        "chat_messages": messages_of(conversation) if conversation else [],
        "conversations": conversations_for(request.user)[:SIDEBAR_CONVERSATIONS],
        "models": available_models(),
        "provider_label": provider_label(),
        "is_demo": settings.LLM_PROVIDER == "demo",
        "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        # A double-submitted form sends the same key: charged once.
        "turn_key": uuid.uuid4().hex,
    }


@login_required
@require_GET
def conversation_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "chat/list.html",
        {
            "conversations": conversations_for(request.user),
            "provider_label": provider_label(),
        },
    )


@login_required
@require_GET
def new_conversation(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/conversation.html", _page_context(request, None))


@login_required
@require_GET
def conversation_detail(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation = get_object_or_404(
        Conversation, pk=conversation_id, owner=request.user
    )
    return render(
        request, "chat/conversation.html", _page_context(request, conversation)
    )


def _error_message(error: ServiceError) -> str:
    if isinstance(error, InsufficientPoints):
        return format_html(
            '{} <a href="{}">{}</a>',
            error.message,
            reverse("points:overview"),
            _("My points"),
        )
    return str(error.message)


@require_POST
async def send_message(request: HttpRequest) -> HttpResponse:
    """Run a turn for a plain form post (no JavaScript) and redirect back."""
    user = await request.auser()
    if not user.is_authenticated:
        return HttpResponseRedirect(
            f"{reverse('accounts:login')}?next={reverse('chat:index')}"
        )
    session_id = request.POST.get("session_id") or None
    back = (
        reverse("chat:conversation", args=[session_id])
        if session_id
        else reverse("chat:new")
    )
    turn_request = TurnRequest(
        user=user,
        message=request.POST.get("message", ""),
        model=request.POST.get("model") or None,
        conversation_id=session_id,
        idempotency_key=request.POST.get("turn_key", "").strip()[:64] or None,
    )
    try:
        prepared = await sync_to_async(prepare_turn)(turn_request)
    except ServiceError as error:
        await sync_to_async(messages.error)(request, _error_message(error))
        if error.status_code == 404:
            raise Http404(str(error.message)) from error
        return HttpResponseRedirect(back)
    result = prepared
    if not isinstance(prepared, TurnResult):
        outcome = await complete_turn(prepared, get_provider())
        if isinstance(outcome, Failed):
            result = None
            await sync_to_async(messages.error)(request, _error_message(outcome.error))
        else:
            result = outcome.result
    if result is not None and result.conversation_id:
        back = reverse("chat:conversation", args=[result.conversation_id])
    return HttpResponseRedirect(back)
