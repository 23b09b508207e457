"""Scraping a Prometheus ``/metrics`` endpoint on loopback, for the server's, the watcher's and the
bare endpoint's tests (imported as ``tests.metrics_scrape``, see ``tests/strategies.py``)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> str:
    """The text at ``http://127.0.0.1:PORT/metrics``; raises OSError when nothing listens."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        return str(response.read().decode())


def scrape_samples(port: int) -> Samples:
    """Every sample at ``/metrics``, keyed by its name and its labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(scrape(port))
        for sample in family.samples
    }
