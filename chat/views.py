"""The chat pages. Sending works with JavaScript (streamed through /api/chat) and
without it (a form post that answers with a redirect)."""

import re
import uuid
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from chat.api import parse_chat_request, result_body
from chat.exceptions import TurnNotFound
from chat.models import Conversation, Message, MessageRole
from chat.providers import get_provider, provider_label
from chat.selectors import conversations_for, matching, messages_of, turn_hold
from chat.services import (
    TurnRequest,
    TurnResult,
    available_models,
    estimate_turn,
    prepare_turn,
    replay_result,
)
from chat.streaming import Failed, complete_turn
from common.errors import ServiceError
from common.http import NotAuthenticated, json_object
from common.metrics import Endpoint
from common.rendering import error_response, page_message
from points.pricing import discounted_rate, rates_for
from points.selectors import active_tier
from points.services import account_of

SIDEBAR_CONVERSATIONS = 30
SEARCH_MAX_LENGTH = 100
PRICE_UNIT_TOKENS = 1000
# The chat page makes its turn keys with 32 hex digits.
PAGE_TURN_KEY = re.compile(r"^[0-9a-f]{32}$")
# Conversations are grouped by the day they were last active, in local days
# (TIME_ZONE, Asia/Seoul by default): up to this many days ago, under this label.
DAY_GROUPS = (
    (0, gettext_lazy("Today")),
    (1, gettext_lazy("Yesterday")),
    (7, gettext_lazy("Previous 7 days")),
)
OLDER_GROUP = gettext_lazy("Older")


@dataclass(frozen=True)
class ModelChoice:
    name: str
    label: str


@dataclass(frozen=True)
class ConversationGroup:
    label: str
    conversations: list[Conversation]


def group_by_day(
    conversations: list[Conversation], *, today: date
) -> list[ConversationGroup]:
    """Group conversations, newest first, by how many local days ago they were
    last active: today, yesterday, the previous 7 days, older."""
    groups: dict[str, list[Conversation]] = {}
    for conversation in conversations:
        age = (today - timezone.localdate(conversation.updated_at)).days
        label = next((label for days, label in DAY_GROUPS if age <= days), OLDER_GROUP)
        groups.setdefault(str(label), []).append(conversation)
    return [ConversationGroup(label, items) for label, items in groups.items()]


def _per_thousand(rate: Decimal) -> str:
    return format((rate * PRICE_UNIT_TOKENS).normalize(), ",f")


def model_choices(discount_bps: int = 0) -> list[ModelChoice]:
    """Return the models users may choose, each labelled with its price, and
    with the user's own price beside it under a tier discount."""
    choices = []
    for model in available_models():
        rates = rates_for(model)
        prompt, completion = (
            _per_thousand(rates.prompt),
            _per_thousand(rates.completion),
        )
        if prompt == completion:
            label = _("%(model)s · %(points)s points per 1,000 tokens") % {
                "model": model,
                "points": prompt,
            }
        else:
            label = _(
                "%(model)s · per 1,000 tokens: %(prompt)s points in, %(completion)s out"
            ) % {"model": model, "prompt": prompt, "completion": completion}
        if discount_bps:
            yours = (
                _per_thousand(discounted_rate(rates.prompt, discount_bps)),
                _per_thousand(discounted_rate(rates.completion, discount_bps)),
            )
            if yours[0] == yours[1]:
                label += " " + _("(yours: %(points)s)") % {"points": yours[0]}
            else:
                label += " " + _("(yours: %(prompt)s in, %(completion)s out)") % {
                    "prompt": yours[0],
                    "completion": yours[1],
                }
        choices.append(ModelChoice(model, label))
    return choices


def _conversation_model(chat_messages: list[Message]) -> str:
    """Return the model of the conversation's last message, if still offered."""
    models = available_models()
    for message in reversed(chat_messages):
        if message.model in models:
            return message.model
    return models[0]


