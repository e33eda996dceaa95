"""Timing shared by the benchmark scripts (``from _timing import median_ms``: scripts run from
``bench/``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 1) -> float:
    """Median wall time in ms of ``runs`` calls of ``fn`` after ``warmup`` untimed calls (warm
    caches, pools and traced graphs)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
