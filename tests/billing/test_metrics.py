"""Top-ups on /metrics: orders by status, read from the database at scrape time."""

from collections import Counter
from collections.abc import Callable

from pytest_django.fixtures import Settings

from accounts.models import User
from billing import services
from billing.models import Order, OrderStatus
from tests.prometheus import TOKEN, scrape, value


def test_order_gauge_equals_the_orders_by_status(
    make_order: Callable[..., Order],
    charge_card: Callable[..., None],
    buyer: User,
    settings: Settings,
) -> None:
    # given a paid order and two pending ones
    settings.METRICS_TOKEN = TOKEN
    paid, _pending, _other = make_order(buyer), make_order(buyer), make_order(buyer)
    charge_card(paid)
    services.sync_payment(payment_intent_id=paid.provider_id)

    samples = scrape()

    by_status = Counter(Order.objects.values_list("status", flat=True))
    assert by_status == {OrderStatus.PAID: 1, OrderStatus.PENDING: 2}
    for status in OrderStatus.values:
        assert value(samples, "eora_billing_orders", status=status) == by_status[status]
