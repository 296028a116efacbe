"""A stand-in for vLLM serving GLM-OCR: a real HTTP server speaking OpenAI chat-completions.

Why: tests and benchmarks need the VLM's behaviour without a GPU. It validates requests
like vLLM (404 for an unknown model, 400 for a malformed body or image), queues calls
above ``max_concurrency`` (vLLM's ``--max-num-seqs``; they wait in FIFO, they are not
refused), and answers deterministically from what it received, so a test can tell which
crop and prompt produced which answer:

    "Text Recognition:"    -> "text {W}x{H} #{h}"
    "Table Recognition:"   -> "<table><tr><td>cell {W}x{H}</td></tr></table>"
    "Formula Recognition:" -> "\\frac{a}{b} #{h}"
    any other prompt       -> "echo: {prompt} {W}x{H}"

with W x H the decoded image size and h the first 8 hex digits of sha256(image bytes).

How long a call takes depends on the timing mode:

- ``timing="fixed"`` (the default): ``latency`` (+ ``latency_per_pixel`` x pixels)
  seconds per call, whatever else runs.
- ``timing="vllm"`` (``--profile NAME``): continuous batching calibrated on GLM-OCR's
  published figures. A call's prefill costs time per prompt token (one vision token per
  28x28 pixels), then it decodes an output length drawn per task (seeded), one token per
  decode step, and a step gets slower the more sequences decode together. The answer
  text is the same; ``usage.completion_tokens`` follows the drawn length.
  bench/SIMULATOR.md has the calibration, the profiles and what is not modelled.

Failure rules make matching calls answer an error status or stall (to test retries and
timeouts). Every call is recorded; ``/_sim/*`` endpoints read and change all of this.
``/metrics`` has vLLM's metric names plus the simulator's own capacity bound and busy
slot-seconds (utilisation = delta busy / (max_num_seqs x delta t)).

Run it:  python -m bench.vlm_simulator --port 8118 --latency 0.5 --max-concurrency 64
         python -m bench.vlm_simulator --port 8118 --max-concurrency 64 --profile glm-ocr-a40
From Python (tests): ``with SimulatorProcess(latency=0.02) as sim: ... sim.url ...``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import bisect
import collections
import hashlib
import heapq
import io
import itertools
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from PIL import Image, UnidentifiedImageError

from gateway.disconnect import ClientGoneError, unless_disconnected
from scripts.processes import free_port, http_ok, launch, log_tail, stop_group

REPO_ROOT = Path(__file__).resolve().parent.parent
PATCH = 28  # pixels per vision-token side: GLM-OCR's 14 px patches, merged 2x2


# --- behaviour (no web framework below this line until create_app) -------------------------


class ApiError(Exception):
    """An error answered in OpenAI's format: ``{"error": {"message", "type", "code"}}``."""

    TYPES = {400: "BadRequestError", 404: "NotFoundError", 429: "RateLimitError"}

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict:
        kind = self.TYPES.get(self.status, "InternalServerError" if self.status >= 500 else "Error")
        return {"error": {"message": self.message, "type": kind, "param": None, "code": self.status}}


@dataclass
class FailureRule:
    """Calls matching ``prompt`` and ``request_id`` (None matches any) answer ``status``,
    or, with ``stall``, wait that many seconds and then answer normally. ``times`` limits
    how many calls the rule hits; after that it stops matching."""

    prompt: str | None = None
    request_id: str | None = None
    status: int = 500
    times: int | None = None
    stall: float | None = None
    message: str | None = None

    def take(self, prompt: str, request_id: str) -> bool:
        """Whether this call is hit, counting it against ``times``."""
        if self.prompt is not None and self.prompt != prompt:
            return False
        if self.request_id is not None and self.request_id != request_id:
            return False
        if self.times is not None:
            if self.times <= 0:
                return False
            self.times -= 1
        return True


@dataclass(frozen=True)
class ChatRequest:
    """What the simulator reads from a chat-completions body."""

    model: str
    prompt: str
    image: bytes
    width: int
    height: int
    max_tokens: int | None
    temperature: float | None


