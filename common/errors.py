"""The root of the project's domain errors, turned into HTTP in one place each."""

from django.utils.translation import gettext_lazy as _


class ServiceError(Exception):
    """An error a client can act on: a stable code, an HTTP status, its data."""

    code = "error"
    status_code = 400
    default_message = _("The request could not be completed.")

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else self.default_message
        super().__init__(str(self.message))

    def details(self) -> dict[str, object]:
        """Return the data a client needs besides the message and code."""
        return {}

    def headers(self) -> dict[str, str]:
        """Return the HTTP headers that go with this error."""
        return {}

    def page_link(self) -> tuple[str, str] | None:
        """Return the URL and label of where a page sends the user next, if any."""
        return None
