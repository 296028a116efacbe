"""Parse a document page by page: layout → tasks → recognition → assembly, pipelined.

Knows nothing of Triton: rendering and layout detection come in as async callables
(BLS calls inside Triton, direct calls in unit tests), and results go out through an
``emit`` callable as soon as each page is done, in document order.

Pages move independently: page 1 is recognised while page 5 is still being rendered.
Bounds: ``max_pages_in_flight`` pages per document and ``max_pages_in_process`` pages
over all documents are being worked on at once; the recogniser bounds calls to the VLM
for the whole process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Protocol

import numpy as np

from docparse import tracing
from docparse.assemble import Block, PageContext, build_page_result, image_path_for, reading_order
from docparse.errors import DocParseError
from docparse.protocol import LayoutOptions, LayoutParsingRequest, final_event, page_event
from docparse.recognition.base import Recognizer
from docparse.types import LayoutBox, RegionJob, Task

log = logging.getLogger("docparse.pipeline")

# The label a whole page gets when layout detection is off, by PaddleOCR-VL's promptLabel.
WHOLE_PAGE_LABELS = {None: "text", "ocr": "text", "table": "table",
                     "formula": "display_formula", "chart": "chart"}


class Page(Protocol):
    """A rendered page (``docparse.documents.RenderedPage`` or the Triton equivalent)."""

    index: int
    image: np.ndarray
    width: int
    height: int


@dataclass(frozen=True)
class DocumentInfo:
    """What the final response says about the document."""

    kind: str  # "pdf" or "image"
    page_count: int  # pages in the document
    selected: int  # pages being parsed


PageStream = AsyncIterator[tuple[DocumentInfo, Page]]
# Layout detection of one page; gets the request's layout options (``layout_params()``
# for a local detector, ``layout_options()`` as JSON for a remote one).
DetectFn = Callable[[np.ndarray, LayoutOptions], Awaitable[list[LayoutBox]]]
EmitFn = Callable[[dict], Awaitable[None]]


class TaskTable(Protocol):
    def task_for(self, label: str) -> Task: ...


@dataclass
class Timings:
    """Seconds spent per stage, summed over pages (stages of different pages overlap).

    The wall-clock stages (render, layout, recognition, assemble, total) include waiting.
    ``crop_cpu`` and ``assemble_cpu`` are the CPU seconds of this process's own work on
    the document (cropping, resizing and JPEG-encoding regions for the VLM; building the
    page results), measured with ``time.thread_time()`` in the thread that does it: the
    orchestrator works on many documents at once, so process CPU time would mix them.
    Rendering and layout run in other processes (their CPU is not counted here).
    """

    render: float = 0.0
    layout: float = 0.0
    recognition: float = 0.0
    assemble: float = 0.0
    total: float = 0.0
    crop_cpu: float = 0.0
    assemble_cpu: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in self.__dict__.items()}  # microseconds: CPU times are small


@dataclass
class DocumentPipeline:
    recognizer: Recognizer
    tasks: TaskTable
    detect: DetectFn
    layout_model: str
    max_pages_in_flight: int = 8
    # Every page being worked on holds its rendered image (6 MB for A4 at 144 dpi, in
    # Triton's shared memory): a burst of documents times ``max_pages_in_flight`` pages
    # once grew that by a gigabyte, and growing it cost more CPU than the work itself.
    max_pages_in_process: int = 64

    def __post_init__(self) -> None:
        self._page_budget = asyncio.Semaphore(self.max_pages_in_process)

    async def run(
        self,
        request: LayoutParsingRequest,
        pages: PageStream,
        emit: EmitFn,
        log_id: str,
        is_cancelled: Callable[[], bool] = lambda: False,
    ) -> dict:
        """Parse every page of ``pages``, emitting page events in document order, then
        the final event. Returns the final event. Raises the document-level error (a
        page that cannot be rendered) after emitting the pages finished before it."""
        started = time.perf_counter()
        timings = Timings()
        slots = asyncio.Semaphore(self.max_pages_in_flight)
        queue: asyncio.Queue[asyncio.Task | None] = asyncio.Queue()
        info_holder: list[DocumentInfo] = []
        sizes: list[dict] = []
        budget_held = 0  # pages of this document counted in the process-wide budget

        async def produce() -> None:
            nonlocal budget_held
            render_started = time.perf_counter()
            tracing.mark("render.requested", log_id)
            try:
                async for info, page in pages:
                    timings.render += time.perf_counter() - render_started
                    tracing.mark("page.rendered", log_id)
                    if not info_holder:
                        info_holder.append(info)
                    sizes.append({"width": page.width, "height": page.height})
                    await slots.acquire()
                    await self._page_budget.acquire()
                    budget_held += 1
                    if is_cancelled():
                        break
                    queue.put_nowait(asyncio.create_task(self._page(request, page, log_id, timings)))
                    render_started = time.perf_counter()
            finally:
                queue.put_nowait(None)

        producer = asyncio.create_task(produce())
        try:
            while (task := await queue.get()) is not None:
                page_index, result = await task
                slots.release()
                self._page_budget.release()
                budget_held -= 1
                if is_cancelled():
                    raise asyncio.CancelledError("the request was cancelled")
                await emit(page_event(log_id, page_index, result))
            await producer  # re-raises a rendering error after the pages before it
        finally:
            producer.cancel()
            while not queue.empty():
                pending = queue.get_nowait()
                if pending is not None:
                    pending.cancel()
            for _ in range(budget_held):  # pages given up on: their budget goes back
                self._page_budget.release()
        timings.total = time.perf_counter() - started
        info = info_holder[0] if info_holder else DocumentInfo("unknown", 0, 0)
        data_info = {"type": info.kind, "numPages": info.page_count, "pages": sizes}
        final = final_event(log_id, data_info, timings.as_dict())
        await emit(final)
        return final

    async def _page(
        self, request: LayoutParsingRequest, page: Page, log_id: str, timings: Timings
    ) -> tuple[int, dict]:
        """One page's result. A failure here becomes an error on that page, never a
        lost page or a failed document."""
        try:
            return page.index, await self._parse_page(request, page, log_id, timings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the page is kept with its error
            message = exc.message if isinstance(exc, DocParseError) else f"{type(exc).__name__}: {exc}"
            log.error("logId=%s page=%d failed: %s", log_id, page.index + 1, message)
            return page.index, failed_page_result(page, message)

    async def _parse_page(
        self, request: LayoutParsingRequest, page: Page, log_id: str, timings: Timings
    ) -> dict:
        t0 = time.perf_counter()
        if request.useLayoutDetection is False:
            label = WHOLE_PAGE_LABELS[request.promptLabel]
            boxes = [LayoutBox(label, 1.0, (0.0, 0.0, float(page.width), float(page.height)))]
        else:
            boxes = await self.detect(page.image, request)
            tracing.mark("page.layout_detected", log_id)
        t1 = time.perf_counter()
        order = reading_order(boxes)
        jobs = [RegionJob(boxes[i], self.tasks.task_for(boxes[i].label)) for i in order]
        results = await self.recognizer.recognize(page.image, jobs, request.recognition_params(log_id))
        t2 = time.perf_counter()
        tracing.mark("page.recognized", log_id)
        blocks = [
            Block(
                block_id=index,
                box=job.box,
                task=job.task,
                result=result,
                image_path=image_path_for(job.box) if job.task is Task.IMAGE else None,
            )
            for index, job, result in zip(order, jobs, results)
        ]
        context = PageContext(
            page_index=page.index,
            width=page.width,
            height=page.height,
            model_settings={
                "use_layout_detection": request.useLayoutDetection is not False,
                "layout_model": self.layout_model,
                "recognizer": self.recognizer.name,
            },
            ignored_labels=request.ignored_labels(),
            prettify=request.prettifyMarkdown,
            return_images=request.returnMarkdownImages,
            visualize=bool(request.visualize),
        )
        result, assemble_cpu = await asyncio.to_thread(build_page_result_cpu, page.image, blocks, context)
        t3 = time.perf_counter()
        tracing.mark("page.assembled", log_id)
        timings.layout += t1 - t0
        timings.recognition += t2 - t1
        timings.assemble += t3 - t2
        timings.crop_cpu += sum(r.timings.get("crop_cpu", 0.0) for r in results)
        timings.assemble_cpu += assemble_cpu
        failed = sum(1 for r in results if r.error)
        log.info(
            "logId=%s page=%d regions=%d failed=%d layout=%.3fs recognition=%.3fs assemble=%.3fs",
            log_id, page.index + 1, len(jobs), failed, t1 - t0, t2 - t1, t3 - t2,
        )
        return result


def build_page_result_cpu(image: np.ndarray, blocks: list[Block], context: PageContext) -> tuple[dict, float]:
    """``build_page_result`` and the CPU seconds this thread spent in it (see ``Timings``)."""
    cpu_started = time.thread_time()
    result = build_page_result(image, blocks, context)
    return result, time.thread_time() - cpu_started


def failed_page_result(page: Page, message: str) -> dict:
    """A page that could not be parsed: kept in place, with its error."""
    return {
        "prunedResult": {
            "page_index": page.index,
            "width": page.width,
            "height": page.height,
            "model_settings": {},
            "parsing_res_list": [],
            "layout_det_res": {"boxes": []},
            "error": message,
        },
        "markdown": {"text": "", "images": {}, "isStart": True, "isEnd": True},
        "outputImages": None,
        "inputImage": None,
    }

