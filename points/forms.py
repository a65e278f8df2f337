from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from points.dashboard import MAX_PERIOD_DAYS
from points.services import MAX_POINTS


class AdjustmentForm(forms.Form):
    delta = forms.IntegerField(
        label=_("Points to add (negative to take away)"),
        min_value=-MAX_POINTS,
        max_value=MAX_POINTS,
    )
    reason = forms.CharField(
        label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3})
    )

    def clean_delta(self) -> int:
        delta = self.cleaned_data["delta"]
        if delta == 0:
            raise forms.ValidationError(_("The adjustment must not be zero."))
        return delta

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(_("A reason is required."))
        return reason


class LimitsForm(forms.Form):
    """The user's own limits on points spent, and the low-balance alert."""

    daily = forms.IntegerField(
        label=_("Daily limit (points)"), required=False, min_value=1
    )
    monthly = forms.IntegerField(
        label=_("Monthly limit (points)"), required=False, min_value=1
    )
    alert_below = forms.IntegerField(
        label=_("Alert me below (points)"), required=False, min_value=1
    )


DASHBOARD_PERIODS = (7, 30, 90)
DEFAULT_DASHBOARD_PERIOD = 30
DEFAULT_LOW_BALANCE = 1_000
DEFAULT_TOP_USERS = 20
PERIOD_TOO_LONG_MESSAGE = _("A period is at most %(days)d days.")
PERIOD_BACKWARDS_MESSAGE = _("The first day must not be after the last.")


class DashboardForm(forms.Form):
    """The dashboard's period (last N days, or since/until) and its thresholds."""

    days = forms.TypedChoiceField(
        label=_("Period"),
        choices=[],
        coerce=int,
        empty_value=None,
        required=False,
    )
    since = forms.DateField(label=_("Since"), required=False)
    until = forms.DateField(label=_("Until"), required=False)
    threshold = forms.IntegerField(
        label=_("Low balance below"),
        min_value=0,
        max_value=MAX_POINTS,
        required=False,
    )
    top = forms.IntegerField(
        label=_("Top users"), min_value=1, max_value=200, required=False
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # Built per form: the labels are in the request's language.
        self.fields["days"].choices = [("", _("Dates below"))] + [
            (str(days), _("Last %(days)d days") % {"days": days})
            for days in DASHBOARD_PERIODS
        ]

    def clean(self) -> dict:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since is None and until is None:
            return cleaned
        until = until or timezone.localdate()
        since = since or until
        if since > until:
            raise forms.ValidationError(PERIOD_BACKWARDS_MESSAGE)
        if (until - since).days + 1 > MAX_PERIOD_DAYS:
            raise forms.ValidationError(
                PERIOD_TOO_LONG_MESSAGE % {"days": MAX_PERIOD_DAYS}
            )
        cleaned["since"], cleaned["until"] = since, until
        return cleaned