def parse_chat_request(raw: bytes, served_model: str) -> ChatRequest:
    """Validate a body the way vLLM does (as far as this stand-in needs); raises ApiError."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model", served_model)
    if model != served_model:
        raise ApiError(404, f"The model `{model}` does not exist.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "'messages' must be a non-empty list of message objects")
    content = messages[-1].get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise ApiError(400, "message 'content' must be a string or a list of content parts")
    texts = [p.get("text") for p in parts if p.get("type") == "text"]
    urls = [(p.get("image_url") or {}).get("url") for p in parts if p.get("type") == "image_url"]
    if not all(isinstance(t, str) for t in texts):
        raise ApiError(400, "a text part has no 'text' string")
    # vLLM answers text-only prompts too (the GLM-OCR SDK probes the server with "hello"
    # before it starts); GLM-OCR region calls carry one image.
    if len(urls) > 1 or not all(isinstance(u, str) for u in urls):
        raise ApiError(400, f"expected at most one image_url part with a 'url', got {len(urls)}")
    image, width, height = decode_data_uri(urls[0]) if urls else (b"", 0, 0)
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        raise ApiError(400, f"'max_tokens' must be a positive integer, got {max_tokens!r}")
    temperature = body.get("temperature")
    if temperature is not None and (type(temperature) not in (int, float) or temperature < 0):
        raise ApiError(400, f"'temperature' must be a number >= 0, got {temperature!r}")
    return ChatRequest(model, "\n".join(texts), image, width, height, max_tokens, temperature)


def decode_data_uri(url: str) -> tuple[bytes, int, int]:
    """The image bytes and size of a ``data:image/...;base64,...`` URL; raises ApiError."""
    header, comma, data = url.partition(",")
    if not comma or not header.startswith("data:image/") or not header.endswith(";base64"):
        raise ApiError(400, f"the image must be a base64 data URI, got {url[:40]!r}")
    try:
        image = base64.b64decode(data, validate=True)
        # The header gives the size and proves an image; a full decode (~10 ms for a
        # page-sized crop) would be CPU this stand-in takes from the service it measures,
        # on its one event loop, where real vLLM decodes on its own host.
        with Image.open(io.BytesIO(image)) as picture:
            width, height = picture.size
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise ApiError(400, f"the image could not be decoded: {exc}") from None
    return image, width, height


def answer_for(prompt: str, image: bytes, width: int, height: int) -> str:
    """The deterministic answer (see the module docstring)."""
    digest = hashlib.sha256(image).hexdigest()[:8]
    if prompt == "Text Recognition:":
        return f"text {width}x{height} #{digest}"
    if prompt == "Table Recognition:":
        return f"<table><tr><td>cell {width}x{height}</td></tr></table>"
    if prompt == "Formula Recognition:":
        return f"\\frac{{a}}{{b}} #{digest}"
    return f"echo: {prompt} {width}x{height}"



def prompt_tokens_for(prompt: str, width: int, height: int) -> int:
    """The prompt's length in tokens, roughly: one vision token per 28x28 pixels, the
    prompt's words, and a few chat-template tokens."""
    return (width * height) // (PATCH * PATCH) + len(prompt.split()) + 8


# --- the calibrated model: profiles, output lengths, capacity (bench/SIMULATOR.md) --------

TASK_OF_PROMPT = {"Text Recognition:": "text", "Table Recognition:": "table", "Formula Recognition:": "formula"}
TASKS = ("text", "table", "formula")


def task_of(prompt: str) -> str:
    """The task a prompt asks for (the prompts ``answer_for`` knows); any other prompt
    counts as text."""
    return TASK_OF_PROMPT.get(prompt, "text")


@dataclass(frozen=True)
class BatchingParams:
    """The numbers of the calibrated model; bench/SIMULATOR.md derives each profile's."""

    prefill_seconds_per_token: float = field(
        metadata={"help": "GPU seconds of prefill (vision encoder + decoder) per prompt token"})
    decode_step_seconds: float = field(
        metadata={"help": "seconds of one decode step, without the per-sequence part (> 0)"})
    decode_step_seconds_per_seq: float = field(
        metadata={"help": "seconds each decoding sequence adds to every decode step"})
    text_output_tokens: float = field(
        metadata={"help": "mean output tokens of a 'Text Recognition:' call (and of other prompts)"})
    table_output_tokens: float = field(metadata={"help": "mean output tokens of a 'Table Recognition:' call"})
    formula_output_tokens: float = field(metadata={"help": "mean output tokens of a 'Formula Recognition:' call"})
    output_tokens_cv: float = field(
        metadata={"help": "coefficient of variation of the log-normal output lengths (0: always the mean)"})

    def step_seconds(self, decoding: int) -> float:
        """One decode step while ``decoding`` sequences decode together."""
        return self.decode_step_seconds + self.decode_step_seconds_per_seq * decoding

    def mean_output_tokens(self, task: str) -> float:
        return getattr(self, f"{task}_output_tokens")

    def scaled(self, slowdown: float) -> "BatchingParams":
        """The same model on a GPU ``slowdown`` times slower (same output lengths)."""
        return replace(
            self,
            prefill_seconds_per_token=round(self.prefill_seconds_per_token * slowdown, 9),
            decode_step_seconds=round(self.decode_step_seconds * slowdown, 9),
            decode_step_seconds_per_seq=round(self.decode_step_seconds_per_seq * slowdown, 9),
        )


BATCHING_FIELDS = tuple(f.name for f in fields(BatchingParams))
GLM_OCR_A40 = BatchingParams(
    prefill_seconds_per_token=75e-6,
    decode_step_seconds=3.0e-3,
    decode_step_seconds_per_seq=50e-6,
    text_output_tokens=100,
    table_output_tokens=400,
    formula_output_tokens=50,
    output_tokens_cv=0.6,
)
PROFILES: dict[str, BatchingParams] = {
    "glm-ocr-a40": GLM_OCR_A40,
    "glm-ocr-a100": replace(
        GLM_OCR_A40, prefill_seconds_per_token=35e-6, decode_step_seconds=2.0e-3, decode_step_seconds_per_seq=20e-6
    ),
    # Not a real GPU: an A40 five times slower, so that one simulated GPU saturates
    # before a client on a small machine does, with 16 and with 64 slots.
    "glm-ocr-bottleneck": GLM_OCR_A40.scaled(5.0),
}
DEFAULT_PROFILE = "glm-ocr-a40"

