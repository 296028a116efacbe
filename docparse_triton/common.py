"""Helpers every model.py uses: tensors, errors, logging, BLS streams, a background loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, AsyncIterator, Awaitable, Callable, Coroutine, TypeVar

import numpy as np
import triton_python_backend_utils as pb_utils

from docparse.errors import (
    DocParseError,
    InvalidRequestError,
    as_error,
    describe,
    error_for_code,
    tag_status,
)
from docparse.protocol import MAX_JSON_ENTRIES, json_bytes, load_json, new_log_id
from docparse.responses import ErrorEnvelope
from docparse.scheduling import Priority, priority_of

T = TypeVar("T")
log = logging.getLogger("docparse.triton")
CLEANUP_SECONDS = 5.0  # for closing pools and stopping the loop when a model unloads

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
# Triton error codes by name; looked up when used, because the stub adds TritonError to
# pb_utils only after the models are imported.
_CODE_NAMES = ("INVALID_ARG", "UNSUPPORTED", "UNAVAILABLE", "CANCELLED", "INTERNAL", "NOT_FOUND", "UNKNOWN")


def triton_error(exc: BaseException) -> "pb_utils.TritonError":
    """The error table's Triton code for ``exc``, with its HTTP status leading the
    message (``[422] …``): streamed errors keep only the message."""
    error = as_error(exc)
    code = getattr(pb_utils.TritonError, error.kind.triton_code)
    return pb_utils.TritonError(tag_status(error), code)


def error_response(exc: BaseException) -> "pb_utils.InferenceResponse":
    return pb_utils.InferenceResponse(error=triton_error(exc))


def docparse_error(error: "pb_utils.TritonError") -> DocParseError:
    """The core error matching a Triton error received from a BLS call."""
    code = error.code()
    name = next((n for n in _CODE_NAMES if getattr(pb_utils.TritonError, n, None) == code), "UNKNOWN")
    return error_for_code(name, error.message())


#: The request parameter with which a BLS caller asks for a stream's error in-band: the
#: error envelope as an output of the last response, instead of a Triton error. Over a
#: decoupled BLS stream the Python backend loses an error that follows responses (and
#: with FINAL on it the caller waits for the end forever), and now and then one that
#: comes first (the stream just ends). gRPC clients get Triton errors.
IN_BAND_ERRORS = "docparse_in_band_errors"


def wants_in_band_errors(request: Any) -> bool:
    try:
        return bool(load_json(request.parameters() or "{}").get(IN_BAND_ERRORS))
    except (ValueError, AttributeError, DocParseError):
        return False


def request_priority(request: Any) -> Priority:
    """The document's class from its request parameters (docparse.scheduling); raises
    InvalidRequestError naming a wrong one."""
    try:
        parameters = load_json(request.parameters() or "{}")
    except (ValueError, AttributeError, DocParseError):
        parameters = {}
    return priority_of(parameters if isinstance(parameters, dict) else {})


def error_envelope_response(exc: BaseException, name: str, log_id: str = "") -> "pb_utils.InferenceResponse":
    """``exc`` in-band (IN_BAND_ERRORS): the error envelope as output ``name``."""
    error = as_error(exc)
    envelope = ErrorEnvelope(logId=log_id or new_log_id(), errorCode=error.status, errorMsg=error.message)
    return pb_utils.InferenceResponse([json_tensor(name, envelope)])


def input_json(request: Any, name: str, required: bool = True, max_entries: int = MAX_JSON_ENTRIES) -> Any:
    """Decode a BYTES input holding one JSON document (any batch shape), within the
    request's JSON limits (``docparse.protocol.load_json``)."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        if required:
            raise InvalidRequestError(f"input '{name}' is missing")
        return None
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise InvalidRequestError(f"input '{name}' must hold exactly one JSON document")
    return load_json(values[0], InvalidRequestError, f"input '{name}'", max_entries)


def json_tensor(name: str, value: Any, shape: tuple[int, ...] = (1,)) -> "pb_utils.Tensor":
    """A BYTES tensor holding ``value`` as JSON (a response model serialises itself)."""
    return pb_utils.Tensor(name, np.array([json_bytes(value)], dtype=np.object_).reshape(shape))


