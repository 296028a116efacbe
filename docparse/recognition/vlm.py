"""Recognition by a VLM (GLM-OCR served by vLLM) over the OpenAI chat-completions API.

``VlmClient`` is the HTTP side: pooled connections, one process-wide limit on calls in
flight (matched to vLLM's --max-num-seqs, so we queue here rather than pile up there),
retries with backoff on what a retry can fix. ``VlmRecognizer`` is the page side: crops,
prompts, per-request parameters, and one result per region whatever happens to the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Sequence

import aiohttp

from docparse import extraction, tracing
from docparse.errors import InvalidRequestError, RecognitionError, RecognitionUnavailableError, as_error
from docparse.page_images import EncodedImage, PageSource, pixels_of, sized_for_vlm, whole_page_image
from docparse.protocol import json_bytes
from docparse.recognition.endpoints import Endpoint, EndpointPool
from docparse.recognition.crops import VLM_JPEG_QUALITY, crop_region, encode_jpeg_data_uri, resize_for_vlm
from docparse.recognition.page_markdown import answer_text
from docparse.recognition.profiles import VlmProfile
from docparse.recognition.tasks import TaskTable
from docparse.scheduling import FairSlots, current_ticket
from docparse.settings import Settings, VlmSettings
from docparse.types import READ_TASKS, RecognitionParams, RegionJob, RegionResult, Task

log = logging.getLogger("docparse.vlm")

# Failures a later attempt can get past: the server was busy, restarting or slow, or a
# pooled connection had been closed under us (connection errors, timeouts, a cut-off
# answer). Everything else would fail the same way again.
RETRYABLE_EXCEPTIONS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)
ERROR_EXCERPT = 200  # characters of the server's error message kept in ours
# vLLM's server (uvicorn) closes idle connections after 5 s; dropping ours first avoids
# sending on a connection the server is closing.
KEEPALIVE_SECONDS = 4.0


@dataclass(frozen=True)
class VlmAnswer:
    """One HTTP answer of the VLM server, read whole."""

    status: int
    body: bytes
    retry_after: str | None = None  # the Retry-After header, as sent

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def says_down(outcome: VlmAnswer | Exception) -> bool:
    """A failure that says the server is down, which feeds the circuit breaker: no
    connection, a timeout, or a gateway's 502/503/504. A 500 may be one bad input, and a
    429 says it is up but busy."""
    if isinstance(outcome, VlmAnswer):
        return outcome.status in (502, 503, 504)
    return isinstance(outcome, RETRYABLE_EXCEPTIONS)


def chat_request(
    model: str, image_data_uri: str, prompt: str, max_tokens: int, temperature: float,
    top_p: float | None, repetition_penalty: float | None,
) -> dict:
    """The OpenAI chat-completions body: the image, then the prompt."""
    content: list[dict] = [{"type": "image_url", "image_url": {"url": image_data_uri}}]
    if prompt:  # an empty prompt sends the image alone (LightOnOCR is prompted so)
        content.append({"type": "text", "text": prompt})
    body: dict = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    if top_p is not None:
        body["top_p"] = top_p
    if repetition_penalty is not None:
        body["repetition_penalty"] = repetition_penalty
    return body


def is_retryable(outcome: VlmAnswer | Exception) -> bool:
    """The one rule for retries: 429, 5xx and the transport failures above."""
    if isinstance(outcome, VlmAnswer):
        return outcome.status == 429 or outcome.status >= 500
    return isinstance(outcome, RETRYABLE_EXCEPTIONS)


def server_message(answer: VlmAnswer) -> str:
    """The server's own words: OpenAI's ``error.message`` when present, else the body."""
    try:
        message = json.loads(answer.body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = answer.text
    message = " ".join(str(message).split())
    return message[:ERROR_EXCERPT] + ("…" if len(message) > ERROR_EXCERPT else "")


def retry_after(answer: VlmAnswer) -> float | None:
    """``Retry-After`` in seconds, when the server sent one as a number."""
    try:
        seconds = float(answer.retry_after)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return max(0.0, seconds)


class VlmClient:
    """Calls ``{base_url}/chat/completions`` with one image and one prompt.

    aiohttp, not httpx: a call with a page-sized body took 1.5 ms and 1.4 ms of the event
    loop's CPU with httpx, 0.65 ms and 0.35 ms with aiohttp (BENCHMARKS.md, "Overhead"),
    and its connection pool costs the same with 64 connections as with one."""

    def __init__(self, settings: VlmSettings, pool: EndpointPool | None = None) -> None:
        self.settings = settings
        self._headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._session: aiohttp.ClientSession | None = None
        self._slots: FairSlots | None = None
        # The servers (``settings.url`` may list several, or name a headless Service),
        # each with its own bound (``max_concurrency``) and breaker.
        self.pool = pool or EndpointPool(
            settings.urls, settings.max_concurrency, failures=settings.circuit_failures,
            open_seconds=settings.circuit_open_seconds, dns_refresh=settings.dns_refresh,
        )
        self.pool.probe = self._healthy

    @property
    def model(self) -> str:
        return self.settings.model

    @property
    def slots(self) -> FairSlots:
        """The limit on calls in flight, made on first use inside the running loop (a
        Triton stub's loop exists only once ``execute`` runs). Fair across documents
        (``docparse.scheduling``): a one-page request's call is not queued behind every
        region of the big documents already waiting."""
        if self._slots is None:  # bounded by the servers in rotation, as they come and go
            self._slots = FairSlots(self.pool.capacity)
            self.pool.on_capacity = self._slots.set_limit
        return self._slots

    @property
    def session(self) -> aiohttp.ClientSession:
        """The connection pool, made on first use inside the running loop (as ``slots``):
        one connection per call in flight to each server at most (and one for its probe)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0, limit_per_host=self.settings.max_concurrency + 1, keepalive_timeout=KEEPALIVE_SECONDS,
                ),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout, sock_connect=self.settings.connect_timeout),
                headers=self._headers,
            )
        return self._session

    async def complete(
        self,
        image_data_uri: str,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float,
        top_p: float | None = None,
        repetition_penalty: float | None = None,
        response_format: dict | None = None,
        request_id: str = "",
    ) -> str:
        """The model's answer for one image and prompt. Raises ``RecognitionError`` once
        the retries are spent or when retrying cannot help, ``RecognitionUnavailableError``
        when the VLM cannot be reached or is known to be down (no retries spent then)."""
        body = chat_request(self.settings.model, image_data_uri, prompt, max_tokens, temperature, top_p, repetition_penalty)
        if response_format is not None:  # vLLM's structured output (guided decoding)
            body["response_format"] = response_format
        if self.settings.scheduling_policy == "priority":  # vLLM refuses it otherwise
            body["priority"] = int(current_ticket().priority)
        content = json_bytes(body)
        headers = {"X-Request-Id": request_id, "Content-Type": "application/json"}
        attempts = self.settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            endpoint, outcome = await self._on_each_server(content, headers, request_id)
            if isinstance(outcome, VlmAnswer) and outcome.status == 200:
                return answer_content(outcome)
            problem = self._describe(outcome, attempt, endpoint)
            if attempt == attempts or not is_retryable(outcome):
                log.warning("logId=%s VLM call failed: %s", request_id or "-", problem)
                raise self._failure(outcome, problem)
            delay = self._delay(attempt, outcome)
            log.warning(
                "logId=%s VLM call failed (attempt %d of %d), retrying in %.2f s: %s",
                request_id or "-", attempt, attempts, delay, problem,
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def ensure_available(self) -> None:
        """Raise ``RecognitionUnavailableError`` while every VLM server is known to be down."""
        await self.pool.ensure_available(f"the VLM at {self.settings.url}")

    async def _on_each_server(
        self, content: bytes, headers: dict[str, str], request_id: str,
    ) -> tuple[Endpoint | None, VlmAnswer | Exception]:
        """One attempt: the call on the least busy server, and after a failure a retry can
        fix, at once on each other server in rotation, until one answers 200 or all were
        tried. The last server's outcome: a call counts as failed only when none took it."""
        tried: list[Endpoint] = []
        outcome: VlmAnswer | Exception | None = None
        while True:
            await self.ensure_available()
            endpoint, answer = await self._attempt(content, headers, request_id, tried)
            if endpoint is None:
                if outcome is not None:  # every other server is down or was tried
                    return tried[-1], outcome
                continue  # all went down between the check and the call: check again
            tried.append(endpoint)
            outcome = answer
            if (isinstance(outcome, VlmAnswer) and outcome.status == 200) or not is_retryable(outcome):
                return endpoint, outcome
            log.info("logId=%s VLM call failed on %s, trying another server: %s",
                     request_id or "-", endpoint.url, self._describe(outcome, 1, endpoint))

    async def _attempt(
        self, content: bytes, headers: dict[str, str], request_id: str, tried: list[Endpoint],
    ) -> tuple[Endpoint | None, VlmAnswer | Exception | None]:
        """One call, holding a slot of the client and one of the server chosen outside
        ``tried``: its answer, or the transport failure (no server: ``None, None``)."""
        async with self.slots.hold(current_ticket()):
            endpoint = await self.pool.acquire(exclude=tried)
            if endpoint is None:
                return None, None
            outcome: VlmAnswer | Exception | None = None  # None: cancelled, held against nobody
            try:
                tracing.mark("vlm.request_sent", request_id)
                outcome = await self._post(endpoint, content, headers)
                tracing.mark("vlm.answer_received", request_id)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                outcome = exc
            finally:  # cancelled too: the server's slot is given back
                self.pool.release(endpoint, outcome=self._verdict(outcome))
            return endpoint, outcome

    @staticmethod
    def _verdict(outcome: VlmAnswer | Exception | None) -> str | None:
        """What a call's outcome says of its server: ``ok``, ``down`` (``says_down``),
        ``failed`` (an error it answered), ``None`` (cancelled: nothing)."""
        if outcome is None:
            return None
        if isinstance(outcome, VlmAnswer) and outcome.status == 200:
            return "ok"
        return "down" if says_down(outcome) else "failed"

    async def _healthy(self, endpoint: Endpoint) -> bool:
        """A server's health check answers (anything but a 5xx: a server without
        /health is not held against it)."""
        try:
            timeout = aiohttp.ClientTimeout(total=self.settings.connect_timeout)
            async with self.session.get(endpoint.health_url, timeout=timeout, headers=endpoint.headers) as response:
                return response.status < 500
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    def _failure(self, outcome: VlmAnswer | Exception, problem: str) -> RecognitionError:
        """The error a spent call raises: unavailable (503, with when to retry) when the
        server could not be reached or stayed busy, failed (502) when it answered an error."""
        if says_down(outcome) or (isinstance(outcome, VlmAnswer) and outcome.status == 429):
            return RecognitionUnavailableError(problem, retry_after=self.pool.retry_after())
        return RecognitionError(problem)

    async def _post(self, endpoint: Endpoint, content: bytes, headers: dict[str, str]) -> VlmAnswer:
        """One POST to ``endpoint``, its answer read whole (call it holding its slot)."""
        headers = {**headers, **endpoint.headers}
        async with self.session.post(endpoint.chat_url, data=content, headers=headers) as response:
            return VlmAnswer(response.status, await response.read(), response.headers.get("Retry-After"))

    def _delay(self, attempt: int, outcome: VlmAnswer | Exception) -> float:
        """Retry-After when the server gave one, else exponential backoff with full
        jitter (spreads the retries of many regions that failed together); both capped."""
        if isinstance(outcome, VlmAnswer) and (wait := retry_after(outcome)) is not None:
            return min(wait, self.settings.retry_backoff_max)
        return random.uniform(0, min(self.settings.retry_backoff_max, self.settings.retry_backoff * 2 ** (attempt - 1)))

    def _describe(self, outcome: VlmAnswer | Exception, attempts: int, endpoint: Endpoint | None = None) -> str:
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(outcome, VlmAnswer):
            return f"VLM answered {outcome.status} after {tries}: {server_message(outcome)}"
        url = (endpoint.url if endpoint else self.settings.urls[0]) + "/chat/completions"
        if isinstance(outcome, aiohttp.ConnectionTimeoutError):
            return f"VLM at {url} did not accept a connection within {self.settings.connect_timeout:g} s ({tries})"
        if isinstance(outcome, asyncio.TimeoutError):
            return f"VLM timed out after {self.settings.timeout:g} s ({tries})"
        if isinstance(outcome, aiohttp.ClientConnectorError):
            return f"VLM at {url} could not be reached after {tries}: {outcome}"
        return f"VLM call failed after {tries}: {type(outcome).__name__}: {outcome}"

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def answer_content(answer: VlmAnswer) -> str:
    """``choices[0].message.content`` of a chat-completions answer."""
    try:
        content = json.loads(answer.body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise RecognitionError(f"VLM answer has no choices[0].message.content: {answer.text[:ERROR_EXCERPT]}")
    return content


_FENCE = re.compile(r"^```[\w+-]*[ \t]*\n?(.*?)\n?```$", re.DOTALL)
_DISPLAY_MATH = re.compile(r"^\$\$(.*)\$\$$", re.DOTALL)


def clean_answer(text: str, task: Task) -> str:
    """The answer without what GLM-OCR sometimes wraps around tables and formulas: a
    Markdown code fence, and for formulas ``$$`` (assembly adds its own)."""
    text = text.strip()
    if task in (Task.TABLE, Task.FORMULA) and (fenced := _FENCE.match(text)):
        text = fenced.group(1).strip()
    if task is Task.FORMULA and (math := _DISPLAY_MATH.match(text)):
        text = math.group(1).strip()
    return text


class VlmRecognizer:
    """Reads each TEXT, TABLE and FORMULA region of a page with the VLM, all at once."""

    def __init__(self, client: VlmClient, tasks: TaskTable, settings: Settings, profile: VlmProfile | None = None) -> None:
        self.client = client
        self.tasks = tasks
        self.settings = settings
        self.name = f"vlm:{client.model}"
        self.supports_extraction = True
        self.reads_encoded_pages = True  # a whole page may come as its encoded picture (page_images)
        self.profile = profile
        # Page mode (profiles.py): the whole page in one call, its answer split into blocks.
        self.page_mode = profile is not None and profile.mode == "page"

    @classmethod
    def from_settings(cls, settings: Settings) -> "VlmRecognizer":
        return cls(VlmClient(settings.vlm), TaskTable.from_settings(settings.recognition), settings)

    @classmethod
    def from_profile(cls, profile: VlmProfile, settings: Settings) -> "VlmRecognizer":
        """A recognizer with its own client (and bound) for one profile: the settings with
        the profile's server, limits and prompts laid over them."""
        vlm = settings.vlm.model_copy(update={
            "url": profile.url, "model": profile.model, "max_concurrency": profile.max_concurrency,
            "api_key": profile.api_key,
            "max_tokens": profile.max_tokens or settings.vlm.max_tokens,
            "temperature": settings.vlm.temperature if profile.temperature is None else profile.temperature,
        })
        crops = settings.crops.model_copy(update={
            "min_pixels": profile.min_pixels or settings.crops.min_pixels,
            "max_pixels": profile.max_pixels or settings.crops.max_pixels,
        })
        own = settings.model_copy(update={"vlm": vlm, "crops": crops})
        base = TaskTable.from_settings(settings.recognition)
        region_prompts = {Task(task): text for task, text in profile.prompts.items() if task != "page"}
        tasks = TaskTable(label_tasks=base.label_tasks, prompts={**base.prompts, **region_prompts})
        return cls(VlmClient(vlm), tasks, own, profile)

    async def recognize(
        self, page: PageSource, jobs: Sequence[RegionJob], params: RecognitionParams
    ) -> list[RegionResult]:
        return list(await asyncio.gather(*(self._region(page, job, params) for job in jobs)))

    async def _region(self, page: PageSource, job: RegionJob, params: RecognitionParams) -> RegionResult:
        """One region's result; a failure is kept in the result, never raised."""
        if job.task not in READ_TASKS:
            return RegionResult("")
        started = time.perf_counter()
        timings = {"crop_cpu": 0.0}  # _read fills it in, so a failed call keeps it too
        try:
            content = await self._read(page, job, params, timings)
        except Exception as exc:  # noqa: BLE001 - one region's failure stays with that region
            failure = as_error(exc)
            if failure is not exc:  # ours are logged where they are raised; this is a bug
                log.exception("logId=%s region %s failed", params.log_id or "-", job.box.label)
            timings["seconds"] = time.perf_counter() - started
            return RegionResult(failure=failure, timings=timings)
        timings["seconds"] = time.perf_counter() - started
        return RegionResult(content, timings=timings)

    async def _read(
        self, page: PageSource, job: RegionJob, params: RecognitionParams, timings: dict[str, float]
    ) -> str:
        settings = self.settings
        schema = params.json_schema
        if schema is None and self.page_mode:
            prompt, answer_format = self.profile.prompts["page"], None  # type: ignore[union-attr]
        elif schema is None:
            prompt, answer_format = self.tasks.prompt_for(job.task), None
        else:  # information extraction: the answer is the model's JSON, as it gave it
            prompt = extraction.prompt_for(schema, settings.recognition.extract_prompt)
            answer_format = extraction.response_format(schema)
        smallest, largest = self.pixel_limits(params)
        encoded = whole_page_image(page, job.box)
        if encoded is not None and encoded.fits(smallest, largest):  # base64 only: not worth a thread hop
            image, timings["crop_cpu"] = self._encode(page, job, encoded, smallest, largest)
        else:
            image, timings["crop_cpu"] = await asyncio.to_thread(self._encode, page, job, encoded, smallest, largest)
        tracing.mark("vlm.image_ready", params.log_id)
        answer = await self.client.complete(
            image,
            prompt,
            max_tokens=settings.vlm.max_tokens if params.max_new_tokens is None else params.max_new_tokens,
            temperature=settings.vlm.temperature if params.temperature is None else params.temperature,
            top_p=params.top_p,
            repetition_penalty=params.repetition_penalty,
            response_format=answer_format,
            request_id=params.log_id,
        )
        if schema is not None:
            return answer.strip()
        if self.page_mode:  # split into blocks by the pipeline (page_markdown.py)
            return answer_text(answer, self.profile.output).strip()  # type: ignore[union-attr]
        return clean_answer(answer, job.task)

    def pixel_limits(self, params: RecognitionParams) -> tuple[int, int]:
        """The crop size limits: the request's, else the settings'; a request whose one
        limit contradicts the other's default is refused, naming both."""
        crops = self.settings.crops
        smallest = crops.min_pixels if params.min_pixels is None else params.min_pixels
        largest = crops.max_pixels if params.max_pixels is None else params.max_pixels
        if smallest > largest:
            raise InvalidRequestError(
                f"the smallest crop ({smallest} pixels, minPixels or HPS_CROP_MIN_PIXELS) is larger "
                f"than the largest ({largest} pixels, maxPixels or HPS_CROP_MAX_PIXELS)"
            )
        return smallest, largest

    def _encode(
        self, page: PageSource, job: RegionJob, encoded: EncodedImage | None, min_pixels: int, max_pixels: int
    ) -> tuple[str, float]:
        """Crop, resize and JPEG-encode: the CPU part, run off the event loop. Returns the
        data URI and the CPU seconds of this thread spent on it: ``thread_time``, because
        the process works on many regions and documents at once and its CPU clock
        (``process_time``) would charge all of them to this crop.

        A whole page that came as its ``encoded`` picture (``whole_page_image``) goes as
        it is when it fits the pixel limits, else resized from its bytes
        (``docparse.page_images``): its pixels are never decoded into the page."""
        cpu_started = time.thread_time()
        if encoded is not None:
            if not encoded.fits(min_pixels, max_pixels):
                encoded = sized_for_vlm(encoded, min_pixels, max_pixels, VLM_JPEG_QUALITY)
            return encoded.data_uri(), time.thread_time() - cpu_started
        crop = crop_region(pixels_of(page), job.box, self.settings.crops.padding)
        uri = encode_jpeg_data_uri(resize_for_vlm(crop, min_pixels, max_pixels))
        return uri, time.thread_time() - cpu_started

    async def ensure_available(self) -> None:
        await self.client.ensure_available()

    async def aclose(self) -> None:
        await self.client.aclose()
