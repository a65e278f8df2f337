"""Errors of buying points. Each carries a stable code, an HTTP status and its data."""

from django.utils.translation import gettext_lazy as _

from common.errors import ServiceError

CARD_PAYMENTS_UNAVAILABLE_MESSAGE = _(
    "Card payment is not set up. You can still top up with a redemption code."
)


class BillingError(ServiceError):
    code = "billing_error"
    default_message = _("The purchase could not be completed.")


class PackNotFound(BillingError):
    code = "pack_not_found"
    status_code = 404
    default_message = _("This point pack does not exist or is not on sale.")


class OrderNotFound(BillingError):
    code = "order_not_found"
    status_code = 404
    default_message = _("Order not found.")


class OrderNotPayable(BillingError):
    code = "order_not_payable"
    status_code = 409
    default_message = _("This order can no longer be paid.")

    def __init__(self, *, status: str) -> None:
        self.status = status
        super().__init__()

    def details(self) -> dict[str, object]:
        return {"order_status": self.status}


class CardPaymentsUnavailable(BillingError):
    # Not a 5xx: the server works, it is set up without card payments.
    code = "card_payments_unavailable"
    status_code = 403
    default_message = CARD_PAYMENTS_UNAVAILABLE_MESSAGE


class PaymentProviderError(BillingError):
    code = "payment_provider_error"
    status_code = 502
    default_message = _(
        "The payment service did not answer. Please try again in a moment."
    )


class PaymentDeclined(BillingError):
    code = "payment_declined"
    status_code = 402
    default_message = _("The card was declined. Please try another card.")


class InvalidSignature(BillingError):
    code = "invalid_signature"
    default_message = _("The event's signature is missing, wrong or too old.")


class RefundRefused(BillingError):
    code = "refund_refused"
    status_code = 409
    default_message = _("This order cannot be refunded by that amount.")


class RedemptionError(BillingError):
    code = "redemption_error"
    default_message = _("The code could not be redeemed.")


class InvalidCode(RedemptionError):
    code = "invalid_code"
    default_message = _("This code is not valid. Please check it and try again.")


class CodeExpired(RedemptionError):
    code = "code_expired"
    status_code = 410
    default_message = _("This code has expired.")


class CodeDisabled(RedemptionError):
    code = "code_disabled"
    status_code = 410
    default_message = _("This code has been disabled.")


class CodeUsedUp(RedemptionError):
    code = "code_used_up"
    status_code = 409
    default_message = _("This code has already been used as many times as it can.")


class CodeAlreadyRedeemed(RedemptionError):
    code = "code_already_redeemed"
    status_code = 409
    default_message = _("You have already redeemed this code.")
