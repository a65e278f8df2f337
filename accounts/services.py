from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.models import User
from points.services import open_account


def normalize_email(email: str) -> str:
    """Return the form in which an email address is stored: trimmed, lower case."""
    return email.strip().lower()


def save_new_user(user: User) -> User:
    """Save a new user with its points account and sign-up bonus, all or nothing."""
    with transaction.atomic():
        user.email = normalize_email(user.email)
        user.save()
        open_account(user=user)
    return user


def register_user(*, email: str, password: str | None, **extra_fields: object) -> User:
    user = get_user_model()(email=email, **extra_fields)
    user.set_password(password)
    return save_new_user(user)
