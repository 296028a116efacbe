"""Python client for the Triton models (gRPC): streaming page by page, or unary.

    from docparse.client import TritonLayoutClient, request_for
    client = TritonLayoutClient("127.0.0.1:8001")
    for event in client.stream(request_for("doc.pdf", pages="1-3")):
        print(event["type"], event.get("pageIndex"))

``tritonclient`` is imported lazily so that the core package stays importable without it.
"""

from __future__ import annotations

import base64
import json
import queue
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from docparse.errors import DeadlineExceededError, DocParseError, error_for_status, split_status
from docparse.protocol import FINAL_EVENT, json_bytes

# gRPC status names of Triton errors -> HTTP-like status, for errors without a status tag.
_STATUS_BY_GRPC_CODE = {
    "StatusCode.INVALID_ARGUMENT": 422,
    "StatusCode.UNIMPLEMENTED": 413,
    "StatusCode.UNAVAILABLE": 503,
    "StatusCode.CANCELLED": 499,
    "StatusCode.DEADLINE_EXCEEDED": 504,
}


def error_from_triton(exc: Any) -> DocParseError:
    """Our error for a tritonclient exception: the status tag our models put at the start
    of messages (streams carry no code), else the gRPC code, else 500."""
    status, message = split_status(exc.message() or str(exc))
    if status is None:
        status = _STATUS_BY_GRPC_CODE.get(str(exc.status()), 500)
    return error_for_status(status, message)


def request_for(document: str | Path | bytes, **options: Any) -> dict:
    """A layout-parsing request body for a file path or the file's bytes."""
    data = document if isinstance(document, bytes) else Path(document).read_bytes()
    return {"file": base64.b64encode(data).decode("ascii"), **options}


def input_tensor(request: dict, shape: list[int]) -> Any:
    """The ``input`` tensor of our models: one JSON document (gRPC, sync or aio)."""
    import tritonclient.grpc as grpcclient

    tensor = grpcclient.InferInput("input", shape, "BYTES")
    data = json_bytes(request)
    tensor.set_data_from_numpy(np.array([data], dtype=np.object_).reshape(shape))
    return tensor


def output_json(result: Any) -> Any:
    """The JSON document in a result's ``output`` tensor; ``None`` when it has none
    (the empty final response of a stream)."""
    output = result.as_numpy("output")
    return None if output is None else json.loads(output.reshape(-1)[0])


class TritonLayoutClient:
    def __init__(self, url: str = "127.0.0.1:8001", timeout: float = 600.0) -> None:
        self.url = url
        self.timeout = timeout

    def stream(self, request: dict, model: str = "layout-parsing-stream") -> Iterator[dict]:
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
                    raise DeadlineExceededError(
                        f"no response from Triton within {self.timeout:.0f} s"
                    ) from None
                if error is not None:
                    raise error_from_triton(error)
                event = output_json(result)
                if event is not None:
                    yield event
                final = result.get_response().parameters.get("triton_final_response")
                if final is not None and final.bool_param:
                    finished = True
                    return
        except InferenceServerException as exc:
            raise error_from_triton(exc) from None
        finally:
            # A finished stream is closed, not cancelled (tritonserver 2.51 kept cancelled
            # finished streams' requests and could not unload the model); a stream left
            # early is cancelled so that the server stops working on it.
            client.stop_stream(cancel_requests=not finished)
            client.close()

    def parse(self, request: dict) -> dict:
        """The whole result in one call, through the unary ``layout-parsing`` model
        (PaddleX HPS protocol): the envelope with logId, errorCode, errorMsg, result."""
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        client = grpcclient.InferenceServerClient(self.url)
        try:
            result = client.infer(
                "layout-parsing", [input_tensor(request, [1, 1])], client_timeout=self.timeout
            )
        except InferenceServerException as exc:
            raise error_from_triton(exc) from None
        finally:
            client.close()
        return output_json(result)


def is_final(event: dict) -> bool:
    return event.get("type") == FINAL_EVENT