# What the capacity bound assumes: every request carries a paragraph-sized crop (32 x 8
# vision tokens) and the tasks come in this mix.
REFERENCE_CROP = (896, 224)
REFERENCE_TASK_MIX = {"text": 0.8, "table": 0.1, "formula": 0.1}
REFERENCE_PROMPT_TOKENS = prompt_tokens_for("Text Recognition:", *REFERENCE_CROP)  # 266


def gpu_seconds_per_request(params: BatchingParams, max_num_seqs: int, task: str) -> float:
    """GPU time one reference request of ``task`` costs while ``max_num_seqs`` sequences
    decode together: its prefill (which pauses decoding) plus its share of the steps."""
    prefill = params.prefill_seconds_per_token * REFERENCE_PROMPT_TOKENS
    return prefill + params.mean_output_tokens(task) * params.step_seconds(max_num_seqs) / max_num_seqs


def batching_capacity(params: BatchingParams, max_num_seqs: int, mix: dict[str, float] = REFERENCE_TASK_MIX) -> float:
    """Completed requests/s with every slot always busy: the upper bound of the vllm
    timing, since a step's cost per sequence only falls as the batch grows."""
    weight = sum(mix.values())
    return weight / sum(share * gpu_seconds_per_request(params, max_num_seqs, task) for task, share in mix.items())


class OutputLengths:
    """Output lengths drawn per task from a log-normal with the profile's mean and
    coefficient of variation. One seeded stream per task: the n-th call of a task gets
    the same length in every run with the same seed, whatever the other tasks do."""

    def __init__(self, params: BatchingParams, seed: int) -> None:
        self.params = params
        self._streams = {task: random.Random(f"{seed}:{task}") for task in TASKS}

    def draw(self, task: str) -> int:
        mean = self.params.mean_output_tokens(task)
        cv = self.params.output_tokens_cv
        if cv == 0:
            return max(1, round(mean))
        sigma = math.sqrt(math.log1p(cv * cv))
        return max(1, round(self._streams[task].lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)))


# --- continuous batching -------------------------------------------------------------------

@dataclass(eq=False)
class Sequence:
    """One request inside the simulated engine; times are on the scheduler's clock."""

    prompt_tokens: int
    output_tokens: int
    state: str = "new"  # then waiting, prefill, decode, and finished or aborted
    scheduled: float | None = None  # admitted into the running batch (its prefill starts)
    finished: float | None = None
    prefill_left: float = 0.0  # seconds
    last_token_at: float = 0.0  # the scheduler's decode progress at which it is done


