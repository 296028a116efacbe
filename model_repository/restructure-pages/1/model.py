"""restructure-pages: a thin adapter over docparse.restructure_pages for PaddleX HPS
clients (and the gateway's /restructure-pages)."""

from __future__ import annotations

import triton_python_backend_utils as pb_utils

from docparse.errors import as_error
from docparse.logs import configure_logging
from docparse.protocol import log_id_for, new_log_id, parse_request
from docparse.responses import ErrorEnvelope
from docparse.restructure_pages import MAX_ENTRIES, RestructurePagesRequest, restructure
from docparse.settings import Settings
from docparse_triton.common import input_json, json_tensor
from docparse_triton.stub_watchdog import start_watchdog


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        start_watchdog(args["model_instance_name"])  # no stub outlives its server
        configure_logging(Settings.load().general.log_level)

    def execute(self, requests: list) -> list:
        return [pb_utils.InferenceResponse([json_tensor("output", self._answer(r), shape=(1, 1))]) for r in requests]

    @staticmethod
    def _answer(request) -> object:
        log_id = new_log_id()
        try:
            body = input_json(request, "input", max_entries=MAX_ENTRIES)
            log_id = log_id_for(body) if isinstance(body, dict) else log_id
            return restructure(parse_request(body, RestructurePagesRequest), log_id)
        except Exception as exc:  # noqa: BLE001 - PaddleX HPS reports errors in the envelope
            error = as_error(exc)
            return ErrorEnvelope(logId=log_id, errorCode=error.status, errorMsg=error.message)
