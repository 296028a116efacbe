"""Each VLM server the orchestrator calls, on Triton's metrics port (/metrics, 8002):
whether it is in rotation, its calls in flight, its calls and failures.

The state lives in the orchestrator's process (``docparse.recognition.endpoints``), so
it is exported from there with the Python backend's custom metrics, copied from each
profile's pool every ``INTERVAL`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping

import triton_python_backend_utils as pb_utils

from docparse.errors import describe

log = logging.getLogger("docparse.orchestrator")

INTERVAL = 2.0  # seconds between copies: cheap (a few servers), and fresh enough for a scrape


class EndpointMetrics:
    """The metric families, made once per model instance (in ``initialize``)."""

    def __init__(self) -> None:
        gauge, counter = pb_utils.MetricFamily.GAUGE, pb_utils.MetricFamily.COUNTER
        self.up = pb_utils.MetricFamily("hps_vlm_endpoint_up", "1 while the VLM server is in rotation, 0 while it is found down", gauge)
        self.in_flight = pb_utils.MetricFamily("hps_vlm_endpoint_in_flight", "Calls to the VLM server in flight", gauge)
        self.calls = pb_utils.MetricFamily("hps_vlm_endpoint_calls_total", "Calls made to the VLM server", counter)
        self.failures = pb_utils.MetricFamily("hps_vlm_endpoint_failures_total", "Calls to the VLM server that failed", counter)
        self._metrics: dict[tuple[str, str, str], Any] = {}

    def update(self, recognizers: Mapping[str, Any]) -> None:
        """Copy every VLM profile's servers (recognizers without a VLM have none)."""
        for name, recognizer in recognizers.items():
            pool = getattr(getattr(recognizer, "client", None), "pool", None)
            for server in pool.snapshot() if pool is not None else []:
                labels = {"model": name, "endpoint": str(server["url"])}
                self._metric(self.up, "up", labels).set(1.0 if server["state"] == "up" else 0.0)
                self._metric(self.in_flight, "in_flight", labels).set(float(server["in_flight"]))
                for family, key in ((self.calls, "calls"), (self.failures, "failures")):
                    metric = self._metric(family, key, labels)
                    metric.increment(max(0.0, float(server[key]) - metric.value()))  # counters only go up

    async def run(self, recognizers: Mapping[str, Any]) -> None:
        """Copy every ``INTERVAL`` seconds until cancelled (on unload)."""
        while True:
            try:
                self.update(recognizers)
            except Exception as exc:  # noqa: BLE001 - metrics never stop the model
                log.warning("VLM server metrics not updated: %s", describe(exc))
            await asyncio.sleep(INTERVAL)

    def _metric(self, family: Any, key: str, labels: dict[str, str]) -> Any:
        found = self._metrics.get((key, labels["model"], labels["endpoint"]))
        if found is None:
            found = self._metrics[(key, labels["model"], labels["endpoint"])] = family.Metric(labels=labels)
        return found
