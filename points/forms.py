from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import ApiKey
from points.dashboard import MAX_PERIOD_DAYS
from points.limits import day_start
from points.models import TransactionType
from points.selectors import WEB_PAGES, ApiKeyFilter
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


# The dates a filter takes: wide enough for any ledger, narrow enough that the
# day after the last one, in TIME_ZONE and in UTC, is still a datetime.
EARLIEST_FILTER_DATE = date(2000, 1, 1)
LATEST_FILTER_DATE = date(9998, 12, 31)
DATES_REVERSED_MESSAGE = _("The first date must not be after the last.")


class HistoryFilterForm(forms.Form):
    """The points page's history filters, offered from the user's own choices."""

    type = forms.ChoiceField(label=_("Type"), required=False)
    model = forms.ChoiceField(label=_("Model"), required=False)
    api_key = forms.ChoiceField(label=_("API key"), required=False)
    date_from = forms.DateField(
        label=_("From"),
        required=False,
        validators=[
            MinValueValidator(EARLIEST_FILTER_DATE),
            MaxValueValidator(LATEST_FILTER_DATE),
        ],
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    date_to = forms.DateField(
        label=_("To"),
        required=False,
        validators=[
            MinValueValidator(EARLIEST_FILTER_DATE),
            MaxValueValidator(LATEST_FILTER_DATE),
        ],
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(
        self, data: Mapping[str, Any], *, models: list[str], api_keys: list[ApiKey]
    ) -> None:
        super().__init__(data)
        self.fields["type"].choices = [("", _("All types")), *TransactionType.choices]
        self.fields["model"].choices = [
            ("", _("All models")),
            *((model, model) for model in models),
        ]
        self.fields["api_key"].choices = [
            ("", _("Web pages and all keys")),
            (WEB_PAGES, _("Web pages")),
            *((str(key.pk), _key_label(key)) for key in api_keys),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        first, last = data.get("date_from"), data.get("date_to")
        if first is not None and last is not None and first > last:
            raise forms.ValidationError(DATES_REVERSED_MESSAGE)
        return data

    def history_filters(self) -> dict[str, Any]:
        """Return the cleaned filters as `points.selectors.history` takes them."""
        data = self.cleaned_data
        return {
            "types": [data["type"]] if data["type"] else None,
            "model": data["model"] or None,
            "api_key": _api_key_filter(data["api_key"]),
            "since": day_start(data["date_from"]) if data["date_from"] else None,
            "until": (
                day_start(data["date_to"] + timedelta(days=1))
                if data["date_to"]
                else None
            ),
        }

    def api_query(self) -> str:
        """Return the same filters as the history API's query string."""
        filters = self.history_filters()
        query = {
            "type": filters["types"][0] if filters["types"] else None,
            "model": filters["model"],
            "api_key": filters["api_key"],
            "since": filters["since"].isoformat() if filters["since"] else None,
            "until": filters["until"].isoformat() if filters["until"] else None,
        }
        return urlencode({name: value for name, value in query.items() if value})


def _api_key_filter(choice: str) -> ApiKeyFilter | None:
    if not choice:
        return None
    return WEB_PAGES if choice == WEB_PAGES else int(choice)


def _key_label(key: ApiKey) -> str:
    if key.is_active:
        return key.name
    return _("%(name)s (revoked)") % {"name": key.name}
