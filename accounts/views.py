import hashlib
import unicodedata
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts.api_keys import create_api_key, revoke_api_key
from accounts.forms import ApiKeyForm, SignupForm
from accounts.models import ApiKey, User
from common.errors import ServiceError
from common.http import Throttled
from common.rendering import page_message
from common.throttles import Window, count_in_windows
from points.selectors import key_spending

SIGNUP_THROTTLED_MESSAGE = gettext_lazy(
    "Too many sign-up attempts from your network. Please try again later."
)
LOGIN_THROTTLED_MESSAGE = gettext_lazy(
    "Too many login attempts. Please try again later."
)
PASSWORD_RESET_THROTTLED_MESSAGE = gettext_lazy(
    "Too many password reset requests. Please try again later."
)
HOUR_SECONDS = 3600


@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    if request.method == "POST":
        # Per client address only: it slows down probing which addresses have
        # accounts, and the address typed is the one being probed.
        wait = form_post_wait(
            request, scope="signup", per_hour=settings.SIGNUP_RATE_PER_HOUR, email=""
        )
        if wait is not None:
            return _throttled_signup(request, wait=wait)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return HttpResponseRedirect(reverse("home"))
    return _signup_page(request, form)


def _throttled_signup(request: HttpRequest, *, wait: float) -> HttpResponse:
    # An unbound form: validating it would look the address up after all.
    form = SignupForm(initial={"email": request.POST.get("email", "")})
    refusal = Throttled(wait=wait)
    response = _signup_page(
        request,
        form,
        refusal=str(SIGNUP_THROTTLED_MESSAGE),
        status=refusal.status_code,
    )
    response["Retry-After"] = str(refusal.retry_after)
    return response


def _signup_page(
    request: HttpRequest,
    form: SignupForm,
    *,
    refusal: str | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "form": form,
        "bonus": f"{settings.SIGNUP_BONUS_POINTS:,}",
        "refusal": refusal,
    }
    return render(request, "accounts/signup.html", context, status=status)


def form_post_wait(
    request: HttpRequest, *, scope: str, per_hour: int, email: str
) -> float | None:
    """Count a form post per client address and per the account its email names.

    Return None if it may go on, else the seconds until it may be sent again.
    The client address is REMOTE_ADDR, which the server sets from the proxy's
    forwarded header when it trusts the proxy (uvicorn's --proxy-headers), never
    a header a client writes. Without an email only the address counts. The
    second window is the account's that the login and reset forms find for the email
    (their own case-insensitive lookup, so no spelling of the address counts
    apart), or the email's digest when no account has it: a guesser who spreads
    over many networks still meets the limit of the account aimed at.
    """
    windows = [
        Window(
            key=f"throttle_{scope}_address_{request.META.get('REMOTE_ADDR', '')}",
            limit=per_hour,
            duration=HOUR_SECONDS,
        )
    ]
    email = email.strip()
    if email:
        windows.append(
            Window(
                key=f"throttle_{scope}_{_email_ident(email)}",
                limit=per_hour,
                duration=HOUR_SECONDS,
            )
        )
    return count_in_windows(windows)


def _email_ident(email: str) -> str:
    user_id = (
        User.objects.filter(email__iexact=email)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    if user_id is not None:
        return f"user_{user_id}"
    folded = unicodedata.normalize("NFKC", email).casefold()
    return f"email_{hashlib.sha256(folded.encode()).hexdigest()}"


class ThrottledPostMixin:
    """Refuse a form's posts past a rate an hour with 429 and the form again.

    A refused post is not looked at: no password is checked and no email sent.
    """

    throttle_scope: str
    rate_setting: str
    throttled_message: Any
    email_field: str

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = form_post_wait(
            request,
            scope=self.throttle_scope,
            per_hour=getattr(settings, self.rate_setting),
            email=request.POST.get(self.email_field, ""),
        )
        if wait is None:
            return super().post(request, *args, **kwargs)
        refusal = Throttled(wait=wait)
        unbound = {
            name: value
            for name, value in self.get_form_kwargs().items()
            if name not in ("data", "files")
        }
        # The email stays filled in; the form is not validated, so nothing is checked.
        unbound["initial"] = {
            **unbound.get("initial", {}),
            self.email_field: request.POST.get(self.email_field, ""),
        }
        form = self.get_form_class()(**unbound)
        context = self.get_context_data(form=form, refusal=str(self.throttled_message))
        response = self.render_to_response(context, status=refusal.status_code)
        response["Retry-After"] = str(refusal.retry_after)
        return response


class LoginView(ThrottledPostMixin, auth_views.LoginView):
    """Django's login, its posts limited per address and per account's email."""

    throttle_scope = "login"
    rate_setting = "LOGIN_RATE_PER_HOUR"
    throttled_message = LOGIN_THROTTLED_MESSAGE
    email_field = "username"


class PasswordResetView(ThrottledPostMixin, auth_views.PasswordResetView):
    """Django's password reset, its posts limited per address and per email.

    Each post sends an email, so without a limit anyone could fill a user's
    mailbox with reset links.
    """

    throttle_scope = "password_reset"
    rate_setting = "PASSWORD_RESET_RATE_PER_HOUR"
    throttled_message = PASSWORD_RESET_THROTTLED_MESSAGE
    email_field = "email"


# The full key of a key just made, kept in the session for the one page that
# shows it: the form post answers with a redirect, so a reload makes no second key.
NEW_API_KEY_SESSION_KEY = "accounts.new_api_key"


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    """List the user's API keys; create one (shown once) or revoke one."""
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST":
        try:
            if "revoke" in request.POST:
                key = revoke_api_key(
                    user=request.user, key_id=int(request.POST["revoke"])
                )
                messages.success(
                    request, _("Revoked the key “%(name)s”.") % {"name": key.name}
                )
                return redirect("api-keys-page")
            if form.is_valid():
                _key, secret = create_api_key(
                    user=request.user, name=form.cleaned_data["name"]
                )
                request.session[NEW_API_KEY_SESSION_KEY] = secret
                return redirect("api-keys-page")
        except ValueError:
            messages.error(request, _("Invalid request."))
            return redirect("api-keys-page")
        except ServiceError as error:
            messages.error(request, page_message(error))
            return redirect("api-keys-page")
    new_secret = (
        request.session.pop(NEW_API_KEY_SESSION_KEY, None)
        if request.method == "GET"
        else None
    )
    keys = list(ApiKey.objects.filter(user=request.user).order_by("-created_at"))
    spending = key_spending([key.pk for key in keys])
    for key in keys:
        key.spent_in_period = spending.get(key.pk, 0)
    return render(
        request,
        "accounts/api_keys.html",
        {
            "keys": keys,
            "form": form,
            "new_secret": new_secret,
        },
    )
