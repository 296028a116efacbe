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
from dataclasses import dataclass, field, replace
from typing import AsyncIterator, Awaitable, Callable, Mapping, Protocol

import numpy as np

from docparse import text_layer, tracing
from docparse.assemble import (
    Block,
    PageContext,
    build_page_result,
    needs_pixels,
    failed_page_result,
    image_path_for,
    reading_order,
)
from docparse.errors import DocParseError, InvalidRequestError, NotSupportedError, as_error
from docparse.merge import Restructuring
from docparse.outcome import DocumentOutcome
from docparse.page_retries import bad_regions, give_up, retry_temperature
from docparse.protocol import LayoutOptions, LayoutParsingRequest
from docparse.recognition.base import Recognizer
from docparse.recognition.page_markdown import split_blocks
from docparse.responses import DataInfo, FinalEvent, ModelSettings, PageEvent, PageResult, PageSize, Timings
from docparse.scheduling import FairSlots, Priority, Ticket, ticket_task
from docparse.types import READ_TASKS, LayoutBox, RegionJob, RegionResult, Task

log = logging.getLogger("docparse.pipeline")

# The label a whole page gets when layout detection is off, by PaddleOCR-VL's promptLabel.
WHOLE_PAGE_LABELS = {None: "text", "ocr": "text", "table": "table",
                     "formula": "display_formula", "chart": "chart"}
# What assembly gets for a page it neither draws nor cuts (``assemble.needs_pixels``).
NO_PIXELS = np.zeros((1, 1, 3), dtype=np.uint8)


class Page(Protocol):
    """A rendered page (``docparse.documents.RenderedPage`` or the Triton equivalent)."""

    index: int
    image: np.ndarray
    width: int
    height: int
    # (optional) text_layer: PageTextLayer | None, the PDF page's words when asked for


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
EmitFn = Callable[[PageEvent | FinalEvent], Awaitable[None]]


class TaskTable(Protocol):
    def task_for(self, label: str) -> Task: ...


@dataclass
class _Document:
    """One document's state while its pages move through the pipeline."""

    request: LayoutParsingRequest
    log_id: str
    is_cancelled: Callable[[], bool]
    slots: asyncio.Semaphore  # pages of this document being worked on
    ticket: Ticket  # its claim on the page budget and the VLM's slots (docparse.scheduling)
    timings: Timings = field(default_factory=Timings)
    outcome: DocumentOutcome = field(default_factory=DocumentOutcome)
    info: DocumentInfo | None = None
    sizes: list[PageSize] = field(default_factory=list)
    started: "asyncio.Queue[asyncio.Task | None]" = field(default_factory=asyncio.Queue)
    budget_held: int = 0  # pages counted in the process-wide budget
    kept: list[PageResult] | None = None  # the pages, kept when the request restructures them
    recognizer: Recognizer | None = None  # the request's profile (``model``)


