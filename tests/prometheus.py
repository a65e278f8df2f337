"""Read /metrics as the Prometheus server does, for the tests of our metrics."""

from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "metrics-test-token"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Return every sample of an exposition, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """Return a sample's value; a labelled counter never incremented is 0."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client: Client | None = None) -> Samples:
    """Scrape /metrics in this process with the test token."""
    response = (client or Client()).get(
        "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200, response.content
    return parse(response.content.decode())
