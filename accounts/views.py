from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts.api_keys import create_api_key, revoke_api_key
from accounts.forms import ApiKeyForm, SignupForm
from accounts.models import ApiKey
from eora.errors import ServiceError


@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return HttpResponseRedirect(reverse("home"))
    return render(
        request,
        "accounts/signup.html",
        {"form": form, "bonus": f"{settings.SIGNUP_BONUS_POINTS:,}"},
    )


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    """List the user's API keys; create one (shown once) or revoke one."""
    new_secret = None
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
                _key, new_secret = create_api_key(
                    user=request.user, name=form.cleaned_data["name"]
                )
                form = ApiKeyForm()
        except (ServiceError, ValueError) as error:
            messages.error(
                request, str(getattr(error, "message", _("Invalid request.")))
            )
            return redirect("api-keys-page")
    keys = ApiKey.objects.filter(user=request.user).order_by("-created_at")
    return render(
        request,
        "accounts/api_keys.html",
        {"keys": keys, "form": form, "new_secret": new_secret},
    )
