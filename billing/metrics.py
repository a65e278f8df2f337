"""Top-ups for /metrics, read from the database at scrape time."""

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from billing.models import Order, OrderStatus


class OrderCollector:
    """Orders (card top-ups) by status; every status is listed, 0 included."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = dict(
            Order.objects.order_by()
            .values_list("status")
            .annotate(orders=Count("pk"))
            .values_list("status", "orders")
        )
        family = GaugeMetricFamily(
            "eora_billing_orders", "Top-up orders by status.", labels=["status"]
        )
        for status in OrderStatus.values:
            family.add_metric([status], counts.get(status, 0))
        yield family
