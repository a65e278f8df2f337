from django.contrib.auth import get_user_model

from accounts.models import User, normalize_email, save_with_account

__all__ = ["normalize_email", "register_user", "save_new_user"]


def save_new_user(user: User) -> User:
    """Save a new user (from a form) with its points account and sign-up bonus."""
    return save_with_account(user)


def register_user(*, email: str, password: str | None, **extra_fields: object) -> User:
    """Create a user with its points account and sign-up bonus, all or nothing."""
    return get_user_model().objects.create_user(
        email=email, password=password, **extra_fields
    )
