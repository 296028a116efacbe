"""Python clients of the Triton models (gRPC): streaming page by page, or unary.

    from docparse.client import TritonLayoutClient, request_for
    client = TritonLayoutClient("127.0.0.1:8001")
    for event in client.stream(request_for("doc.pdf", pages="1-3")):
        print(event.type, getattr(event, "pageIndex", None))
    print(client.parse(request_for("doc.pdf")).result.dataInfo.numPages)

``AsyncTritonClient`` is the same stream on asyncio (grpc.aio): the gateway's client.
Events are the typed models of ``docparse.responses``; errors are ``docparse.errors``,
translated by its one table. ``tritonclient`` is imported lazily so that the core
package stays importable without it.
"""

from __future__ import annotations

import base64
import binascii
import json
import queue
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import numpy as np
import pybase64

from docparse import tracing
from docparse.errors import (
    BackendUnavailableError,
    DeadlineExceededError,
    DocParseError,
    InternalError,
    error_for_code,
)
from docparse.protocol import json_bytes
from docparse.responses import FinalEvent, LayoutParsingResponse, PageEvent, StreamEvent, parse_event, raise_if_error
from docparse.scheduling import PRIORITY_PARAMETER, Priority

STREAM_MODEL = "layout-parsing-stream"
UNARY_MODEL = "layout-parsing"
# Everything readiness checks: the models a request goes through.
RESTRUCTURE_MODEL = "restructure-pages"
MODELS = (STREAM_MODEL, UNARY_MODEL, "pdf_render", "layout_detection", RESTRUCTURE_MODEL)


def error_from_triton(exc: Any) -> DocParseError:
    """Our error for a tritonclient exception: the status tag our models put at the start
    of messages (streams carry no code), else its gRPC code, through the error table."""
    return error_for_code(str(exc.status()), exc.message() or str(exc))


def request_for(document: str | Path | bytes, **options: Any) -> dict:
    """A layout-parsing request body for a file path or the file's bytes."""
    data = document if isinstance(document, bytes) else Path(document).read_bytes()
    return {"file": base64.b64encode(data).decode("ascii"), **options}


def input_tensor(request: dict, shape: list[int]) -> Any:
    """The ``input`` tensor of our models: one JSON document (gRPC, sync or aio)."""
    import tritonclient.grpc as grpcclient

    tensor = grpcclient.InferInput("input", shape, "BYTES")
    tensor.set_data_from_numpy(np.array([json_bytes(request)], dtype=np.object_).reshape(shape))
    return tensor


def document_inputs(request: dict) -> list[Any]:
    """The stream model's inputs for a request whose ``file`` is base64: the JSON without
    it, and the document's bytes in the ``file`` input. A page image is 1-3 MB: carried
    as base64 in the JSON, it costs a third more to send and a JSON parse, a validation
    and a decode in the orchestrator's one busy process (BENCHMARKS.md, "Feeding the
    VLM"). A file that is not base64 (a URL, refused there) goes in the JSON as it is."""
    import tritonclient.grpc as grpcclient

    file = request.get("file")
    try:
        data = pybase64.b64decode(file.partition(",")[2] if file.startswith("data:") else file, validate=True)
    except (AttributeError, ValueError, binascii.Error):
        return [input_tensor(request, [1])]
    if not data:
        return [input_tensor(request, [1])]
    tensor = grpcclient.InferInput("file", [len(data)], "UINT8")
    tensor.set_data_from_numpy(np.frombuffer(data, dtype=np.uint8))
    return [input_tensor({key: value for key, value in request.items() if key != "file"}, [1]), tensor]


def output_bytes(result: Any) -> bytes | None:
    """The JSON document in a result's ``output`` tensor; ``None`` when it has none
    (the empty final response of a stream)."""
    output = result.as_numpy("output")
    return None if output is None else output.reshape(-1)[0]


