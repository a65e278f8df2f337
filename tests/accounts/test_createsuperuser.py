"""`createsuperuser` asks its questions in one language, English."""

import getpass
from io import StringIO

import pytest
from django.core.management import call_command, get_commands
from django.utils import translation

from accounts.management.commands.createsuperuser import Command
from accounts.models import User
from points.models import TransactionType


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Answer the command's prompts as a person at the terminal; return the prompts."""
    prompts: list[str] = []
    answers = iter(["admin@example.com"])

    def type_answer(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    def type_password(prompt: str = "Password: ", stream: object = None) -> str:
        prompts.append(prompt)
        return "a-long-admin-passphrase-7"

    monkeypatch.setattr("builtins.input", type_answer)
    monkeypatch.setattr(getpass, "getpass", type_password)
    return prompts


def test_createsuperuser_prompts_in_english_throughout(
    terminal: list[str], db: None
) -> None:
    output = StringIO()
    with translation.override("ko"):
        call_command(Command(), interactive=True, stdout=output, stdin=Terminal())

    assert terminal == ["Email address: ", "Password: ", "Password (again): "]
    assert "Superuser created successfully." in output.getvalue()
    user = User.objects.get(email="admin@example.com")
    assert user.is_superuser
    # The ledger still writes its rows in the default language
    bonus = user.points_account.transactions.get(type=TransactionType.SIGNUP_BONUS)
    assert "보너스" in bonus.description


def test_manage_py_createsuperuser_is_this_command() -> None:
    # Django takes a command from the first installed app that has it: accounts
    # must come before django.contrib.auth in INSTALLED_APPS.
    assert get_commands()["createsuperuser"] == "accounts"
