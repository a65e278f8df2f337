from django.core.management.base import BaseCommand, CommandError

from points import rollup


class Command(BaseCommand):
    help = (
        "Check the usage roll-ups against the ledger (exit 1 on a difference), or"
        " rebuild them from it with --rebuild (also after changing TIME_ZONE)."
    )

    def add_arguments(self, parser: object) -> None:
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="Recompute the roll-ups from the ledger and reinstall the trigger.",
        )

    def handle(self, *args: object, **options: object) -> None:
        if options["rebuild"]:
            counts = rollup.rebuild()
            tables = ", ".join(
                f"{table} {count}"
                for (table, *_rest), count in zip(rollup.TABLES, counts, strict=True)
            )
            self.stdout.write(f"usage_rollup: rebuilt {tables}.")
            return
        found = rollup.differences()
        for text in found:
            self.stderr.write(text)
        if found:
            raise CommandError(
                f"{len(found)} roll-up row(s) disagree with the ledger;"
                " `usage_rollup --rebuild` recomputes them."
            )
        self.stdout.write("usage_rollup: the roll-ups agree with the ledger.")