class TritonLayoutClient:
    """Blocking client, for scripts."""

    def __init__(self, url: str = "127.0.0.1:8001", timeout: float = 600.0) -> None:
        self.url = url
        self.timeout = timeout

    def stream(self, request: dict, model: str = STREAM_MODEL) -> Iterator[PageEvent | FinalEvent]:
        """Events of one document as Triton sends them: pages, then the final one."""
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        results: queue.Queue = queue.Queue()
        client = grpcclient.InferenceServerClient(self.url)
        finished = False
        try:
            client.start_stream(callback=lambda result, error: results.put((result, error)))
            client.async_stream_infer(
                model,
                [input_tensor(request, [1])],
                request_id=uuid.uuid4().hex,
                enable_empty_final_response=True,
            )
            while True:
                try:
                    result, error = results.get(timeout=self.timeout)
                except queue.Empty:
                    raise DeadlineExceededError(f"no response from Triton within {self.timeout:.0f} s") from None
                if error is not None:
                    finished = True  # an error is the stream's last response: nothing to cancel
                    raise error_from_triton(error)
                raw = output_bytes(result)
                if raw is not None:
                    yield parse_event(raw)
                final = result.get_response().parameters.get("triton_final_response")
                if final is not None and final.bool_param:
                    finished = True
                    return
        except InferenceServerException as exc:
            raise error_from_triton(exc) from None
        finally:
            # A finished stream is closed, not cancelled (tritonserver 2.51 keeps the
            # requests of cancelled finished streams and then cannot unload the model); a
            # stream left early is cancelled so that the server stops working on it.
            client.stop_stream(cancel_requests=not finished)
            client.close()

    def parse(self, request: dict) -> LayoutParsingResponse:
        """The whole result in one call, through the unary ``layout-parsing`` model
        (PaddleX HPS protocol). An error envelope is raised as our error."""
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        client = grpcclient.InferenceServerClient(self.url)
        try:
            result = client.infer(UNARY_MODEL, [input_tensor(request, [1, 1])], client_timeout=self.timeout)
        except InferenceServerException as exc:
            raise error_from_triton(exc) from None
        finally:
            client.close()
        return read_envelope(output_bytes(result))


def read_envelope(raw: bytes | None) -> LayoutParsingResponse:
    """The unary model's answer; its error envelope as the error of that status."""
    envelope = json.loads(raw or b"null")
    if not isinstance(envelope, dict):
        raise InternalError("the layout-parsing model answered no envelope")
    raise_if_error(envelope)
    return LayoutParsingResponse.model_validate(envelope)


def channel_args(max_send_bytes: int) -> list[tuple[str, int]]:
    """Message limits that fit the largest request (base64 in JSON grows a document by
    4/3) and any result; keep-alive so idle connections survive proxies."""
    send_limit = max_send_bytes * 4 // 3 + 16 * 1024 * 1024
    return [
        ("grpc.max_send_message_length", min(send_limit, 2**31 - 1)),
        ("grpc.max_receive_message_length", -1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # Notice a restarted Triton within seconds, not gRPC's default of up to 2 minutes.
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 3000),
    ]


