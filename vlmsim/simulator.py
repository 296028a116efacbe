"""The simulated server's state and behaviour, without a web framework: one call in,
``(status, JSON body)`` out, timed by the fixed or the vllm timing, recorded and counted."""

from __future__ import annotations

import asyncio
import collections
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from vlmsim.chat import (
    ABORTED,
    TASKS,
    ApiError,
    ChatRequest,
    content_for,
    completion_body,
    parse_chat_request,
    prompt_tokens_for,
    task_of,
)
from vlmsim.config import SimConfig, validated_config
from vlmsim.failures import FailureRule, parse_failures
from vlmsim.metrics import SimulatorMetrics
from vlmsim.profiles import (
    REFERENCE_CROP,
    REFERENCE_PROMPT_TOKENS,
    REFERENCE_TASK_MIX,
    OutputLengths,
    batching_capacity,
)
from vlmsim.scheduler import BatchingEngine, BatchScheduler, Sequence
from vlmsim.slots import Slots


@dataclass
class Counters:
    """Totals since start or the last reset (``/_sim/stats`` and ``/metrics``)."""

    total_calls: int = 0
    succeeded: int = 0
    truncated: int = 0  # succeeded with finish_reason "length": the drawn length hit max_tokens
    failed: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0


class Simulator:
    """The simulated server's state and behaviour."""

    def __init__(
        self,
        model: str = "glm-ocr",
        config: SimConfig = SimConfig(),
        max_records: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.settings = config
        self.clock = clock
        self.failures: list[FailureRule] = []
        self.slots = Slots(config.max_num_seqs, clock)
        self.engine = BatchingEngine(BatchScheduler(config.batching, config.max_num_seqs, clock()), clock)
        self.lengths = OutputLengths(config.batching, config.seed)
        self.calls: collections.deque[dict] = collections.deque(maxlen=max_records)
        self.counters = Counters()
        self.metrics = SimulatorMetrics(model, self.stats, self.capacity)

    def config(self) -> dict:
        return {"model": self.model, **self.settings.as_dict(), "failures": [asdict(rule) for rule in self.failures]}

    async def configure(self, changes: Any) -> None:
        """Apply any of the CONFIG_FIELDS; raises ApiError (400) naming the bad field,
        changing nothing. Setting ``seed`` (or any batching number) restarts the
        output-length streams."""
        config = validated_config(changes, self.settings)
        failures = parse_failures(changes["failures"]) if "failures" in changes else self.failures
        if "seed" in changes or config.batching != self.settings.batching:
            self.lengths = OutputLengths(config.batching, config.seed)
        self.settings = config
        self.failures = failures
        await self.slots.set_limit(config.max_num_seqs)
        self.engine.reconfigure(config.batching, config.max_num_seqs)

    def reset(self) -> None:
        """Forget the calls and the totals, restart the output-length streams (behaviour
        stays as configured)."""
        self.calls.clear()
        self.counters = Counters()
        self.metrics.reset()
        self.slots.reset_totals()
        self.engine.sync()
        self.engine.scheduler.reset_totals()
        self.lengths = OutputLengths(self.settings.batching, self.settings.seed)

    def capacity(self) -> dict[str, float]:
        """Completed requests/s with every slot busy, per task and for REFERENCE_TASK_MIX,
        for REFERENCE_CROP-sized crops (inf: the fixed timing with no latency)."""
        config = self.settings
        if config.timing == "vllm":
            by_task = {task: batching_capacity(config.batching, config.max_num_seqs, {task: 1.0}) for task in TASKS}
            return {**by_task, "mix": batching_capacity(config.batching, config.max_num_seqs)}
        seconds = config.latency + config.latency_per_pixel * REFERENCE_CROP[0] * REFERENCE_CROP[1]
        bound = config.max_num_seqs / seconds if seconds > 0 else math.inf
        return {task: bound for task in (*TASKS, "mix")}

    def capacity_assumptions(self) -> dict:
        width, height = REFERENCE_CROP
        return {
            "crop_width": width,
            "crop_height": height,
            "prompt_tokens": REFERENCE_PROMPT_TOKENS,
            "task_mix": REFERENCE_TASK_MIX,
            "mean_output_tokens": {task: self.settings.batching.mean_output_tokens(task) for task in TASKS},
        }

    def stats(self) -> dict:
        self.engine.sync()
        scheduler = self.engine.scheduler
        capacity = {task: (None if math.isinf(value) else value) for task, value in self.capacity().items()}
        return {
            **asdict(self.counters),
            "peak_in_flight": max(self.slots.peak, scheduler.peak),
            "running": self.slots.running + scheduler.running,
            "queued": self.slots.waiting + len(scheduler.waiting),
            "max_concurrency": self.settings.max_num_seqs,
            "max_num_seqs": self.settings.max_num_seqs,
            "timing": self.settings.timing,
            "profile": self.settings.profile if self.settings.timing == "vllm" else None,
            "clock_seconds": self.clock(),
            "busy_slot_seconds": self.slots.busy_slot_seconds() + scheduler.busy_slot_seconds,
            "capacity_requests_per_second": capacity.pop("mix"),
            "capacity_by_task": capacity,
            "capacity_assumes": self.capacity_assumptions(),
            "e2e_request_latency_seconds": self.metrics.e2e_totals(),
        }

    async def complete(self, raw: bytes, request_id: str) -> tuple[int, dict]:
        """Serve one chat-completions call: ``(status, JSON body)``."""
        arrived = self.clock()
        record = {
            "request_id": request_id, "prompt": None, "width": None, "height": None,
            "model": None, "max_tokens": None, "temperature": None, "json_schema": None, "priority": None,
            "status": None, "received": time.time(), "started": None, "finished": None,
        }
        self.calls.append(record)
        self.counters.total_calls += 1
        try:
            request = parse_chat_request(raw, self.model)
            if request.priority != 0 and self.settings.scheduling_policy != "priority":  # vLLM's words
                raise ApiError(400, f"Got priority {request.priority} but Priority scheduling is not enabled.")
        except ApiError as error:
            record.update(status=error.status, started=time.time(), finished=time.time())
            self.counters.failed += 1
            return error.status, error.body()
        record.update(
            prompt=request.prompt, width=request.width, height=request.height, model=request.model,
            max_tokens=request.max_tokens, temperature=request.temperature,
            json_schema=request.json_schema, priority=request.priority,
        )
        rule = next((r for r in self.failures if r.take(request.prompt, request_id)), None)
        try:
            return await self._serve(request, rule, record, arrived)
        except asyncio.CancelledError:  # the client went away: vLLM aborts the request
            record.update(status=ABORTED, finished=time.time())
            self.counters.failed += 1
            raise

    async def _serve(self, request: ChatRequest, rule: FailureRule | None, record: dict, arrived: float) -> tuple[int, dict]:
        serve = self._serve_batched if self.settings.timing == "vllm" else self._serve_fixed
        status, body = await serve(request, rule, record)
        record["status"] = status
        if status == 200:
            self.counters.succeeded += 1
            self.metrics.observe(self.clock() - arrived, max(0.0, record["started"] - record["received"]))
        else:
            self.counters.failed += 1
        return status, body

    async def _serve_fixed(self, request: ChatRequest, rule: FailureRule | None, record: dict) -> tuple[int, dict]:
        """``latency`` (+ per pixel) seconds in one of ``max_num_seqs`` slots."""
        async with self.slots.hold():
            record["started"] = time.time()
            try:
                if rule is not None and (error := rule.error()) is not None:
                    return error.status, error.body()
                if rule is not None and rule.stall is not None:
                    await asyncio.sleep(rule.stall)
                config = self.settings
                await asyncio.sleep(config.latency + config.latency_per_pixel * request.width * request.height)
                content = rule.answer if rule is not None and rule.answer is not None else content_for(request)
                return 200, self._completion(request, content, max(1, len(content) // 4), "stop")
            finally:
                record["finished"] = time.time()

    async def _serve_batched(self, request: ChatRequest, rule: FailureRule | None, record: dict) -> tuple[int, dict]:
        """Through the continuous-batching engine. An error rule answers at once (before
        scheduling, like a front-end error); a stall waits before the call is queued."""
        if rule is not None and (error := rule.error()) is not None:
            record["started"] = record["finished"] = time.time()
            return error.status, error.body()
        if rule is not None and rule.stall is not None:
            await asyncio.sleep(rule.stall)
        drawn = self.lengths.draw(task_of(request.prompt))
        output_tokens = min(drawn, request.max_tokens or drawn)
        sequence = Sequence(prompt_tokens_for(request.prompt, request.width, request.height), output_tokens,
                            priority=request.priority)
        try:
            await self.engine.generate(sequence)
        finally:
            record["started"] = self._wall_time(sequence.scheduled)
            record["finished"] = time.time()
        content = rule.answer if rule is not None and rule.answer is not None else content_for(request)
        return 200, self._completion(request, content, output_tokens, "length" if output_tokens < drawn else "stop")

    def _wall_time(self, moment: float | None) -> float | None:
        """A time on ``self.clock`` as seconds since the epoch (records use those)."""
        return None if moment is None else time.time() - (self.clock() - moment)

    def _completion(self, request: ChatRequest, content: str, completion_tokens: int, finish_reason: str) -> dict:
        """The answer's body, counted in the token totals."""
        body = completion_body(request, content, completion_tokens, finish_reason)
        self.counters.prompt_tokens += body["usage"]["prompt_tokens"]
        self.counters.generation_tokens += completion_tokens
        self.counters.truncated += finish_reason == "length"
        return body
