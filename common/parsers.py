"""The JSON parser of every DRF view, reading bodies as the plain views do."""

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from common.http import InvalidRequest, parse_json


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with every unreadable body a ParseError (400).

    DRF's own parser lets a RecursionError from deeply nested JSON through, and
    the view then answers 500; `parse_json` refuses it like any other bad body.
    """

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = parsers.get_encoding(parser_context or {})
        try:
            return parse_json(stream.read(), encoding=encoding)
        except InvalidRequest as error:
            raise ParseError(error.message) from error
