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
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import F, QuerySet
from django.utils import timezone

from points.models import Transaction
from points.selectors import history_chunk, history_chunks

BYTE_ORDER_MARK = "\ufeff"
# Rows per query, and per piece of the response (about 80 kB of CSV). A chunk
# is held twice while it is read (the driver's rows and Django's), about 1.8 kB
# a row: 500 rows keep a download under 1 MB of memory however long it is,
# and 100,000 rows take 200 short index-range queries.
CSV_CHUNK_ROWS = 500
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
EXPORT_FIELDS = (
    *(column for column in CSV_COLUMNS if column not in ("timestamp", "api_key")),
    "created_at",
    "api_key_name",
)
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def guard_text(text: str) -> str:
    """Return a text cell that a spreadsheet shows as text, never runs."""
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def _number(value: object) -> str:
    return "" if value is None else str(value)


def export_rows(rows: QuerySet[Transaction]) -> QuerySet:
    """Return `rows` as named tuples of the columns the CSV shows.

    Tuples, not model instances: a chunk of them takes a fraction of the memory.
    """
    return rows.annotate(api_key_name=F("api_key__name")).values_list(
        *EXPORT_FIELDS, named=True
    )


def csv_cells(row: Any) -> list[str]:
    """Return one `export_rows` row's cells in `CSV_COLUMNS` order, text guarded."""
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
        guard_text(row.api_key_name or ""),
        _number(row.version),
    ]


def _encode(rows: list[Any]) -> bytes:
    buffer = io.StringIO()
    # Row by row: the cells of a whole chunk at once would outweigh the chunk.
    csv.writer(buffer).writerows(csv_cells(row) for row in rows)
    return buffer.getvalue().encode()


def _header() -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(CSV_COLUMNS)
    return (BYTE_ORDER_MARK + buffer.getvalue()).encode()


def history_csv(rows: QuerySet[Transaction]) -> Iterator[bytes]:
    """Yield the CSV of `rows`: the header, then one piece per chunk of rows."""
    yield _header()
    # `map` keeps no chunk alive while the next one is read.
    yield from map(_encode, history_chunks(export_rows(rows), size=CSV_CHUNK_ROWS))


async def history_csv_async(rows: QuerySet[Transaction]) -> AsyncIterator[bytes]:
    """Yield what `history_csv` yields, for ASGI.

    Django serves a synchronous iterator under ASGI by reading it whole into a
    list first; each chunk is read (and encoded) in the request's thread instead.
    """

    exported = export_rows(rows)

    def next_piece(before_version: int | None) -> tuple[bytes, int | None]:
        chunk = history_chunk(
            exported, before_version=before_version, size=CSV_CHUNK_ROWS
        )
        last = chunk[-1].version if len(chunk) == CSV_CHUNK_ROWS else None
        return _encode(chunk), last

    yield _header()
    piece, before_version = await sync_to_async(next_piece)(None)
    yield piece
    while before_version is not None:
        piece, before_version = await sync_to_async(next_piece)(before_version)
        yield piece


def csv_filename(today: date) -> str:
    return f"eora-points-history-{today.isoformat()}.csv"
