from django import forms
from django.contrib.auth.forms import AuthenticationForm, BaseUserCreationForm
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from accounts.services import normalize_email, register_user

# Worded not to confirm that the address has an account. Sign-up logs in at once,
# so a prober can still tell from a success: hence the throttle (see the README).
EMAIL_UNAVAILABLE_MESSAGE = _(
    "This address cannot be used to sign up. If you already have an account, log in."
)


class SignupForm(BaseUserCreationForm):
    """Sign-up with email and password; the account is made by `register_user`."""

    class Meta:
        model = User
        fields = ("email",)
        widgets = {"email": forms.EmailInput(attrs={"autocomplete": "email"})}

    def clean_email(self) -> str:
        email = normalize_email(self.cleaned_data["email"])
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(
                EMAIL_UNAVAILABLE_MESSAGE, code="email_unavailable"
            )
        return email

    def save(self, commit: bool = True) -> User:
        return register_user(
            email=self.cleaned_data["email"], password=self.cleaned_data["password1"]
        )


class EmailAuthenticationForm(AuthenticationForm):
    username = forms.EmailField(
        label=_("Email address"),
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label=_("Key name"),
        max_length=100,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