class AsyncTritonClient:
    """One grpc.aio connection; every document is one stream to ``layout-parsing-stream``.

    Leaving ``events`` early (a deadline, a client gone) cancels the stream, and Triton
    then cancels the work (the orchestrator watches for it)."""

    def __init__(self, url: str, max_document_bytes: int = 100 * 1024 * 1024) -> None:
        import tritonclient.grpc.aio as grpcaio

        self.url = url
        self.client = grpcaio.InferenceServerClient(url, channel_args=channel_args(max_document_bytes))

    async def events(
        self, request: dict, log_id: str, priority: Priority = Priority.INTERACTIVE
    ) -> AsyncIterator[StreamEvent]:
        """The document's events (pages, then the final one); raises DocParseError.
        ``priority``: its class where documents, pages and VLM calls wait
        (docparse.scheduling; the jobs runner's are ``BATCH``)."""
        inputs = document_inputs(request)
        tracing.mark("gateway.to_triton", log_id)
        parameters = {PRIORITY_PARAMETER: priority.name.lower()} if priority is not Priority.INTERACTIVE else None

        async def one_request():
            yield {"model_name": STREAM_MODEL, "inputs": inputs, "request_id": log_id, "parameters": parameters}

        responses = self.client.stream_infer(one_request())
        ended = False  # the server closed the stream itself
        try:
            final = None
            async for result, error in responses:
                if error is not None:
                    ended = True  # an error is the stream's last response: nothing to cancel
                    raise error_from_triton(error)
                raw = output_bytes(result)
                if raw is None:
                    continue
                event = parse_event(raw)
                tracing.mark(f"gateway.from_triton.{event.type}", log_id)
                if isinstance(event, FinalEvent):
                    final = event  # given out once the server has closed the stream
                    continue
                yield event
            ended = True
            if final is None:
                raise InternalError("Triton closed the stream before the final response")
        except DocParseError:
            raise
        except Exception as exc:  # gRPC and connection failures (CancelledError passes)
            raise self._unavailable(exc) from None
        finally:
            # A finished stream is read to its end, never cancelled: cancelling a stream
            # the server is closing leaves tritonserver 2.51 holding the request, so
            # layout-parsing-stream cannot unload and a stop waits the whole exit
            # timeout. Leaving early (deadline, client gone) still cancels the work.
            if not ended:
                responses.cancel()
        yield final

    async def restructure(self, request: dict, log_id: str, timeout: float) -> dict:
        """The ``restructure-pages`` model's answer (its envelope, checked: an error in it
        is raised as the error of that status)."""
        from tritonclient.utils import InferenceServerException

        try:
            result = await self.client.infer(
                RESTRUCTURE_MODEL, [input_tensor(request, [1, 1])], request_id=log_id, client_timeout=timeout
            )
        except InferenceServerException as exc:
            raise self._unavailable(exc) from None
        envelope = json.loads(output_bytes(result) or b"null")
        if not isinstance(envelope, dict):
            raise InternalError("the restructure-pages model answered no envelope")
        raise_if_error(envelope)
        return envelope

    async def model_ready(self, model: str, timeout: float) -> bool:
        """Whether Triton answers that ``model`` is ready (False when it cannot say)."""
        from tritonclient.utils import InferenceServerException

        try:
            return bool(await self.client.is_model_ready(model, client_timeout=timeout))
        except InferenceServerException:
            return False

    async def check_ready(self, timeout: float) -> None:
        """Raise with the failing part named unless Triton and every model are ready."""
        from tritonclient.utils import InferenceServerException

        try:
            if not await self.client.is_server_ready(client_timeout=timeout):
                raise BackendUnavailableError(f"Triton at {self.url} is not ready")
            for model in MODELS:
                if not await self.client.is_model_ready(model, client_timeout=timeout):
                    raise BackendUnavailableError(f"Triton model '{model}' is not ready")
        except InferenceServerException as exc:
            raise BackendUnavailableError(f"Triton at {self.url} did not answer: {exc.message()}") from None

    def _unavailable(self, exc: BaseException) -> DocParseError:
        """A failure of the connection itself names Triton; others go through the table."""
        details = exc.details() if hasattr(exc, "details") else None  # grpc.aio.AioRpcError
        code = exc.code().name if hasattr(exc, "code") else "UNAVAILABLE"
        if hasattr(exc, "status") and hasattr(exc, "message"):  # InferenceServerException
            details, code = exc.message(), str(exc.status())
        error = error_for_code(code, details or str(exc))
        if isinstance(error, BackendUnavailableError):
            return BackendUnavailableError(
                f"the inference server (Triton at {self.url}) is unavailable: {details or exc}"
            )
        return error

    async def close(self) -> None:
        await self.client.close()
