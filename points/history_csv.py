"""The ledger history as CSV, streamed in keyset chunks.

The file starts with a UTF-8 byte order mark: without it Excel reads a CSV in
the system's ANSI code page (CP949 on Korean Windows) and garbles every Korean
description; with it Excel, LibreOffice and Numbers all read UTF-8, and
Python's `csv` reads it with `encoding="utf-8-sig"`. The header names are the
API's field names, not translated, so that a script reads the same file in
either language.
"""

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import date

from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from django.utils import timezone

from points.models import Transaction
from points.selectors import history_chunk, history_chunks

BYTE_ORDER_MARK = "\ufeff"
# Rows per query, and per piece of the response: about 400 kB of CSV.
CSV_CHUNK_ROWS = 2_000
CSV_COLUMNS = (
    "type",
    "amount",
    "description",
    "timestamp",
    "balance_after",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "model",
    "prompt_rate",
    "completion_rate",
    "list_cost",
    "discount",
    "tier",
    "uncharged_points",
    "free_amount",
    "api_key",
    "version",
)
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def guard_text(text: str) -> str:
    """Return a text cell that a spreadsheet shows as text, never runs."""
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def _number(value: object) -> str:
    return "" if value is None else str(value)


def csv_cells(row: Transaction) -> list[str]:
    """Return one row's cells in `CSV_COLUMNS` order; text cells guarded."""
    return [
        row.type,
        _number(row.amount),
        guard_text(row.description),
        timezone.localtime(row.created_at).isoformat(),
        _number(row.balance_after),
        _number(row.prompt_tokens),
        _number(row.completion_tokens),
        _number(row.total_tokens),
        guard_text(row.model),
        _number(row.prompt_rate),
        _number(row.completion_rate),
        _number(row.list_cost),
        _number(row.discount),
        guard_text(row.tier),
        _number(row.uncharged_points),
        _number(row.free_amount),
        guard_text(row.api_key.name) if row.api_key is not None else "",
        _number(row.version),
    ]


def _encode(lines: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(lines)
    return buffer.getvalue().encode()


def _header() -> bytes:
    return BYTE_ORDER_MARK.encode() + _encode([list(CSV_COLUMNS)])


def history_csv(rows: QuerySet[Transaction]) -> Iterator[bytes]:
    """Yield the CSV of `rows`: the header, then one piece per chunk of rows."""
    yield _header()
    for chunk in history_chunks(rows, size=CSV_CHUNK_ROWS):
        yield _encode([csv_cells(row) for row in chunk])


async def history_csv_async(rows: QuerySet[Transaction]) -> AsyncIterator[bytes]:
    """Yield what `history_csv` yields, for ASGI.

    Django serves a synchronous iterator under ASGI by reading it whole into a
    list first; each chunk is read (and encoded) in the request's thread instead.
    """

    def next_piece(before_version: int | None) -> tuple[bytes, int | None]:
        chunk = history_chunk(rows, before_version=before_version, size=CSV_CHUNK_ROWS)
        last = chunk[-1].version if len(chunk) == CSV_CHUNK_ROWS else None
        return _encode([csv_cells(row) for row in chunk]), last

    yield _header()
    piece, before_version = await sync_to_async(next_piece)(None)
    yield piece
    while before_version is not None:
        piece, before_version = await sync_to_async(next_piece)(before_version)
        yield piece


def csv_filename(today: date) -> str:
    return f"eora-points-history-{today.isoformat()}.csv"
