"""layout-parsing: the unary twin of layout-parsing-stream, for PaddleX HPS clients.

It forwards the request to the streaming orchestrator through BLS and gathers the pages
into one PaddleX envelope, so the VLM concurrency bound stays in one process.
"""

from __future__ import annotations

import asyncio

import triton_python_backend_utils as pb_utils

from docparse.errors import InvalidRequestError, as_error
from docparse.logs import configure_logging
from docparse.merge import restructured
from docparse.protocol import load_json, log_id_for, new_log_id
from docparse.responses import (
    ErrorEnvelope,
    LayoutParsingResponse,
    StreamEvent,
    collect_events,
    parse_event,
    raise_if_error,
)
from docparse.scheduling import PRIORITY_PARAMETER
from docparse.settings import Settings
from docparse_triton.common import (
    FINAL,
    IN_BAND_ERRORS,
    BackgroundLoop,
    input_json,
    json_tensor,
    output_bytes,
    request_priority,
    stream_responses,
)
from docparse_triton.stub_watchdog import start_watchdog


def event_or_error(raw: bytes | None) -> StreamEvent:
    """A streamed event, or the orchestrator's error sent in-band (IN_BAND_ERRORS) raised."""
    data = load_json(raw or b"null")
    raise_if_error(data)
    return parse_event(data)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        start_watchdog(args["model_instance_name"])  # no stub outlives its server
        configure_logging(Settings.load().general.log_level)
        self.background = BackgroundLoop()

    def execute(self, requests: list) -> None:
        for request in requests:
            self.background.submit(self._serve(request))
        return None  # answers go through each request's response sender

    async def _serve(self, request) -> None:
        log_id = new_log_id()
        envelope: LayoutParsingResponse | ErrorEnvelope
        try:
            body = input_json(request, "input")
            if not isinstance(body, dict):
                raise InvalidRequestError("the request must be a JSON object")
            log_id = log_id_for(body)
            bls = pb_utils.InferenceRequest(
                model_name="layout-parsing-stream",
                inputs=[json_tensor("input", {**body, "logId": log_id})],
                requested_output_names=["output"],
                # its class passed on (docparse.scheduling): unset, interactive
                parameters={IN_BAND_ERRORS: True, PRIORITY_PARAMETER: request_priority(request).name.lower()},
            )
            events = [event_or_error(output_bytes(r, "output")) async for r in stream_responses(bls)]
            envelope = await asyncio.to_thread(restructured, collect_events(log_id, events), body)
        except Exception as exc:  # noqa: BLE001 - PaddleX HPS reports errors in the envelope
            error = as_error(exc)
            envelope = ErrorEnvelope(logId=log_id, errorCode=error.status, errorMsg=error.message)
        response = pb_utils.InferenceResponse([json_tensor("output", envelope, shape=(1, 1))])
        request.get_response_sender().send(response, flags=FINAL)

    def finalize(self) -> None:
        self.background.close(timeout=30)
