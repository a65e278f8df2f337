from django.core.management.base import BaseCommand, CommandError

from points.audit import audit_accounts
from points.models import Account


class Command(BaseCommand):
    help = (
        "Check every account against its ledger rows; exit 1 naming each that is off."
    )

    def handle(self, *args: object, **options: object) -> None:
        problems = audit_accounts()
        for problem in problems:
            self.stderr.write(str(problem))
        if problems:
            accounts = len({problem.account_id for problem in problems})
            raise CommandError(f"{accounts} account(s) disagree with the ledger.")
        self.stdout.write(f"points_audit: {Account.objects.count()} account(s) clean.")
