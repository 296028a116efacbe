"""layout-parsing-stream: the BLS orchestrator, a thin adapter over docparse.pipeline.

PDF pages are rendered by ``pdf_render`` and layout found by ``layout_detection`` (BLS
calls); images are opened here (``docparse.image_pages``); the recogniser calls the VLM
over HTTP from this process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import AsyncIterator

import numpy as np
import triton_python_backend_utils as pb_utils

from docparse import tracing
from docparse.documents import RenderedPage
from docparse.errors import InternalError, describe
from docparse.image_pages import image_pages, is_image
from docparse.logs import configure_logging
from docparse.page_images import EncodedImage, EncodedPage, decode_rgb
from docparse.pipeline import DocumentInfo, DocumentPipeline
from docparse.protocol import (
    LayoutOptions,
    LayoutParsingRequest,
    RenderOptions,
    load_json,
    log_id_for,
    new_log_id,
    parse_request,
)
from docparse.recognition import build_recognizers
from docparse.recognition.tasks import TaskTable
from docparse.responses import DET_BOXES, FinalEvent, PageEvent, RenderedPageInfo, raise_if_error
from docparse.scheduling import FairSlots, Ticket
from docparse.settings import Settings
from docparse.types import LayoutBox
from docparse_triton.common import (
    FINAL,
    IN_BAND_ERRORS,
    BackgroundLoop,
    cancel_when_abandoned,
    error_envelope_response,
    error_response,
    infer,
    input_json,
    json_tensor,
    output_bytes,
    request_priority,
    stream_responses,
    wants_in_band_errors,
)
from docparse_triton.stub_watchdog import start_watchdog
from docparse_triton.vlm_metrics import EndpointMetrics

log = logging.getLogger("docparse.orchestrator")
# What stands for the JSON's "file" when the document came in its own tensor.
FILE_IN_TENSOR = "(the file input)"


async def render_pages(
    data: bytes, request: LayoutParsingRequest, window: int, text_layer: bool = False,
    jpeg_max_pixels: int | None = None,
) -> AsyncIterator[tuple[DocumentInfo, RenderedPage | EncodedPage]]:
    """The selected pages, asked of ``pdf_render`` ``window`` pages at a time: it sends
    pages as fast as it renders them, and unread pages wait in shared memory (asked for
    all at once, a burst of long documents holds gigabytes there and slows Triton to a
    crawl). With ``jpeg_max_pixels``, each page comes as the JPEG a VLM reads, rendered
    at that size (``docparse.page_images``)."""
    start, selected = 0, None
    picture = "image" if jpeg_max_pixels is None else "encoded"
    while selected is None or start < selected:
        options = RenderOptions(fileType=request.fileType, pages=request.pages, dpi=request.dpi,
                                start=start, limit=window, textLayer=text_layer, jpegMaxPixels=jpeg_max_pixels)
        bls = pb_utils.InferenceRequest(
            model_name="pdf_render",
            inputs=[
                pb_utils.Tensor("document", np.frombuffer(data, dtype=np.uint8)),
                json_tensor("options", options),
            ],
            requested_output_names=[picture, "page"],
            parameters={IN_BAND_ERRORS: True},
        )
        received = 0
        async for response in stream_responses(bls):
            page_json = load_json(output_bytes(response, "page") or b"null")
            raise_if_error(page_json)
            info = RenderedPageInfo.model_validate(page_json)
            pixels = pb_utils.get_output_tensor_by_name(response, picture).as_numpy()
            page = rendered_page(info, pixels) if jpeg_max_pixels is None else encoded_page(info, pixels.tobytes())
            selected = info.selected
            received += 1
            yield DocumentInfo(info.kind, info.pageCount, selected), page
        if not received:  # nothing selected, or nothing left
            if selected is None:  # no page and no error: never a 200 with nothing
                raise InternalError("pdf_render ended the document without a page or an error")
            return
        start += received


def rendered_page(info: RenderedPageInfo, image: np.ndarray) -> RenderedPage:
    return RenderedPage(index=info.index, image=image, width=info.width, height=info.height, scale=info.scale,
                        text_layer=info.textLayer)


def encoded_page(info: RenderedPageInfo, jpeg: bytes) -> EncodedPage:
    """A page that came as a JPEG; its pixels, if asked for, are the JPEG's decoded."""
    encoded = EncodedImage(jpeg, "image/jpeg", info.encodedWidth or info.width, info.encodedHeight or info.height)
    return EncodedPage(info.index, info.width, info.height, info.scale, encoded, partial(decode_rgb, encoded),
                       info.textLayer)


async def detect_layout(image: np.ndarray, options: LayoutOptions) -> list[LayoutBox]:
    bls = pb_utils.InferenceRequest(
        model_name="layout_detection",
        inputs=[
            pb_utils.Tensor("image", image[np.newaxis, ...]),
            json_tensor("options", options.layout_options(), shape=(1, 1)),
        ],
        requested_output_names=["boxes"],
    )
    response = await infer(bls)
    return [LayoutBox.from_det_box(box) for box in DET_BOXES.validate_json(output_bytes(response, "boxes"))]


