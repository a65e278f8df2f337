from datetime import timedelta

from django.core.management.base import BaseCommand, CommandParser

from billing import services


class Command(BaseCommand):
    help = (
        "Cancel the payments of orders left pending for too long: they expire, or "
        "are credited if they were paid after all (run it from cron)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--hours", type=int, default=24, help="Pending for longer than this."
        )

    def handle(self, *args: object, **options: object) -> None:
        count = services.expire_stale_orders(
            older_than=timedelta(hours=options["hours"])
        )
        self.stdout.write(f"expire_orders: {count} order(s) checked.")
