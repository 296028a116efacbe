"""``/metrics``: vLLM's metric names, then the simulator's own (``sim_*``): its capacity
bound and its busy slot-seconds (utilisation = delta busy / (max_num_seqs x delta t)).

Written by prometheus_client from a registry of the simulator's own: the latency
histograms are prometheus_client histograms, everything else is read from the
simulator's totals when scraped (a custom collector), so /metrics and /_sim/stats
always agree.
"""

from __future__ import annotations

from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from vlmsim.profiles import REFERENCE_CROP, REFERENCE_TASK_MIX

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# vLLM's request-latency buckets, with finer ones below 0.3 s for the fast fixed timings
# tests use.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
                   30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)

Stats = Callable[[], dict]  # the simulator's /_sim/stats
Capacity = Callable[[], dict[str, float]]  # completed requests/s per task and "mix"


class SimulatorMetrics:
    """The stand-in's Prometheus registry: two latency histograms it observes, and the
    totals ``stats`` and ``capacity`` give when scraped."""

    def __init__(self, model: str, stats: Stats, capacity: Capacity) -> None:
        self.model = model
        self.registry = CollectorRegistry()
        self.e2e_latency = Histogram(
            "vllm:e2e_request_latency_seconds", "End-to-end request latency in seconds.",
            ["model_name"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.queue_time = Histogram(
            "vllm:request_queue_time_seconds", "Time requests spent waiting for a slot.",
            ["model_name"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.registry.register(TotalsCollector(model, stats, capacity))
        self.reset()

    def observe(self, e2e_seconds: float, queue_seconds: float) -> None:
        """One successful call: its time from arrival to answer, and in the queue."""
        self.e2e_latency.labels(self.model).observe(e2e_seconds)
        self.queue_time.labels(self.model).observe(queue_seconds)

    def reset(self) -> None:
        """Empty histograms (still exposed, with zero counts)."""
        for histogram in (self.e2e_latency, self.queue_time):
            histogram.clear()
            histogram.labels(self.model)

    def e2e_totals(self) -> dict[str, float]:
        """The end-to-end histogram's count and sum, as /_sim/stats reports them."""
        [family] = self.e2e_latency.collect()
        totals = {sample.name.rsplit("_", 1)[1]: sample.value for sample in family.samples
                  if sample.name.endswith(("_count", "_sum"))}
        return {"count": int(totals["count"]), "sum": totals["sum"]}

    def exposition(self) -> bytes:
        """The Prometheus text of everything."""
        return generate_latest(self.registry)


class TotalsCollector:
    """A prometheus_client collector reading the simulator's totals at scrape time."""

    def __init__(self, model: str, stats: Stats, capacity: Capacity) -> None:
        self.model = model
        self.stats = stats
        self.capacity = capacity

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        yield self._gauge("vllm:num_requests_running", "Requests in model execution batches.", stats["running"])
        yield self._gauge("vllm:num_requests_waiting", "Requests waiting to be processed.", stats["queued"])
        success = CounterMetricFamily("vllm:request_success", "Successfully processed requests.",
                                      labels=["finished_reason", "model_name"])
        success.add_metric(["stop", self.model], stats["succeeded"] - stats["truncated"])
        success.add_metric(["length", self.model], stats["truncated"])
        yield success
        yield self._counter("vllm:prompt_tokens", "Prefill tokens processed.", stats["prompt_tokens"])
        yield self._counter("vllm:generation_tokens", "Generation tokens processed.", stats["generation_tokens"])
        yield self._gauge("sim_max_num_seqs", "Requests that can run at once (--max-num-seqs).",
                          stats["max_num_seqs"])
        yield self._counter("sim_busy_slot_seconds",
                            "Integral of running requests over time; utilisation = rate / sim_max_num_seqs.",
                            stats["busy_slot_seconds"])
        yield self._capacity()
        timing = GaugeMetricFamily("sim_timing_info", "The timing mode and profile in use.",
                                   labels=["timing", "profile", "model_name"])
        timing.add_metric([stats["timing"], stats["profile"] or "", self.model], 1)
        yield timing

    def _capacity(self) -> GaugeMetricFamily:
        crop = "{}x{}".format(*REFERENCE_CROP)
        mix = ", ".join(f"{share:g} {task}" for task, share in REFERENCE_TASK_MIX.items())
        family = GaugeMetricFamily(
            "sim_capacity_requests_per_second",
            f"Completed requests/s with every slot busy, for {crop} crops (task=mix: {mix}).",
            labels=["task", "crop", "model_name"],
        )
        for task, value in self.capacity().items():
            family.add_metric([task, crop, self.model], value)
        return family

    def _gauge(self, name: str, help_text: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, help_text, labels=["model_name"])
        family.add_metric([self.model], value)
        return family

    def _counter(self, name: str, help_text: str, value: float) -> CounterMetricFamily:
        family = CounterMetricFamily(name, help_text, labels=["model_name"])
        family.add_metric([self.model], value)
        return family