class TritonPythonModel:
    """Decoupled: ``execute`` hands each request to the model's own event loop and
    returns; pages go back through the request's response sender as they are done."""

    def initialize(self, args: dict) -> None:
        start_watchdog(args["model_instance_name"])  # no stub outlives its server
        self.settings = Settings.load()
        configure_logging(self.settings.general.log_level)
        tracing.configure(self.settings.general.trace_file)
        self.recognizers = build_recognizers(self.settings)  # one per VLM profile, the default first
        self.recognizer = next(iter(self.recognizers.values()))
        self.pipeline = DocumentPipeline(
            recognizer=self.recognizer,
            recognizers=self.recognizers,
            tasks=TaskTable.from_settings(self.settings.recognition),
            detect=detect_layout,
            layout_model=self.settings.layout.model_name,
            max_pages_in_flight=self.settings.orchestrator.max_pages_in_flight,
            max_pages_in_process=self.settings.orchestrator.max_pages_in_process,
            max_page_retries=self.settings.orchestrator.max_page_retries,
            default_temperature=self.settings.vlm.temperature,
            text_layer_default=self.settings.recognition.text_layer,
        )
        # Documents past the bound wait by class: a synchronous request before jobs.
        self.documents = FairSlots(self.settings.orchestrator.max_documents_in_flight)
        self.background = BackgroundLoop()
        # Each VLM server's state on Triton's metrics port (docparse_triton.vlm_metrics).
        self.endpoint_metrics = asyncio.run_coroutine_threadsafe(
            EndpointMetrics().run(self.recognizers), self.background.loop
        )

    def execute(self, requests: list) -> None:
        for request in requests:
            self.background.submit(self._serve(request))
        return None

    async def _serve(self, request) -> None:
        sender = request.get_response_sender()
        log_id = ""
        started = time.perf_counter()
        received = time.time()
        try:
            body = input_json(request, "input")
            log_id = log_id_for(body) if isinstance(body, dict) else new_log_id()
            file = pb_utils.get_input_tensor_by_name(request, "file")
            if file is not None and isinstance(body, dict):  # the bytes beside the JSON
                body = {**body, "file": FILE_IN_TENSOR}
            parsed = parse_request(body)
            priority = request_priority(request)  # the jobs runner marks its documents batch
            data = file.as_numpy().tobytes() if file is not None else parsed.file_bytes()
            tracing.mark("orchestrator.received", log_id, at=received)
            tracing.mark("orchestrator.parsed", log_id)

            async def emit(event: PageEvent | FinalEvent) -> None:
                # The final event closes the stream itself: one message fewer on the
                # way back than a separate empty closing response.
                flags = FINAL if isinstance(event, FinalEvent) else 0
                sender.send(pb_utils.InferenceResponse([json_tensor("output", event)]), flags=flags)
                tracing.mark(f"orchestrator.sent.{event.type}", log_id)

            async with self.documents.hold(Ticket(log_id, priority)):
                final = await cancel_when_abandoned(
                    request,
                    self.pipeline.run(
                        parsed,
                        self._pages(data, parsed),
                        emit,
                        log_id,
                        request.is_cancelled,
                        priority,
                    ),
                )
            log.info(
                "logId=%s done pages=%d seconds=%.3f",
                log_id, len(final.dataInfo.pages), time.perf_counter() - started,
            )
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - this request's answer
            log.warning("logId=%s failed: %s", log_id or "-", describe(exc))
            try:
                sender.send(self._error_answer(request, log_id, exc), flags=FINAL)
            except Exception as send_error:  # noqa: BLE001 - the client may be gone
                log.info("logId=%s the error could not be sent: %s", log_id or "-", send_error)

    def _pages(self, data: bytes, request: LayoutParsingRequest) -> AsyncIterator[tuple[DocumentInfo, object]]:
        """The document's pages: an image opened here, a PDF rendered by ``pdf_render``;
        as encoded pictures when nothing needs their pixels (``docparse.page_images``)."""
        pixels_needed = self.pipeline.needs_pixels(request)
        if is_image(data, request):
            return image_pages(data, request, self.settings, pixels_needed)
        budget = None if pixels_needed else self.pipeline.pixel_budget(request)
        return render_pages(data, request, window=self.settings.orchestrator.render_window,
                            text_layer=self.pipeline.uses_text_layer(request), jpeg_max_pixels=budget)

    @staticmethod
    def _error_answer(request, log_id: str, exc: BaseException) -> "pb_utils.InferenceResponse":
        """A Triton error, or for a BLS caller that asks (the unary model), the error
        envelope as the output: over BLS an error sent after pages is lost, and the
        caller would wait for the end of the stream forever."""
        if not wants_in_band_errors(request):
            return error_response(exc)
        return error_envelope_response(exc, "output", log_id)

    def finalize(self) -> None:
        """Documents in flight get 30 s to finish; then the VLM connections are closed
        on the loop that opened them."""
        self.endpoint_metrics.cancel()
        self.background.close(timeout=30, cleanup=self._close_recognizers)

    async def _close_recognizers(self) -> None:
        for recognizer in self.recognizers.values():
            await recognizer.aclose()