def output_bytes(response: "pb_utils.InferenceResponse", name: str) -> bytes | None:
    """The JSON document in a BYTES output, undecoded (a model's parser reads it)."""
    tensor = pb_utils.get_output_tensor_by_name(response, name)
    if tensor is None:
        return None
    raw = tensor.as_numpy().reshape(-1)[0]
    return raw if isinstance(raw, bytes) else str(raw).encode()


_END = object()


def use_large_default_executor(loop: asyncio.AbstractEventLoop) -> None:
    """BLS ``async_exec`` waits for its answer in the loop's default executor, and a
    decoupled call's blocking response iterator is advanced there too; each document
    waiting for a page holds a thread. The default (cpu_count + 4 threads: 6 on two
    cores) would silently cap documents in flight at 6, so every loop making BLS calls
    gets a pool as large as the documents it may hold. Called by the BLS helpers below."""
    if getattr(loop, "_docparse_pool", None) is None:
        loop._docparse_pool = concurrent.futures.ThreadPoolExecutor(  # type: ignore[attr-defined]
            max_workers=256, thread_name_prefix="bls-exec"
        )
        loop.set_default_executor(loop._docparse_pool)  # type: ignore[attr-defined]


async def stream_responses(
    request: "pb_utils.InferenceRequest",
) -> AsyncIterator["pb_utils.InferenceResponse"]:
    """Responses of a decoupled BLS call, raising the first error as a DocParseError."""
    loop = asyncio.get_running_loop()
    use_large_default_executor(loop)
    responses = await request.async_exec(decoupled=True)
    while True:
        response = await loop.run_in_executor(None, next, responses, _END)
        if response is _END:
            return
        if response.has_error():
            raise docparse_error(response.error())
        if response.output_tensors():
            yield response


async def infer(request: "pb_utils.InferenceRequest") -> "pb_utils.InferenceResponse":
    """A BLS call to a non-decoupled model, raising its error as a DocParseError."""
    use_large_default_executor(asyncio.get_running_loop())
    response = await request.async_exec()
    if response.has_error():
        raise docparse_error(response.error())
    return response


async def cancel_when_abandoned(request: Any, work: Coroutine[Any, Any, T], poll_seconds: float = 0.2) -> T:
    """Run ``work``, cancelling it as soon as Triton marks the request cancelled (the
    client went away or its deadline passed), so no VLM call is made for nobody.
    The Python backend has no cancellation callback, hence the polling."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_seconds)
            if done:
                return task.result()
            if request.is_cancelled():
                task.cancel()
                raise asyncio.CancelledError("the request was cancelled by its client")
    finally:
        if not task.done():
            task.cancel()


class BackgroundLoop:
    """An event loop in a thread that the model owns, for a model that answers through
    the response sender: ``execute`` hands requests over and returns at once, so one
    model instance serves many requests concurrently; and, unlike the stub's own loop,
    it still runs while ``finalize`` closes what was opened on it (connection pools)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="model-loop")
        self._thread.start()
        self._in_flight = 0
        self._idle = threading.Condition()

    def submit(self, coroutine: Coroutine[Any, Any, None]) -> None:
        with self._idle:
            self._in_flight += 1
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        future.add_done_callback(self._done)

    def _done(self, _future: concurrent.futures.Future) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def close(self, timeout: float, cleanup: Callable[[], Awaitable[None]] | None = None) -> None:
        """Wait up to ``timeout`` seconds for work in flight, run ``cleanup`` on the loop
        (bounded too), then stop the loop."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)
        if cleanup is not None:
            done = asyncio.run_coroutine_threadsafe(_call(cleanup), self.loop)
            try:
                done.result(timeout=CLEANUP_SECONDS)
            except Exception as exc:  # noqa: BLE001 - unloading goes on; the log says why
                log.warning("cleanup on unload failed: %s", describe(exc))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=CLEANUP_SECONDS)


async def _call(cleanup: Callable[[], Awaitable[None]]) -> None:
    await cleanup()
