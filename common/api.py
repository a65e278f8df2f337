"""Strict input for every API: serializer fields and helpers that accept exactly
what the OpenAPI schema documents. Errors are rendered by `common.rendering`.
"""

from collections.abc import Mapping
from typing import Any

from django.http import QueryDict
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers instead of turning them into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A BooleanField that takes JSON's true and false only, not "yes" or 1."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    """An IntegerField that takes JSON integers only, not "5", 5.0 or true."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A FloatField that takes JSON numbers only, not "0.5" or true."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


def first_error(errors: Any) -> tuple[str, str]:
    """Return the first field and message of a serializer's errors."""
    if isinstance(errors, dict):
        field, value = next(iter(errors.items()))
        inner, message = first_error(value)
        if field == "non_field_errors":
            return inner, message
        name = f"[{field}]" if isinstance(field, int) else str(field)
        if not inner:
            return name, message
        return name + (inner if inner.startswith("[") else f".{inner}"), message
    if isinstance(errors, list) and errors:
        if all(isinstance(item, dict) for item in errors):
            for index, item in enumerate(errors):
                if item:
                    inner, message = first_error(item)
                    return f"[{index}]" + (
                        inner if inner.startswith("[") else f".{inner}"
                    ).rstrip("."), message
        return first_error(errors[0])
    return "", str(errors)


UNKNOWN_PARAMETER_MESSAGE = _("Unknown parameter.")


class QuerySerializer(serializers.Serializer):
    """Validate query parameters; an empty value is refused, not taken as absent.

    DRF reads a QueryDict as an HTML form, where `since=` means "not sent"; the
    schema says a parameter is either left out or a valid value.
    """

    MULTIPLE_VALUE_FIELDS = (serializers.ListField, serializers.MultipleChoiceField)
    # Refuse parameters the serializer does not declare (400, each named), so a
    # misspelt or misplaced one cannot silently change the answer. Older
    # endpoints ignore them, as their clients may send extras.
    reject_unknown = False

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if self.reject_unknown:
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [UNKNOWN_PARAMETER_MESSAGE] for name in unknown}
                )
        if isinstance(data, QueryDict):
            data = self._plain(data)
        return super().to_internal_value(data)

    def _plain(self, query: QueryDict) -> Mapping[str, Any]:
        return {
            name: query.getlist(name)
            if isinstance(self.fields.get(name), self.MULTIPLE_VALUE_FIELDS)
            else query[name]
            for name in query
        }
