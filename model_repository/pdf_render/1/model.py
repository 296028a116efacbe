"""pdf_render: a thin adapter over docparse.documents (see config.pbtxt for the tensors)."""

from __future__ import annotations

import asyncio

import numpy as np
import triton_python_backend_utils as pb_utils

from docparse.documents import Document, open_document, page_window, parse_page_ranges
from docparse.logs import configure_logging
from docparse.protocol import RenderOptions, parse_request
from docparse.recognition.crops import VLM_JPEG_QUALITY
from docparse.render_pool import RenderPool
from docparse.responses import RenderedPageInfo
from docparse.settings import Settings
from docparse_triton.common import (
    FINAL,
    error_envelope_response,
    error_response,
    input_json,
    json_tensor,
    wants_in_band_errors,
)
from docparse_triton.stub_watchdog import start_watchdog


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        start_watchdog(args["model_instance_name"])  # no stub outlives its server
        self.settings = Settings.load()
        configure_logging(self.settings.general.log_level)
        limits = self.settings.documents
        self.renderer = RenderPool(limits.render_workers, limits.render_timeout, limits.render_max_memory_mb)

    def finalize(self) -> None:
        self.renderer.close()

    async def execute(self, requests: list) -> None:
        # Decoupled + async: requests are served concurrently; PDF pages render in the
        # render pool's processes, each within its time and memory limits.
        await asyncio.gather(*(self._serve(request) for request in requests))
        return None

    async def _serve(self, request) -> None:
        sender = request.get_response_sender()
        closed = False  # a response with the FINAL flag has been sent
        try:
            data = pb_utils.get_input_tensor_by_name(request, "document").as_numpy()
            options = parse_request(input_json(request, "options", required=False) or {}, RenderOptions)
            document = await asyncio.to_thread(
                open_document, data.tobytes(), options.fileType, self.settings, self.renderer
            )
            try:
                closed = await self._send_pages(request, sender, document, options)
            finally:
                document.close()
            if not closed:
                sender.send(flags=FINAL)
        except Exception as exc:  # noqa: BLE001 - every failure is this request's answer
            if not closed:
                # Our caller, the orchestrator, reads us over BLS, where the Python backend
                # loses error responses at times (found by `make fuzz`: after pages always,
                # and a stream then never ended; first too, now and then): it asks for
                # errors in-band, as the `page` output of the last response.
                in_band = wants_in_band_errors(request)
                answer = error_envelope_response(exc, "page") if in_band else error_response(exc)
                sender.send(answer, flags=FINAL)

    async def _send_pages(self, request, sender, document: Document, options: RenderOptions) -> bool:
        """Render the window's pages one by one, each sent as soon as it is ready.
        Returns whether the stream was closed (by its last page)."""
        limits = self.settings.documents
        indices = parse_page_ranges(options.pages, document.page_count, limits.max_pages)
        window = page_window(indices, options.start, options.limit)
        dpi = options.dpi or limits.render_dpi
        as_jpeg = options.jpegMaxPixels is not None
        pages = (document.render_jpeg(window, dpi, options.jpegMaxPixels, VLM_JPEG_QUALITY) if as_jpeg
                 else document.render(window, dpi))
        for number, index in enumerate(window, 1):
            page = await asyncio.to_thread(next, pages)
            if request.is_cancelled():
                return False
            if as_jpeg:  # the JPEG a VLM reads; the sizes the page has at the dpi
                width, height, scale = page.page_width, page.page_height, page.page_scale
                picture = pb_utils.Tensor("encoded", np.frombuffer(page.data, dtype=np.uint8))
                sizes = {"encodedWidth": page.width, "encodedHeight": page.height}
            else:
                width, height, scale = page.width, page.height, page.scale
                picture, sizes = pb_utils.Tensor("image", page.image), {}
            words = await asyncio.to_thread(document.text_layer, index, scale) if options.textLayer else None
            info = RenderedPageInfo(
                index=index, width=width, height=height, scale=scale, kind=document.kind,
                pageCount=document.page_count, selected=len(indices), textLayer=words, **sizes,
            )
            # The last page closes the stream itself: no separate empty response
            # arriving while the orchestrator starts on that page.
            last = number == len(window)
            response = pb_utils.InferenceResponse([picture, json_tensor("page", info)])
            sender.send(response, flags=FINAL if last else 0)
        return bool(window)
