from datetime import date

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing import codes
from common.errors import ServiceError


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise CommandError(f"--expires must be YYYY-MM-DD, not {value!r}.") from error


class Command(BaseCommand):
    help = (
        "Create redemption codes and print each in full, one a line: the only "
        "time they are shown (only their hashes are stored)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--points", type=int, required=True)
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--uses", type=int, default=1, help="Users per code.")
        parser.add_argument(
            "--expires",
            type=_day,
            help="The last day the codes work, YYYY-MM-DD (in TIME_ZONE).",
        )
        parser.add_argument("--note", default="")

    def handle(self, *args: object, **options: object) -> None:
        expires = options["expires"]
        try:
            made = codes.create_codes(
                points=options["points"],
                count=options["count"],
                uses=options["uses"],
                expires_at=codes.end_of_day(expires) if expires else None,
                note=options["note"],
            )
        except ServiceError as error:
            raise CommandError(str(error.message)) from error
        for code in made:
            self.stdout.write(code)
