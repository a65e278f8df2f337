from django import forms
from django.utils.translation import gettext_lazy as _

from billing.codes import MAX_CODES_AT_ONCE, MAX_USES_PER_CODE
from points.services import MAX_POINTS


class RedeemForm(forms.Form):
    code = forms.CharField(
        label=_("Redemption code"),
        max_length=64,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "characters",
                "spellcheck": "false",
                "placeholder": "XXXX-XXXX-XXXX-XXXX",
            }
        ),
    )


class CodeBatchForm(forms.Form):
    points = forms.IntegerField(
        label=_("Points per code"), min_value=1, max_value=MAX_POINTS
    )
    count = forms.IntegerField(
        label=_("Number of codes"), min_value=1, max_value=MAX_CODES_AT_ONCE
    )
    uses = forms.IntegerField(
        label=_("Uses per code"),
        min_value=1,
        max_value=MAX_USES_PER_CODE,
        initial=1,
        help_text=_("How many different users can redeem each code."),
    )
    expires = forms.DateField(
        label=_("Valid through"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("The last day the codes work (in the site's time zone)."),
    )
    note = forms.CharField(label=_("Note"), max_length=200, required=False)


class RefundForm(forms.Form):
    amount = forms.IntegerField(
        label=_("Amount to refund"),
        min_value=1,
        help_text=_("In the currency's minor unit (₩5,000 is 5000)."),
    )