def _page_context(request: HttpRequest, conversation: Conversation | None) -> dict:
    chat_messages = list(messages_of(conversation)) if conversation else []
    sidebar = list(conversations_for(request.user)[:SIDEBAR_CONVERSATIONS])
    # The header reads the same account (this overrides its lazy one): one query.
    account = account_of(user=request.user)
    tier = active_tier(account)
    return {
        "conversation": conversation,
        "chat_messages": chat_messages,
        "conversation_points": sum(
            message.points_charged
            for message in chat_messages
            if message.role == MessageRole.ASSISTANT
        ),
        "conversation_groups": group_by_day(sidebar, today=timezone.localdate()),
        "models": model_choices(tier.discount_bps if tier else 0),
        "points_account": account,
        "tier": tier,
        "selected_model": _conversation_model(chat_messages),
        "provider_label": provider_label(),
        "is_demo": settings.LLM_PROVIDER == "demo",
        "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        # A double-submitted form sends the same key: charged once.
        "turn_key": uuid.uuid4().hex,
    }


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Say what EORA is and how points work; signed-in people go to their chats."""
    if request.user.is_authenticated:
        return redirect("chat:index")
    per_token = Decimal(settings.POINTS_PER_TOKEN)
    bonus = settings.SIGNUP_BONUS_POINTS
    return render(
        request,
        "home.html",
        {
            "points_per_token": format(per_token.normalize(), ",f"),
            "signup_bonus": f"{bonus:,}",
            "bonus_tokens": f"{int(bonus / per_token):,}" if per_token else "",
        },
    )


@login_required
@require_GET
def conversation_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:SEARCH_MAX_LENGTH]
    rows = conversations_for(request.user)
    if query:
        rows = matching(rows, query)
    conversations = list(rows)
    return render(
        request,
        "chat/list.html",
        {
            "query": query,
            "conversations": conversations,
            "conversation_groups": group_by_day(
                conversations, today=timezone.localdate()
            ),
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


@require_POST
def estimate(request: HttpRequest) -> JsonResponse:
    """Quote the next turn as the chat page would send it; write nothing.

    The body is the one the page sends to /api/chat (`session_id`, `message`,
    `model`); the answer is `points.pricing.Quote` as JSON.
    """
    try:
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        turn = parse_chat_request(json_object(request), request, request.user)
        quote = estimate_turn(turn)
    except ServiceError as error:
        return error_response(error)
    return JsonResponse(
        {"success": True, **asdict(quote), "affordable": quote.affordable}
    )


@require_GET
def turn_outcome(request: HttpRequest, key: str) -> JsonResponse:
    """Return how the page's turn with this Idempotency-Key ended; write nothing.

    A page that stopped an answer has left before its `done` event: this tells
    it what was kept and charged, in the body /api/chat would have sent. An
    unfinished turn answers 409 `request_in_progress` until it is settled.
    """
    try:
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        if not PAGE_TURN_KEY.match(key):
            raise TurnNotFound()
        result = replay_result(turn_hold(request.user, key))
    except ServiceError as error:
        return error_response(error)
    return JsonResponse(result_body(result))


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
        endpoint=Endpoint.PAGE,
    )
    try:
        prepared = await sync_to_async(prepare_turn)(turn_request)
    except ServiceError as error:
        await sync_to_async(messages.error)(request, page_message(error))
        if error.status_code == 404:
            raise Http404(str(error.message)) from error
        return HttpResponseRedirect(back)
    result = prepared
    if not isinstance(prepared, TurnResult):
        outcome = await complete_turn(prepared, get_provider())
        if isinstance(outcome, Failed):
            result = None
            await sync_to_async(messages.error)(request, page_message(outcome.error))
        else:
            result = outcome.result
    if result is not None and result.conversation_id:
        back = reverse("chat:conversation", args=[result.conversation_id])
    return HttpResponseRedirect(back)
