"""layout-parsing: the unary twin of layout-parsing-stream, for PaddleX HPS clients.

It forwards the request to the streaming orchestrator through BLS and gathers the pages
into one PaddleX envelope, so the VLM concurrency bound stays in one process.
"""

from __future__ import annotations

import triton_python_backend_utils as pb_utils

from docparse.errors import InvalidRequestError
from docparse.protocol import (
    collect_events,
    error_envelope,
    error_status,
    new_log_id,
    success_envelope,
)
from docparse.settings import Settings
from docparse_triton.common import (
    FINAL,
    BackgroundLoop,
    configure_logging,
    input_json,
    json_output,
    json_tensor,
    stream_responses,
)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        configure_logging(Settings().log_level)
        self.background = BackgroundLoop()

    def execute(self, requests: list) -> None:
        for request in requests:
            self.background.submit(self._serve(request))
        return None  # answers go through each request's response sender

    async def _serve(self, request) -> None:
        log_id = new_log_id()
        try:
            body = input_json(request, "input")
            if not isinstance(body, dict):
                raise InvalidRequestError("the request must be a JSON object")
            if isinstance(body.get("logId"), str) and body["logId"]:
                log_id = body["logId"]
            body["logId"] = log_id
            bls = pb_utils.InferenceRequest(
                model_name="layout-parsing-stream",
                inputs=[json_tensor("input", body)],
                requested_output_names=["output"],
            )
            events = [json_output(r, "output") async for r in stream_responses(bls)]
            envelope = success_envelope(log_id, collect_events(log_id, events))
        except Exception as exc:  # noqa: BLE001 - PaddleX HPS reports errors in the envelope
            message = getattr(exc, "message", None) or f"internal error: {exc}"
            envelope = error_envelope(log_id, error_status(exc), message)
        response = pb_utils.InferenceResponse([json_tensor("output", envelope, shape=(1, 1))])
        request.get_response_sender().send(response, flags=FINAL)

    def finalize(self) -> None:
        self.background.close(timeout=30)
