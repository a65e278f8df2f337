"""The ledger's gauges for /metrics, read from the database at scrape time."""

from collections.abc import Iterator

from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from points.models import Hold, HoldStatus


class HoldCollector:
    """Open holds, and those of them past `expires_at` that nothing has ended yet."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = Hold.objects.filter(status=HoldStatus.OPEN).aggregate(
            open=Count("pk"),
            expired=Count("pk", filter=Q(expires_at__lte=timezone.now())),
        )
        yield GaugeMetricFamily(
            "eora_points_holds_open", "Holds open now.", value=counts["open"]
        )
        yield GaugeMetricFamily(
            "eora_points_holds_expired",
            "Open holds past their expires_at, not yet ended by expire_holds or "
            "their account's next turn.",
            value=counts["expired"],
        )
