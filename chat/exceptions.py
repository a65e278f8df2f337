"""Chat errors; like the ledger's, each has a stable code and an HTTP status."""

from django.utils.translation import gettext_lazy as _

from common.errors import ServiceError


class ChatError(ServiceError):
    code = "chat_error"


class InvalidMessage(ChatError):
    code = "invalid_message"
    default_message = _("The message must not be empty.")


class UnstorableText(InvalidMessage):
    code = "invalid_characters"
    default_message = _(
        "The message contains characters that cannot be stored (a NUL character "
        "or an unpaired surrogate). Remove them and send it again."
    )


class MessageTooLong(ChatError):
    code = "message_too_long"
    default_message = _("The message is too long.")


class ContextTooLong(ChatError):
    code = "context_length_exceeded"
    default_message = _("The conversation does not fit in the model's context.")


class UnknownModel(ChatError):
    code = "model_not_found"
    status_code = 404
    default_message = _("This model is not available.")


class ConversationNotFound(ChatError):
    code = "conversation_not_found"
    status_code = 404
    default_message = _("Conversation not found.")


class TurnNotFound(ChatError):
    code = "turn_not_found"
    status_code = 404
    default_message = _("No turn was started with this key.")


class TurnInProgress(ChatError):
    code = "request_in_progress"
    status_code = 409
    default_message = _("A request with this idempotency key is still in progress.")


class TurnAbandoned(ChatError):
    code = "request_abandoned"
    status_code = 409
    default_message = _(
        "The first request with this idempotency key ended before any answer was "
        "delivered, and nothing was charged. Send it again with a new key."
    )


class TurnNotKept(ChatError):
    code = "request_already_completed"
    status_code = 409
    default_message = _(
        "The first request with this idempotency key was answered and charged, "
        "but its answer was not kept, so it cannot be sent again."
    )

    def __init__(self, entry: object) -> None:
        self.charged = -entry.amount
        self.transaction_id = entry.pk
        super().__init__()

    def details(self) -> dict[str, object]:
        return {"deducted": self.charged, "transaction_id": self.transaction_id}


class TurnNotSaved(ChatError):
    code = "turn_not_saved"
    status_code = 503
    default_message = _(
        "The answer could not be saved. Nothing was charged; please try again."
    )
    charged_message = _(
        "The answer could not be saved. Only the text you received was charged "
        "(%(points)s points)."
    )

    def __init__(self, *, charged: int | None) -> None:
        self.charged = charged or 0
        super().__init__(
            self.charged_message % {"points": f"{self.charged:,}"}
            if self.charged
            else None
        )

    def details(self) -> dict[str, object]:
        return {"deducted": self.charged}


class ProviderError(ChatError):
    code = "provider_error"
    status_code = 502
    default_message = _(
        "The AI model could not answer. No points were charged; please try again."
    )

    def __init__(
        self, message: str | None = None, *, upstream_status: int | None = None
    ):
        self.upstream_status = upstream_status
        super().__init__(message)

    def details(self) -> dict[str, object]:
        return {"upstream_status": self.upstream_status} if self.upstream_status else {}


class ProviderTimeout(ProviderError):
    code = "provider_timeout"
    default_message = _(
        "The AI model took too long to answer. No points were charged; "
        "please try again."
    )
