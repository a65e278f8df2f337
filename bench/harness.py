"""What the benchmarks share: Django in the measuring process, percentiles, tables."""

import os
import secrets
from collections.abc import Sequence

import django

# Any database on the PostgreSQL server; benchmarks create their own beside it.
POSTGRES_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"
)


def percentile(samples: Sequence[float], share: float) -> float:
    """Return the sample at `share` (0.5 for the median) of the sorted samples."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [list(headers)] + [
        [f"{cell:.2f}" if isinstance(cell, float) else str(cell) for cell in row]
        for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print(
            "  ".join(
                cell.rjust(width) for cell, width in zip(row, widths, strict=True)
            )
        )
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print()


def use_database(url: str, *, migrate: bool = False, **settings: str) -> None:
    """Set Django up in this process on the database at `url` (a connection per
    thread, no pool) with these settings, migrating it if asked."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "eora.settings",
            "DATABASE_URL": url,
            "DATABASE_POOL": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            **settings,
        }
    )
    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