class BatchScheduler:
    """vLLM's continuous batching, reduced to GPU time. At most ``max_num_seqs``
    sequences run, the others wait in FIFO. An admitted sequence is prefilled (sequences
    one after another, decoding paused meanwhile: the GPU time chunked prefill would add
    to mixed steps), then it decodes one token per step, and a step with n sequences
    decoding takes ``params.step_seconds(n)``.

    Between two events (a prefill ending, a sequence finishing, an arrival, an abort)
    every decoding sequence advances at the same rate, so the scheduler keeps one shared
    progress count and jumps from event to event instead of stepping token by token: its
    cost is per event, not per token. Pure: callers pass the time (``advance(now)``
    before ``submit``/``abort``), so tests drive it with any clock."""

    TIME_EPSILON = 1e-6  # seconds: an event this close to now is due
    TOKEN_EPSILON = 1e-6  # tokens: float rounding of the shared progress

    def __init__(self, params: BatchingParams, max_num_seqs: int, now: float = 0.0) -> None:
        self.params = params
        self.max_num_seqs = max_num_seqs
        self.now = now
        self.progress = 0.0  # tokens every decoding sequence has advanced since the start
        self.waiting: collections.deque[Sequence] = collections.deque()
        self.prefilling: collections.deque[Sequence] = collections.deque()
        self.decoding = 0
        self._by_last_token: list[tuple[float, int, Sequence]] = []  # heap; aborted ones linger
        self._arrival_order = itertools.count()
        self.busy_slot_seconds = 0.0  # integral of running sequences over time
        self.peak = 0

    @property
    def running(self) -> int:
        return len(self.prefilling) + self.decoding

    def submit(self, sequence: Sequence) -> None:
        sequence.state = "waiting"
        self.waiting.append(sequence)
        self._admit()

    def abort(self, sequence: Sequence) -> None:
        """Drop a sequence whose client went away, freeing its slot."""
        if sequence.state == "waiting":
            self.waiting.remove(sequence)
        elif sequence.state == "prefill":
            self.prefilling.remove(sequence)
        elif sequence.state == "decode":
            self.decoding -= 1
        else:
            return
        sequence.state = "aborted"
        self._admit()

    def set_limit(self, max_num_seqs: int) -> None:
        """A lower limit lets running sequences finish (no preemption)."""
        self.max_num_seqs = max_num_seqs
        self._admit()

    def reset_totals(self) -> None:
        self.busy_slot_seconds = 0.0
        self.peak = self.running

    def next_event(self) -> float | None:
        """When the state changes next by itself (None: idle until an arrival)."""
        if self.prefilling:
            return self.now + self.prefilling[0].prefill_left
        first = self._next_to_finish()
        if first is None:
            return None
        return self.now + (first.last_token_at - self.progress) * self.params.step_seconds(self.decoding)

    def advance(self, now: float) -> list[Sequence]:
        """Run the engine up to ``now``; the sequences that finished on the way."""
        finished: list[Sequence] = []
        while (event := self.next_event()) is not None and event <= now + self.TIME_EPSILON:
            self._run_until(event)
            finished += self._complete_due()
        self._run_until(now)
        return finished

    def _run_until(self, moment: float) -> None:
        elapsed = moment - self.now
        if elapsed <= 0:
            return
        self.busy_slot_seconds += self.running * elapsed
        if self.prefilling:
            self.prefilling[0].prefill_left -= elapsed
        elif self.decoding:
            self.progress += elapsed / self.params.step_seconds(self.decoding)
        self.now = moment

    def _complete_due(self) -> list[Sequence]:
        if self.prefilling and self.prefilling[0].prefill_left <= self.TIME_EPSILON:
            sequence = self.prefilling.popleft()
            sequence.state = "decode"
            sequence.last_token_at = self.progress + sequence.output_tokens
            heapq.heappush(self._by_last_token, (sequence.last_token_at, next(self._arrival_order), sequence))
            self.decoding += 1
        finished = []
        while (first := self._next_to_finish()) is not None and (
            first.last_token_at - self.progress <= self.TOKEN_EPSILON
        ):
            heapq.heappop(self._by_last_token)
            first.state, first.finished = "finished", self.now
            self.decoding -= 1
            finished.append(first)
        self._admit()
        return finished

    def _next_to_finish(self) -> Sequence | None:
        while self._by_last_token and self._by_last_token[0][2].state == "aborted":
            heapq.heappop(self._by_last_token)
        return self._by_last_token[0][2] if self._by_last_token else None

    def _admit(self) -> None:
        while self.waiting and self.running < self.max_num_seqs:
            sequence = self.waiting.popleft()
            sequence.state, sequence.scheduled = "prefill", self.now
            sequence.prefill_left = self.params.prefill_seconds_per_token * sequence.prompt_tokens
            self.prefilling.append(sequence)
        self.peak = max(self.peak, self.running)


class BatchingEngine:
    """Runs a BatchScheduler on the event loop: it sleeps until the next event or until
    a call arrives or leaves, so its CPU use grows with events, not with tokens."""

    def __init__(self, scheduler: BatchScheduler, clock: Callable[[], float] = time.monotonic) -> None:
        self.scheduler = scheduler
        self.clock = clock
        self._done: dict[Sequence, asyncio.Future] = {}
        self._wake = asyncio.Event()
        self._runner: asyncio.Task | None = None

    async def generate(self, sequence: Sequence) -> None:
        """Returns when ``sequence`` has its last token; cancelling it aborts the sequence."""
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        done = asyncio.get_running_loop().create_future()
        self._done[sequence] = done
        self.sync()
        self.scheduler.submit(sequence)
        self._wake.set()
        try:
            await done
        except asyncio.CancelledError:
            self.sync()
            self.scheduler.abort(sequence)
            self._wake.set()
            raise
        finally:
            self._done.pop(sequence, None)

    def sync(self) -> None:
        """Bring the scheduler up to now and wake the callers whose sequences finished."""
        for sequence in self.scheduler.advance(self.clock()):
            done = self._done.get(sequence)
            if done is not None and not done.done():
                done.set_result(None)

    def reconfigure(self, params: BatchingParams, max_num_seqs: int) -> None:
        """New step costs apply from now on; sequences already admitted keep their prefill."""
        self.sync()
        self.scheduler.params = params
        self.scheduler.set_limit(max_num_seqs)
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            self.sync()
            event = self.scheduler.next_event()
            timer = None if event is None else loop.call_later(max(0.0, event - self.clock()), self._wake.set)
            try:
                await self._wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()


# --- the fixed timing's slots, totals ------------------------------------------------------


