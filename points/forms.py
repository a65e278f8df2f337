from django import forms
from django.utils.translation import gettext_lazy as _

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