@dataclass
class DocumentPipeline:
    recognizer: Recognizer
    tasks: TaskTable
    detect: DetectFn
    layout_model: str
    max_pages_in_flight: int = 8
    # Every page being worked on holds its rendered image (6 MB for A4 at 144 dpi, in
    # Triton's shared memory): unbounded, a burst of documents times
    # ``max_pages_in_flight`` pages holds gigabytes, and growing shared memory costs
    # more CPU than the work itself.
    max_pages_in_process: int = 64
    max_page_retries: int = 1  # HPS_MAX_PAGE_RETRIES: a request's maxPageRetries wins
    default_temperature: float = 0.0  # HPS_VLM_TEMPERATURE: where page retries warm up from
    # Every name a request's ``model`` may give (VLM profiles), the default first; unset:
    # ``recognizer`` alone, under its own name.
    recognizers: Mapping[str, Recognizer] | None = None
    text_layer_default: str = "default"  # HPS_TEXT_LAYER: a request's textLayer when it sends none

    def __post_init__(self) -> None:
        # Fair, not first come first served: a one-page request gets the next free page
        # before documents already holding many (docparse.scheduling).
        self._page_budget = FairSlots(self.max_pages_in_process)

    async def run(
        self,
        request: LayoutParsingRequest,
        pages: PageStream,
        emit: EmitFn,
        log_id: str,
        is_cancelled: Callable[[], bool] = lambda: False,
        priority: Priority = Priority.INTERACTIVE,
    ) -> FinalEvent:
        """Parse every page of ``pages``, emitting page events in document order, then
        the final event. Returns the final event. Raises the document-level error (a
        page that cannot be rendered, nothing at all read: ``docparse.outcome``) after
        emitting the pages finished before it; fails at once when the recogniser is
        known to be down. ``priority``: the document's class where pages and VLM calls
        wait (jobs run as ``BATCH``)."""
        started = time.perf_counter()
        recognizer = self.recognizer_for(request.model)
        if request.jsonSchema is not None and not recognizer.supports_extraction:
            raise NotSupportedError(
                f"information extraction needs a VLM; this server reads with {recognizer.name} "
                "(HPS_RECOGNIZER=cpu): run it with HPS_RECOGNIZER=vlm and a VLM server"
            )
        await recognizer.ensure_available()
        document = _Document(request, log_id, is_cancelled, asyncio.Semaphore(self.max_pages_in_flight),
                             Ticket(log_id, priority))
        document.recognizer = recognizer
        restructuring = Restructuring.of(request)
        document.kept = [] if restructuring is not None else None
        # Its pages' tasks inherit the ticket, and the VLM client finds it there.
        producer = ticket_task(document.ticket, self._produce(document, pages))
        try:
            await self._deliver(document, emit)
            await producer  # re-raises a rendering error after the pages before it
        finally:
            producer.cancel()
            self._give_up(document)
        if (error := document.outcome.verdict()) is not None:
            raise error
        document.timings.total = time.perf_counter() - started
        info = document.info or DocumentInfo("unknown", 0, 0)
        data_info = DataInfo(type=info.kind, numPages=info.page_count, pages=document.sizes)
        summary = document.outcome.summary
        merged = None
        if restructuring is not None and document.kept is not None:  # off the loop: a long document takes a while
            merged = (await asyncio.to_thread(restructuring.markdown, document.kept)).text
        final = FinalEvent(
            logId=log_id, dataInfo=data_info, summary=summary, timings=document.timings.rounded(), mergedMarkdown=merged
        )
        await emit(final)
        return final

    def uses_text_layer(self, request: LayoutParsingRequest) -> bool:
        """Whether the request's PDF pages come with their text layer: textLayer, else
        HPS_TEXT_LAYER, else the recognizer's own default (the CPU OCR's yes: the text
        layer is exact and a hundred times cheaper; a VLM's no: its reading stays the same
        as before for every client unless asked). Never for extraction or page-mode
        profiles, whose answer is the page as a whole."""
        try:
            recognizer = self.recognizer_for(request.model)
        except InvalidRequestError:
            return False  # ``run`` refuses the request
        mode = request.textLayer or self.text_layer_default
        if mode == "default":
            mode = "auto" if text_layer.by_default(recognizer) else "off"
        whole_page = request.jsonSchema is not None or bool(getattr(recognizer, "page_mode", False))
        return mode == "auto" and not whole_page

    def needs_pixels(self, request: LayoutParsingRequest) -> bool:
        """Whether the request's pages must come as pixels. Not when each page is one
        whole-page region (layout off, or a page-mode profile) read by a recognizer that
        sends a page's encoded picture as it is and nothing draws the page: then a page
        may come encoded (``docparse.page_images``) and is decoded only if it must be
        resized for the VLM."""
        try:
            recognizer = self.recognizer_for(request.model)
        except InvalidRequestError:
            return True  # ``run`` refuses the request
        whole_page = request.useLayoutDetection is False or self._page_mode(recognizer, request)
        return not (whole_page and getattr(recognizer, "reads_encoded_pages", False) and not request.visualize)

    def pixel_budget(self, request: LayoutParsingRequest) -> int | None:
        """The most pixels the request's recognizer gives a VLM a page with (its crop
        limit): the size a page that goes whole is rendered at. ``None``: no limit known."""
        try:
            limits = getattr(self.recognizer_for(request.model), "pixel_limits", None)
            return None if limits is None else limits(request.recognition_params(""))[1]
        except InvalidRequestError:
            return None  # ``run`` refuses the request

    @staticmethod
    def _page_mode(recognizer: Recognizer, request: LayoutParsingRequest) -> bool:
        """Whether the recognizer reads each page whole (a page-mode VLM profile)."""
        return bool(getattr(recognizer, "page_mode", False)) and request.jsonSchema is None

    def recognizer_for(self, model: str | None) -> Recognizer:
        """The recognizer a request's ``model`` names (the default when it names none);
        an unknown name is refused (422) listing the known ones."""
        named = dict(self.recognizers) if self.recognizers else {self.recognizer.name: self.recognizer}
        if model is None:
            return next(iter(named.values())) if self.recognizers else self.recognizer
        if model not in named:
            raise InvalidRequestError(f"field 'model': unknown model {model!r}; known: {', '.join(named)}")
        return named[model]

    async def _produce(self, document: "_Document", pages: PageStream) -> None:
        """Start each page as it is rendered, within the document's and the process's
        bounds; ``None`` in the queue says there are no more."""
        render_started = time.perf_counter()
        tracing.mark("render.requested", document.log_id)
        try:
            async for info, page in pages:
                document.timings.render += time.perf_counter() - render_started
                tracing.mark("page.rendered", document.log_id)
                document.info = document.info or info
                document.sizes.append(PageSize(width=page.width, height=page.height))
                await document.slots.acquire()
                await self._page_budget.acquire(document.ticket)
                document.budget_held += 1
                if document.is_cancelled():
                    break
                work = self._page(document, page)
                document.started.put_nowait(asyncio.create_task(work))
                render_started = time.perf_counter()
        finally:
            document.started.put_nowait(None)

    async def _deliver(self, document: "_Document", emit: EmitFn) -> None:
        """Emit the pages in the order they were started (document order)."""
        while (task := await document.started.get()) is not None:
            page_index, result, failure, region_failures = await task
            document.outcome.add_page(result, failure, region_failures)
            if document.kept is not None:
                document.kept.append(result)
            document.slots.release()
            self._page_budget.release(document.ticket)
            document.budget_held -= 1
            if document.is_cancelled():
                raise asyncio.CancelledError("the request was cancelled")
            info = document.info or DocumentInfo("unknown", 0, 0)
            event = PageEvent(
                logId=document.log_id, pageIndex=page_index, totalPages=info.selected, numPages=info.page_count,
                result=result,
            )
            await emit(event)

    def _give_up(self, document: "_Document") -> None:
        """Cancel the pages not delivered and give their budget back (a failed or
        abandoned document never keeps the process's pages)."""
        while not document.started.empty():
            pending = document.started.get_nowait()
            if pending is not None:
                pending.cancel()
        for _ in range(document.budget_held):
            self._page_budget.release(document.ticket)
        document.budget_held = 0

    async def _page(
        self, document: _Document, page: Page
    ) -> tuple[int, PageResult, DocParseError | None, list[DocParseError]]:
        """One page's result, the page's failure (it failed as a whole) and its regions'
        failures. A failure here becomes an error on that page, never a lost page."""
        try:
            result, results = await self._parse_page(document, page)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the page is kept with its error
            failure = as_error(exc)
            log.error("logId=%s page=%d failed: %s", document.log_id, page.index + 1, failure.message)
            settings = self.model_settings(document.request, document.recognizer)
            failed = failed_page_result(page.index, page.width, page.height, settings, failure.message)
            return page.index, failed, failure, []
        return page.index, result, None, [r.failure for r in results if r.failure is not None]

    async def _read(
        self, recognizer: Recognizer, request: LayoutParsingRequest, page: Page, jobs: list[RegionJob], log_id: str
    ) -> list[RegionResult]:
        """Every region read: from the page's text layer where it came with the page and
        is reliable (``docparse.text_layer``), the rest by the recognizer, which sees
        those regions as dropped (they still compete for its lines) and skips the page
        when nothing is left to read."""
        layer = getattr(page, "text_layer", None)
        if layer is None or not self.uses_text_layer(request):
            return await self._recognize(recognizer, request, page, jobs, log_id)
        found = await asyncio.to_thread(text_layer.read_regions, layer, page.image, jobs, text_layer.tasks_of(recognizer))
        rest = [replace(job, task=Task.DROP) if i in found else job for i, job in enumerate(jobs)]
        if any(job.task in READ_TASKS for job in rest):
            results = await self._recognize(recognizer, request, page, rest, log_id)
        else:
            results = [RegionResult("") for _ in rest]
        for i, content in found.items():
            results[i] = RegionResult(content, source=text_layer.TEXT_LAYER_SOURCE)
        return results

    async def _recognize(
        self, recognizer: Recognizer, request: LayoutParsingRequest, page: Page, jobs: list[RegionJob], log_id: str
    ) -> list[RegionResult]:
        """Every region read; the bad ones (``docparse.page_retries``) read again up to
        the request's page retries, a little warmer each time, then marked failed."""
        params = request.recognition_params(log_id)
        results = await recognizer.recognize(page, jobs, params)
        retries = self.max_page_retries if request.maxPageRetries is None else request.maxPageRetries
        base = self.default_temperature if params.temperature is None else params.temperature
        for attempt in range(1, retries + 1):
            if not (bad := bad_regions(jobs, results)):
                return results
            log.warning("logId=%s page=%d retry %d of %d for %d region(s): %s", log_id, page.index + 1,
                        attempt, retries, len(bad), next(iter(bad.values())))
            warmer = replace(params, temperature=retry_temperature(base, attempt))
            again = await recognizer.recognize(page, [jobs[i] for i in bad], warmer)
            for i, result in zip(bad, again):
                results[i] = result
        give_up(results, bad_regions(jobs, results))
        return results

    def model_settings(self, request: LayoutParsingRequest, recognizer: Recognizer | None = None) -> ModelSettings:
        """What the page result says about how it was made."""
        return ModelSettings(
            use_layout_detection=request.useLayoutDetection is not False,
            layout_model=self.layout_model,
            recognizer=(recognizer or self.recognizer).name,
        )

    async def _parse_page(self, document: "_Document", page: Page) -> tuple[PageResult, list[RegionResult]]:
        request, log_id, timings = document.request, document.log_id, document.timings
        recognizer = document.recognizer or self.recognizer
        page_mode = self._page_mode(recognizer, request)
        t0 = time.perf_counter()
        if request.useLayoutDetection is False or page_mode:
            label = "text" if page_mode else WHOLE_PAGE_LABELS[request.promptLabel]
            boxes = [LayoutBox(label, 1.0, (0.0, 0.0, float(page.width), float(page.height)))]
        else:
            boxes = await self.detect(page.image, request)
            tracing.mark("page.layout_detected", log_id)
        t1 = time.perf_counter()
        order = reading_order(boxes)
        jobs = [RegionJob(boxes[i], self.tasks.task_for(boxes[i].label)) for i in order]
        results = await self._read(recognizer, request, page, jobs, log_id)
        if page_mode:
            jobs, results, order = self._page_blocks(jobs[0], results[0])
        text_layer.name_sources(jobs, results, recognizer.name)
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
            model_settings=self.model_settings(request, recognizer),
            ignored_labels=request.ignored_labels(),
            prettify=request.prettifyMarkdown,
            return_images=request.returnMarkdownImages,
            visualize=bool(request.visualize),
        )
        result, assemble_cpu = await asyncio.to_thread(build_page_result_cpu, page, blocks, context)
        t3 = time.perf_counter()
        tracing.mark("page.assembled", log_id)
        timings.layout += t1 - t0
        timings.recognition += t2 - t1
        timings.assemble += t3 - t2
        timings.crop_cpu += sum(r.timings.get("crop_cpu", 0.0) for r in results)
        timings.assemble_cpu += assemble_cpu
        log.info(
            "logId=%s page=%d regions=%d failed=%d layout=%.3fs recognition=%.3fs assemble=%.3fs",
            log_id, page.index + 1, len(jobs), result.regions.failed, t1 - t0, t2 - t1, t3 - t2,
        )
        return result, results

    def _page_blocks(self, job: RegionJob, result: RegionResult) -> tuple[list[RegionJob], list[RegionResult], list[int]]:
        """A page-mode answer (the whole page read in one call) as the blocks its
        Markdown shows, each over the whole page (the model gave no boxes); a failed or
        empty answer stays the one region it was."""
        parts = split_blocks(result.content) if result.failure is None else []
        if not parts:
            return [job], [result], [0]
        jobs = [RegionJob(replace(job.box, label=part.label), self.tasks.task_for(part.label)) for part in parts]
        results = [RegionResult(part.content) for part in parts]
        results[0] = replace(results[0], timings=result.timings)
        return jobs, results, list(range(len(parts)))


def build_page_result_cpu(
    page: Page, blocks: list[Block], context: PageContext
) -> tuple[PageResult, float]:
    """``build_page_result`` and the CPU seconds this thread spent in it: ``thread_time``,
    because the orchestrator works on many documents at once and its process CPU time
    would mix them. The page's pixels are read (decoded, for a page that came encoded)
    only if the result draws or cuts them."""
    cpu_started = time.thread_time()
    pixels = page.image if needs_pixels(blocks, context) else NO_PIXELS
    result = build_page_result(pixels, blocks, context)
    return result, time.thread_time() - cpu_started