class Slots:
    """vLLM's ``--max-num-seqs`` for the fixed timing: at most ``limit`` calls run, the
    others wait. The limit can change while calls wait."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.running = 0
        self.waiting = 0
        self.peak = 0
        self.clock = clock
        self._busy = 0.0  # slot-seconds up to _busy_since
        self._busy_since = clock()
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        async with self._changed:
            self.waiting += 1
            try:
                await self._changed.wait_for(lambda: self.running < self.limit)
            finally:
                self.waiting -= 1
            self._count_busy()
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            yield
        finally:
            async with self._changed:
                self._count_busy()
                self.running -= 1
                self._changed.notify_all()

    async def set_limit(self, limit: int) -> None:
        async with self._changed:
            self.limit = limit
            self._changed.notify_all()

    def busy_slot_seconds(self) -> float:
        self._count_busy()
        return self._busy

    def reset_totals(self) -> None:
        self._count_busy()
        self._busy = 0.0
        self.peak = self.running

    def _count_busy(self) -> None:
        now = self.clock()
        self._busy += self.running * (now - self._busy_since)
        self._busy_since = now


@dataclass
class Counters:
    """Totals since start or the last reset (``/_sim/stats`` and ``/metrics``)."""

    total_calls: int = 0
    succeeded: int = 0
    truncated: int = 0  # succeeded with finish_reason "length": the drawn length hit max_tokens
    failed: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0


class Histogram:
    """A Prometheus histogram: vLLM's request-latency buckets, with finer ones below 0.3 s
    for the fast fixed timings tests use."""

    BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
               30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)

    def __init__(self) -> None:
        self.in_bucket = [0] * len(self.BUCKETS)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.sum += seconds
        index = bisect.bisect_left(self.BUCKETS, seconds)
        if index < len(self.BUCKETS):
            self.in_bucket[index] += 1

    def samples(self, name: str, labels: str) -> list[str]:
        cumulative = itertools.accumulate(self.in_bucket)
        lines = [f'{name}_bucket{{le="{bound}",{labels}}} {count}' for bound, count in zip(self.BUCKETS, cumulative)]
        lines.append(f'{name}_bucket{{le="+Inf",{labels}}} {self.count}')
        lines.append(f"{name}_sum{{{labels}}} {self.sum}")
        lines.append(f"{name}_count{{{labels}}} {self.count}")
        return lines


# --- configuration -------------------------------------------------------------------------

TIMINGS = ("fixed", "vllm")


@dataclass(frozen=True)
class SimConfig:
    """How the simulator behaves (failure rules aside: they are counted down in place)."""

    latency: float = 0.0
    latency_per_pixel: float = 0.0
    max_num_seqs: int = 64
    timing: str = "fixed"
    profile: str = DEFAULT_PROFILE  # where ``batching`` came from (fields may override it)
    seed: int = 0
    batching: BatchingParams = PROFILES[DEFAULT_PROFILE]

    def as_dict(self) -> dict:
        return {
            "latency": self.latency,
            "latency_per_pixel": self.latency_per_pixel,
            "max_concurrency": self.max_num_seqs,
            "max_num_seqs": self.max_num_seqs,
            "timing": self.timing,
            "profile": self.profile,
            "seed": self.seed,
            **asdict(self.batching),
        }


CONFIG_FIELDS = frozenset(
    {"latency", "latency_per_pixel", "max_concurrency", "max_num_seqs", "failures", "timing", "profile", "seed",
     *BATCHING_FIELDS}
)
LOWEST_BATCHING_VALUE = {  # and whether the lowest value itself is refused
    "prefill_seconds_per_token": (0.0, False),
    "decode_step_seconds": (0.0, True),
    "decode_step_seconds_per_seq": (0.0, False),
    "text_output_tokens": (1.0, False),
    "table_output_tokens": (1.0, False),
    "formula_output_tokens": (1.0, False),
    "output_tokens_cv": (0.0, False),
}


def checked_number(changes: dict, name: str, lowest: float = 0.0, exclusive: bool = False) -> float | None:
    """``changes[name]`` as a float, None if absent; raises ApiError (400) naming it."""
    if name not in changes:
        return None
    value = changes[name]
    if (
        type(value) not in (int, float) or not math.isfinite(value)
        or value < lowest or (exclusive and value == lowest)
    ):
        raise ApiError(400, f"'{name}' must be a number {'>' if exclusive else '>='} {lowest:g}, got {value!r}")
    return float(value)


def checked_slots(changes: dict) -> int | None:
    """max_concurrency and its alias max_num_seqs; raises ApiError (400) naming the field."""
    given = {name: changes[name] for name in ("max_concurrency", "max_num_seqs") if name in changes}
    for name, value in given.items():
        if type(value) is not int or value < 1:
            raise ApiError(400, f"'{name}' must be an integer >= 1, got {value!r}")
    if len(set(given.values())) > 1:
        raise ApiError(400, f"'max_concurrency' and 'max_num_seqs' are one setting; got {given}")
    return next(iter(given.values()), None)


def validated_config(changes: Any, current: SimConfig) -> SimConfig:
    """``current`` with ``changes`` applied (``failures`` is parsed by the caller);
    raises ApiError (400) naming the first bad field. A ``profile`` sets every batching
    number (and the vllm timing unless ``timing`` is given); fields given beside it win."""
    if not isinstance(changes, dict):
        raise ApiError(400, "the configuration must be a JSON object")
    if unknown := sorted(set(changes) - CONFIG_FIELDS):
        raise ApiError(400, f"unknown configuration field(s) {unknown}; known: {sorted(CONFIG_FIELDS)}")
    config = current
    for name in ("latency", "latency_per_pixel"):
        if (value := checked_number(changes, name)) is not None:
            config = replace(config, **{name: value})
    if (slots := checked_slots(changes)) is not None:
        config = replace(config, max_num_seqs=slots)
    if "profile" in changes:
        profile = changes["profile"]
        if profile not in PROFILES:
            raise ApiError(400, f"'profile' must be one of {sorted(PROFILES)}, got {profile!r}")
        config = replace(config, profile=profile, batching=PROFILES[profile], timing="vllm")
    if "timing" in changes:
        if changes["timing"] not in TIMINGS:
            raise ApiError(400, f"'timing' must be one of {list(TIMINGS)}, got {changes['timing']!r}")
        config = replace(config, timing=changes["timing"])
    if "seed" in changes:
        if type(changes["seed"]) is not int:
            raise ApiError(400, f"'seed' must be an integer, got {changes['seed']!r}")
        config = replace(config, seed=changes["seed"])
    overrides = {}
    for name, (lowest, exclusive) in LOWEST_BATCHING_VALUE.items():
        if (value := checked_number(changes, name, lowest, exclusive)) is not None:
            overrides[name] = value
    return replace(config, batching=replace(config.batching, **overrides))


# --- the simulator -------------------------------------------------------------------------


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
        self.e2e_latency = Histogram()
        self.queue_time = Histogram()

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
        self.e2e_latency = Histogram()
        self.queue_time = Histogram()
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
            "e2e_request_latency_seconds": {"count": self.e2e_latency.count, "sum": self.e2e_latency.sum},
        }

    async def complete(self, raw: bytes, request_id: str) -> tuple[int, dict]:
        """Serve one chat-completions call: ``(status, JSON body)``."""
        arrived = self.clock()
        record = {
            "request_id": request_id, "prompt": None, "width": None, "height": None,
            "model": None, "max_tokens": None, "temperature": None,
            "status": None, "received": time.time(), "started": None, "finished": None,
        }
        self.calls.append(record)
        self.counters.total_calls += 1
        try:
            request = parse_chat_request(raw, self.model)
        except ApiError as error:
            record.update(status=error.status, started=time.time(), finished=time.time())
            self.counters.failed += 1
            return error.status, error.body()
        record.update(
            prompt=request.prompt, width=request.width, height=request.height, model=request.model,
            max_tokens=request.max_tokens, temperature=request.temperature,
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
            self.e2e_latency.observe(self.clock() - arrived)
            self.queue_time.observe(max(0.0, record["started"] - record["received"]))
        else:
            self.counters.failed += 1
        return status, body

    async def _serve_fixed(self, request: ChatRequest, rule: FailureRule | None, record: dict) -> tuple[int, dict]:
        """``latency`` (+ per pixel) seconds in one of ``max_num_seqs`` slots."""
        async with self.slots.hold():
            record["started"] = time.time()
            try:
                if rule is not None and rule.stall is None:
                    return injected_error(rule)
                if rule is not None:
                    await asyncio.sleep(rule.stall)
                config = self.settings
                await asyncio.sleep(config.latency + config.latency_per_pixel * request.width * request.height)
                content = answer_for(request.prompt, request.image, request.width, request.height)
                return 200, self._completion(request, content, max(1, len(content) // 4), "stop")
            finally:
                record["finished"] = time.time()

    async def _serve_batched(self, request: ChatRequest, rule: FailureRule | None, record: dict) -> tuple[int, dict]:
        """Through the continuous-batching engine. An error rule answers at once (before
        scheduling, like a front-end error); a stall waits before the call is queued."""
        if rule is not None and rule.stall is None:
            record["started"] = record["finished"] = time.time()
            return injected_error(rule)
        if rule is not None:
            await asyncio.sleep(rule.stall)
        drawn = self.lengths.draw(task_of(request.prompt))
        output_tokens = min(drawn, request.max_tokens or drawn)
        sequence = Sequence(prompt_tokens_for(request.prompt, request.width, request.height), output_tokens)
        try:
            await self.engine.generate(sequence)
        finally:
            record["started"] = self._wall_time(sequence.scheduled)
            record["finished"] = time.time()
        content = answer_for(request.prompt, request.image, request.width, request.height)
        return 200, self._completion(request, content, output_tokens, "length" if output_tokens < drawn else "stop")

    def _wall_time(self, moment: float | None) -> float | None:
        """A time on ``self.clock`` as seconds since the epoch (records use those)."""
        return None if moment is None else time.time() - (self.clock() - moment)

    def _completion(self, request: ChatRequest, content: str, completion_tokens: int, finish_reason: str) -> dict:
        prompt_tokens = prompt_tokens_for(request.prompt, request.width, request.height)
        self.counters.prompt_tokens += prompt_tokens
        self.counters.generation_tokens += completion_tokens
        self.counters.truncated += finish_reason == "length"
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": finish_reason,
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def metrics(self) -> str:
        """Prometheus text: vLLM's metric names, then the simulator's own (``sim_*``)."""
        stats = self.stats()
        label = f'model_name="{self.model}"'
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, Any]]) -> None:
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
            lines.extend(f"{name}{{{labels}}} {prometheus_value(value)}" for labels, value in samples)

        def histogram(name: str, help_text: str, values: Histogram) -> None:
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} histogram"])
            lines.extend(values.samples(name, label))

        metric("vllm:num_requests_running", "gauge", "Requests in model execution batches.",
               [(label, stats["running"])])
        metric("vllm:num_requests_waiting", "gauge", "Requests waiting to be processed.",
               [(label, stats["queued"])])
        metric("vllm:request_success_total", "counter", "Successfully processed requests.",
               [(f'finished_reason="stop",{label}', stats["succeeded"] - stats["truncated"]),
                (f'finished_reason="length",{label}', stats["truncated"])])
        metric("vllm:prompt_tokens_total", "counter", "Prefill tokens processed.",
               [(label, stats["prompt_tokens"])])
        metric("vllm:generation_tokens_total", "counter", "Generation tokens processed.",
               [(label, stats["generation_tokens"])])
        histogram("vllm:e2e_request_latency_seconds", "End-to-end request latency in seconds.", self.e2e_latency)
        histogram("vllm:request_queue_time_seconds", "Time requests spent waiting for a slot.", self.queue_time)
        metric("sim_max_num_seqs", "gauge", "Requests that can run at once (--max-num-seqs).",
               [(label, stats["max_num_seqs"])])
        metric("sim_busy_slot_seconds_total", "counter",
               "Integral of running requests over time; utilisation = rate / sim_max_num_seqs.",
               [(label, stats["busy_slot_seconds"])])
        crop = "{}x{}".format(*REFERENCE_CROP)
        metric("sim_capacity_requests_per_second", "gauge",
               f"Completed requests/s with every slot busy, for {crop} crops (task=mix: "
               + ", ".join(f"{share:g} {task}" for task, share in REFERENCE_TASK_MIX.items()) + ").",
               [(f'task="{task}",crop="{crop}",{label}', value) for task, value in self.capacity().items()])
        metric("sim_timing_info", "gauge", "The timing mode and profile in use.",
               [(f'timing="{self.settings.timing}",profile="{stats["profile"] or ""}",{label}', 1)])
        return "\n".join(lines) + "\n"


def prometheus_value(value: float) -> str:
    return "+Inf" if value == math.inf else str(value)


def injected_error(rule: FailureRule) -> tuple[int, dict]:
    error = ApiError(rule.status, rule.message or f"injected failure ({rule.status})")
    return error.status, error.body()


def parse_failures(value: Any) -> list[FailureRule]:
    """Failure rules from JSON; raises ApiError (400) naming the bad rule."""
    if not isinstance(value, list):
        raise ApiError(400, "'failures' must be a list of rules")
    names = {f.name for f in fields(FailureRule)}
    rules = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - names:
            raise ApiError(400, f"failure rule {index} must be an object with fields from {sorted(names)}")
        rule = FailureRule(**item)
        if type(rule.status) is not int or not 100 <= rule.status <= 599:
            raise ApiError(400, f"failure rule {index}: 'status' must be an HTTP status, got {rule.status!r}")
        if rule.times is not None and type(rule.times) is not int:
            raise ApiError(400, f"failure rule {index}: 'times' must be an integer, got {rule.times!r}")
        if rule.stall is not None and (type(rule.stall) not in (int, float) or rule.stall < 0):
            raise ApiError(400, f"failure rule {index}: 'stall' must be seconds >= 0, got {rule.stall!r}")
        rules.append(rule)
    return rules


# --- HTTP ----------------------------------------------------------------------------------


ABORTED = 499  # the record's status of a call whose client went away


def create_app(simulator: Simulator) -> FastAPI:
    """The FastAPI app serving ``simulator``: vLLM's routes plus ``/_sim/*`` controls."""
    app = FastAPI(title="VLM simulator (vLLM + GLM-OCR stand-in)")

    def error_response(error: ApiError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        call = simulator.complete(await request.body(), request.headers.get("x-request-id", ""))
        try:  # like vLLM: a request whose client left is aborted
            status, body = await unless_disconnected(request, call)
        except ClientGoneError:
            return JSONResponse({"error": {"message": "client disconnected"}}, status_code=ABORTED)
        return JSONResponse(body, status_code=status)

    @app.get("/v1/models")
    async def models() -> dict:
        return {
            "object": "list",
            "data": [{
                "id": simulator.model, "object": "model", "created": int(time.time()),
                "owned_by": "vllm", "root": simulator.model, "parent": None,
            }],
        }

    @app.get("/health")
    async def health() -> PlainTextResponse:
        return PlainTextResponse("")

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(simulator.metrics(), media_type="text/plain; version=0.0.4")

    @app.get("/_sim/calls")
    async def calls() -> list[dict]:
        return list(simulator.calls)

    @app.get("/_sim/stats")
    async def stats() -> dict:
        return simulator.stats()

    @app.post("/_sim/reset")
    async def reset() -> dict:
        simulator.reset()
        return simulator.stats()

    @app.post("/_sim/config")
    async def configure(request: Request) -> JSONResponse:
        try:
            await simulator.configure(json.loads(await request.body() or b"{}"))
        except ValueError as exc:
            return error_response(ApiError(400, f"the configuration is not valid JSON: {exc}"))
        except ApiError as error:
            return error_response(error)
        return JSONResponse(simulator.config())

    return app


def option(name: str) -> str:
    """The command-line flag of a configuration field."""
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="OpenAI-compatible stand-in for vLLM serving GLM-OCR (see bench/SIMULATOR.md).",
        epilog="Every timing option can be changed later with POST /_sim/config (same names, with underscores).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8118, help="port to listen on (default %(default)s)")
    parser.add_argument("--model", default="glm-ocr", help="served model name (default %(default)s)")
    parser.add_argument("--max-concurrency", "--max-num-seqs", dest="max_num_seqs", type=int, default=64, metavar="N",
                        help="requests running at once, like vLLM's --max-num-seqs; the rest wait in FIFO "
                             "(default %(default)s)")
    parser.add_argument("--max-records", type=int, default=100_000, help="calls kept for /_sim/calls (default %(default)s)")
    parser.add_argument("--log-level", default="warning", help="uvicorn's log level (default %(default)s)")
    fixed = parser.add_argument_group("fixed timing (the default)")
    fixed.add_argument("--latency", type=float, default=0.0, help="seconds per call (default %(default)s)")
    fixed.add_argument("--latency-per-pixel", type=float, default=0.0,
                       help="extra seconds per image pixel (default %(default)s)")
    batching = parser.add_argument_group(
        "vllm timing (continuous batching)",
        "A profile sets all the numbers below; a number given beside it overrides the profile's.",
    )
    batching.add_argument("--timing", choices=TIMINGS,
                          help="'fixed': latency per call; 'vllm': continuous batching (default: fixed, "
                               "or vllm when --profile is given)")
    batching.add_argument("--profile", choices=sorted(PROFILES),
                          help=f"calibrated numbers for --timing vllm (default {DEFAULT_PROFILE}); implies --timing vllm")
    batching.add_argument("--seed", type=int, help="seed of the output-length draws (default 0)")
    for name in BATCHING_FIELDS:
        help_text = next(f.metadata["help"] for f in fields(BatchingParams) if f.name == name)
        batching.add_argument(option(name), type=float, metavar="NUMBER", help=help_text)
    return parser


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The configuration the flags ask for; raises ApiError naming a bad field."""
    given = {
        name: getattr(args, name)
        for name in ("latency", "latency_per_pixel", "max_num_seqs", "timing", "profile", "seed", *BATCHING_FIELDS)
        if getattr(args, name) is not None
    }
    return validated_config(given, SimConfig())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ApiError as error:  # name the flag, not the field
        parser.error(re.sub(r"'(\w+)'", lambda m: option(m[1]) if m[1] in CONFIG_FIELDS else m[0], error.message))

    import uvicorn

    uvicorn.run(
        create_app(Simulator(args.model, config, args.max_records)),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=2,  # stalled calls must not hold up a stop
    )
    return 0


# --- the simulator as a child process (tests, benchmarks, make run) -------------------------


@dataclass
class SimulatorProcess:
    """Runs ``python -m bench.vlm_simulator`` and talks to its control endpoints with the
    standard library only (urllib), so that using it needs no HTTP client package.
    ``profile`` (or ``timing="vllm"``) selects continuous batching; ``batching`` overrides
    its numbers by name (BATCHING_FIELDS)."""

    latency: float = 0.0
    max_concurrency: int = 64
    model: str = "glm-ocr"
    host: str = "127.0.0.1"
    port: int = 0
    latency_per_pixel: float = 0.0
    timing: str | None = None
    profile: str | None = None
    seed: int | None = None
    batching: dict[str, float] = field(default_factory=dict)
    ready_timeout: float = 30.0
    log_path: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()

    @property
    def root(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL: clients append ``/chat/completions``."""
        return f"{self.root}/v1"

    def command(self) -> list[str]:
        command = [
            sys.executable, "-m", "bench.vlm_simulator",
            "--host", self.host, "--port", str(self.port), "--model", self.model,
            "--latency", str(self.latency), "--latency-per-pixel", str(self.latency_per_pixel),
            "--max-concurrency", str(self.max_concurrency),
        ]
        chosen = {"timing": self.timing, "profile": self.profile, "seed": self.seed, **self.batching}
        for name, value in chosen.items():
            if value is not None:
                command += [option(name), str(value)]
        return command

    def start(self) -> "SimulatorProcess":
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="vlm-simulator-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self.process = launch(
            "the VLM simulator",
            self.command(),
            log_path=self.log_path,
            ready=lambda: http_ok(f"{self.root}/health"),
            ready_timeout=self.ready_timeout,
            cwd=REPO_ROOT,
        )
        return self

    def _control(self, path: str, payload: dict | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.root}{path}", data=data, method="GET" if data is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"the VLM simulator refused {path}: {exc.code} {exc.read()[:300]!r}") from None

    def calls(self) -> list[dict]:
        return self._control("/_sim/calls")

    def stats(self) -> dict:
        return self._control("/_sim/stats")

    def reset(self) -> dict:
        return self._control("/_sim/reset", {})

    def configure(self, **changes: Any) -> dict:
        """Any of CONFIG_FIELDS: latency, latency_per_pixel, max_concurrency (alias
        max_num_seqs), failures (list of dicts), timing, profile, seed, BATCHING_FIELDS."""
        return self._control("/_sim/config", changes)

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = 10.0) -> None:
        stop_group(self.process, timeout)

    def __enter__(self) -> "SimulatorProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
