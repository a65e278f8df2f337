"""Cursor pages over a unique ordering, the cursor handed out as a bare token."""

from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

INVALID_CURSOR_MESSAGE = _(
    "This cursor is not valid: send the `next_cursor` of the previous page."
)


class CursorPage(CursorPagination):
    """DRF's cursor pagination, with `next_cursor()` as the token and not a URL.

    The ordering ends in a unique field. The cursor holds the first field's value
    and how many rows after it share that value, so rows with equal values (two
    conversations updated in the same microsecond) each come exactly once.
    """

    def __init__(
        self, *, ordering: tuple[str, ...], cursor_query_param: str, page_size: int
    ) -> None:
        self.ordering = ordering
        self.cursor_query_param = cursor_query_param
        self.page_size = page_size

    def paginate_queryset(
        self, queryset: QuerySet, request: Request, view: Any = None
    ) -> list:
        self.model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Cursor | None:
        """Return the request's cursor; refuse one we did not hand out with 400."""
        try:
            cursor = super().decode_cursor(request)
            if cursor is not None and cursor.position is not None:
                # A position the first field cannot hold would fail in the query.
                field = self.model._meta.get_field(self.ordering[0].lstrip("-"))
                field.to_python(cursor.position)
        except (NotFound, DjangoValidationError) as error:
            raise ValidationError(
                {self.cursor_query_param: [INVALID_CURSOR_MESSAGE]}
            ) from error
        return cursor

    def next_cursor(self) -> str | None:
        """Return the token of the page after this one, or None on the last page."""
        link = self.get_next_link()
        if link is None:
            return None
        return parse_qs(urlsplit(link).query)[self.cursor_query_param][0]


class CountedPaginator(Paginator):
    """Django's numbered pages over rows whose count is already known.

    Django's `Paginator` counts its rows with `COUNT(*)`, which reads every row
    that matches; a caller that knows the count from elsewhere passes it.
    """

    def __init__(self, object_list: Any, per_page: int, *, count: int) -> None:
        super().__init__(object_list, per_page)
        self.known_count = count

    @property
    def count(self) -> int:
        return self.known_count
