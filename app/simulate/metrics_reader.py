"""Read the engine's /metrics the way Prometheus does (text exposition format)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, tuple[tuple[str, str], ...]]


def read_samples(url: str, timeout: float = 5.0) -> dict[Key, float]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    samples: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def sample(samples: dict[Key, float], name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (n, series), value in samples.items() if n == name and wanted <= set(series))
