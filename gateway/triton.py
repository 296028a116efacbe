"""The gateway's Triton connection: one grpc.aio client per worker process.

Every parsing request is one gRPC stream to ``layout-parsing-stream``; the unary route
collects the same events. Leaving the ``events`` iterator early (deadline, client gone)
cancels the stream, and Triton then cancels the work (the orchestrator watches for it).
"""

from __future__ import annotations

from typing import AsyncIterator

import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from docparse import tracing
from docparse.client import error_from_triton, input_tensor, output_json
from docparse.errors import DocParseError, error_for_status
from docparse.protocol import FINAL_EVENT

STREAM_MODEL = "layout-parsing-stream"
# Everything readiness checks: the models a request goes through.
MODELS = ("layout-parsing-stream", "layout-parsing", "pdf_render", "layout_detection")


def channel_args(max_body_bytes: int) -> list[tuple[str, int]]:
    """Message limits that fit the largest accepted document (base64 in JSON grows it
    by 4/3) and any result; keep-alive so idle connections survive proxies."""
    send_limit = max_body_bytes * 4 // 3 + 16 * 1024 * 1024
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


class TritonConnection:
    def __init__(self, url: str, max_body_bytes: int) -> None:
        self.url = url
        self.client = grpcaio.InferenceServerClient(url, channel_args=channel_args(max_body_bytes))

    async def events(self, request: dict, log_id: str) -> AsyncIterator[dict]:
        """The document's events (pages, then the final one); raises DocParseError."""
        tensor = input_tensor(request, [1])
        tracing.mark("gateway.to_triton", log_id)

        async def one_request():
            yield {"model_name": STREAM_MODEL, "inputs": [tensor], "request_id": log_id}

        responses = self.client.stream_infer(one_request())
        ended = False  # the server closed the stream itself
        try:
            final = None
            async for result, error in responses:
                if error is not None:
                    raise error_from_triton(error)
                event = output_json(result)
                if event is None:
                    continue
                tracing.mark(f"gateway.from_triton.{event.get('type')}", log_id)
                if event.get("type") == FINAL_EVENT:
                    final = event  # given out once the server has closed the stream
                    continue
                yield event
            ended = True
            if final is None:
                raise DocParseError("Triton closed the stream before the final response")
        except DocParseError:
            raise
        except Exception as exc:  # gRPC and connection failures (CancelledError passes)
            raise self._unavailable_or(exc) from None
        finally:
            # A finished stream is read to its end, never cancelled: cancelling a stream
            # the server was closing left tritonserver 2.51 holding the request, so
            # layout-parsing-stream could not unload and a stop waited the whole exit
            # timeout. Leaving early (deadline, client gone) still cancels the work.
            if not ended:
                responses.cancel()
        yield final

    async def check_ready(self, timeout: float) -> None:
        """Raise with the failing part named unless Triton and every model are ready."""
        try:
            if not await self.client.is_server_ready(client_timeout=timeout):
                raise RuntimeError(f"Triton at {self.url} is not ready")
            for model in MODELS:
                if not await self.client.is_model_ready(model, client_timeout=timeout):
                    raise RuntimeError(f"Triton model '{model}' is not ready")
        except InferenceServerException as exc:
            raise RuntimeError(f"Triton at {self.url} did not answer: {exc.message()}") from None

    def _unavailable_or(self, exc: BaseException) -> DocParseError:
        """Connection problems become 503 naming Triton; other errors keep their status."""
        if isinstance(exc, InferenceServerException) and "UNAVAILABLE" not in str(exc.status()):
            return error_from_triton(exc)
        details = exc.details() if hasattr(exc, "details") else None  # grpc.aio.AioRpcError
        if isinstance(exc, InferenceServerException):
            details = exc.message()
        return error_for_status(
            503, f"the inference server (Triton at {self.url}) is unavailable: {details or exc}"
        )

    async def close(self) -> None:
        await self.client.close()
