"""The request and response shapes, shared by the gateway, the Triton models and clients.

The request follows PaddleOCR-VL's HPS ``/layout-parsing`` body so that its clients work
unchanged. Fields we accept only for compatibility are listed in ``COMPATIBILITY_FIELDS``
and documented as ignored; any other unknown field is refused with its name, so a typo
never passes silently.
"""

from __future__ import annotations

import binascii
import json
import re
import uuid
from typing import Annotated, Any, Iterator, Literal, Mapping, Sequence, TypeVar

import orjson
import pybase64
import pydantic_core
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from docparse.errors import DocParseError, InvalidRequestError, clip
from docparse.extraction import parse_schema
from docparse.settings import MIN_DPI
from docparse.types import LayoutParams, RecognitionParams

M = TypeVar("M", bound=BaseModel)

MAX_LOG_ID = 128  # characters of a logId
_LOG_ID = re.compile(r"[\x20-\x7e]{1,%d}" % MAX_LOG_ID)


def _checked_log_id(value: str) -> str:
    if not _LOG_ID.fullmatch(value):
        raise ValueError(
            f"must be 1 to {MAX_LOG_ID} printable ASCII characters: it travels in HTTP headers "
            "(X-Log-Id, X-Request-Id to the VLM) and log lines"
        )
    return value


#: A request's id, as every request model takes it.
LogId = Annotated[str, AfterValidator(_checked_log_id)]
MAX_PAGE_RETRIES = 5  # more would only multiply the VLM work of a hopeless page
# Characters of a page selection: every page of the longest document listed one by one
# fits; parsing a megabyte of "1,1,1…" would take seconds.
MAX_PAGES_SPEC = 10_000

# What a request's JSON may hold. The request itself needs 3 levels and about a hundred
# entries; these leave room for what clients add (``vlmExtraArgs``) and stay far below
# what would hurt: the parser's recursion, or seconds of CPU on a million keys.
MAX_JSON_DEPTH = 64
MAX_JSON_ENTRIES = 10_000
# Problems one error message names; the rest are counted.
MAX_PROBLEMS_NAMED = 5
_STRUCTURAL = re.compile(rb'[\[\]{},"]')
_QUOTE, _BACKSLASH = ord('"'), ord("\\")

# PaddleOCR-VL's defaults for which labels stay out of the Markdown.
DEFAULT_MARKDOWN_IGNORE_LABELS = (
    "number",
    "footnote",
    "header",
    "header_image",
    "footer",
    "footer_image",
    "aside_text",
)


class LayoutOptions(BaseModel):
    """The layout detector's options; also the JSON options of ``layout_detection``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    layoutThreshold: float | dict[int, float] | None = Field(
        None, description="Score threshold, or {class_id: threshold}."
    )
    layoutNms: bool | None = Field(None, description="Non-maximum suppression on boxes.")
    layoutUnclipRatio: float | list[float] | dict[int, list[float]] | None = Field(
        None, description="Box expansion ratio (w, h), or per class id."
    )
    layoutMergeBboxesMode: str | dict[int, str] | None = Field(
        None, description="Overlapping-box merge mode: large, small or union (or per class)."
    )

    def layout_options(self) -> dict:
        """The layout options as JSON for ``layout_detection`` (unset ones left out)."""
        return self.model_dump(include=set(LayoutOptions.model_fields), exclude_none=True)

    def layout_params(self) -> LayoutParams:
        unclip = self.layoutUnclipRatio
        return LayoutParams(
            threshold=self.layoutThreshold,
            nms=self.layoutNms,
            unclip_ratio=tuple(unclip) if isinstance(unclip, list) else unclip,  # type: ignore[arg-type]
            merge_bboxes_mode=self.layoutMergeBboxesMode,  # type: ignore[arg-type]
        )


class RenderOptions(BaseModel):
    """The ``options`` input of ``pdf_render``: which pages, how, and which window of
    them (a long document is asked for a window at a time)."""

    model_config = ConfigDict(extra="forbid")

    fileType: Literal[0, 1] | None = Field(None, description="0 = PDF, 1 = image; null = detect.")
    pages: str | None = Field(
        None, max_length=MAX_PAGES_SPEC, description='1-based page ranges, "1-3,7"; null = all.'
    )
    dpi: int | None = Field(None, description="Rendering DPI; null = HPS_RENDER_DPI.")
    start: StrictInt = Field(0, ge=0, description="First of the selected pages to render (0-based).")
    limit: StrictInt | None = Field(None, ge=1, description="Most pages to render from start; null = all.")
    textLayer: bool = Field(False, description="Send each PDF page's text layer (its words) with the page.")
    jpegMaxPixels: StrictInt | None = Field(
        None, ge=784,
        description="Send each page as a JPEG of at most this many pixels (output `encoded`, rendered at that "
        "size) instead of its pixels (`image`): for pages a VLM reads whole. null = pixels.",
    )


class LayoutParsingRequest(LayoutOptions):
    """Body of ``POST /layout-parsing`` and the JSON input of the Triton models."""

    file: str = Field(
        ...,
        min_length=1,
        description="The document: base64 of a PDF or image file, or an http(s) URL "
        "(URLs only when the gateway enables them).",
    )
    fileType: Literal[0, 1] | None = Field(
        None, description="0 = PDF, 1 = image; null = detect from the file's bytes."
    )
    pages: str | None = Field(
        None,
        max_length=MAX_PAGES_SPEC,
        description='Pages to parse, 1-based ranges such as "1-3,7" or "2-"; null = all.',
        examples=["1-3,7"],
    )
    dpi: int | None = Field(
        None, ge=MIN_DPI, description="Rendering resolution for PDF pages (default HPS_RENDER_DPI)."
    )
    useLayoutDetection: bool | None = Field(
        None,
        description="false sends each whole page to the recogniser as one region.",
    )
    promptLabel: Literal["ocr", "table", "formula", "chart"] | None = Field(
        None,
        description="With useLayoutDetection=false: the task for the whole page "
        "(ocr = text, the default).",
    )
    jsonSchema: dict[str, Any] | None = Field(
        None,
        description="Information extraction (needs a VLM; with useLayoutDetection=false): each page's one "
        "block holds the VLM's JSON answer for this JSON Schema (or a GLM-OCR template such as "
        '{"name": ""}), decoded with vLLM\'s structured output.',
    )
    markdownIgnoreLabels: list[str] | None = Field(
        None,
        description="Labels left out of the Markdown; default "
        + ", ".join(DEFAULT_MARKDOWN_IGNORE_LABELS)
        + ".",
    )
    prettifyMarkdown: bool = Field(True, description="Blank lines between blocks.")
    returnMarkdownImages: bool = Field(
        True, description="Return figure crops in markdown.images."
    )
    model: str | None = Field(
        None, min_length=1, max_length=200,
        description="The VLM profile that reads the pages (HPS_VLM_PROFILES; GET /api/info lists them); "
        "null = the first. Unknown names are refused (422).",
    )
    textLayer: Literal["auto", "off"] | None = Field(
        None,
        description="auto: text regions of a born-digital PDF are read from the PDF's own text where it is "
        "reliable (exact, and no recognizer call), the rest by the recognizer; off: every region by the "
        "recognizer. null = HPS_TEXT_LAYER (by default auto with the CPU recognizer, off with a VLM). "
        "Each block's source says which read it.",
    )
    temperature: float | None = Field(None, ge=0, description="VLM sampling temperature.")
    topP: float | None = Field(None, gt=0, le=1, description="VLM nucleus sampling.")
    repetitionPenalty: float | None = Field(None, gt=0, description="VLM repetition penalty.")
    maxNewTokens: int | None = Field(None, ge=1, description="Most tokens per region.")
    minPixels: int | None = Field(None, ge=784, description="Smallest crop sent to the VLM.")
    maxPixels: int | None = Field(None, ge=784, description="Largest crop sent to the VLM.")
    visualize: bool | None = Field(
        None, description="Return the page with its layout boxes drawn in outputImages."
    )
    maxPageRetries: int | None = Field(
        None, ge=0, le=MAX_PAGE_RETRIES,
        description="Times a page's bad regions (failed, degenerate, or all empty) are read again, "
        "a little warmer each time; default HPS_MAX_PAGE_RETRIES.",
    )
    logId: LogId | None = Field(None, description="Request id echoed in the response and logs (printable ASCII).")

    restructurePages: bool | None = Field(
        None,
        description="Read the document as one flow across page breaks (README, Merge rules): the unary "
        "answer's pages restructured and result.mergedMarkdown; a stream's final event carries mergedMarkdown.",
    )
    mergeTables: bool | None = Field(None, description="With restructurePages: join tables continued on the next page (default true).")
    relevelTitles: bool | None = Field(None, description="With restructurePages: title levels over the whole document (default true).")

    # Accepted for compatibility with PaddleOCR-VL clients; they do not change the result.
    useDocOrientationClassify: bool | None = Field(None, description="Ignored.")
    useDocUnwarping: bool | None = Field(None, description="Ignored.")
    useChartRecognition: bool | None = Field(None, description="Ignored.")
    useSealRecognition: bool | None = Field(None, description="Ignored.")
    useOcrForImageBlock: bool | None = Field(None, description="Ignored.")
    layoutShapeMode: str | None = Field(None, description="Ignored.")
    formatBlockContent: bool | None = Field(None, description="Ignored.")
    mergeLayoutBlocks: bool | None = Field(None, description="Ignored.")
    vlmExtraArgs: dict[str, Any] | None = Field(None, description="Ignored.")
    showFormulaNumber: bool | None = Field(None, description="Ignored.")
    outputFormats: list[str] | None = Field(None, description="Ignored.")

    def file_bytes(self) -> bytes:
        """The document's bytes. URLs are fetched by the gateway, never here."""
        if self.file.startswith(("http://", "https://")):
            raise InvalidRequestError(
                "field 'file': URL inputs are not accepted here; send the file as base64"
            )
        text = self.file
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]  # a data URI is base64 after the comma
        try:
            data = pybase64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError("field 'file': not valid base64") from None
        if not data:
            raise InvalidRequestError("field 'file': the file is empty")
        return data

    @field_validator("jsonSchema")
    @classmethod
    def _a_schema_on_whole_pages(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        if value is None:
            return None
        if info.data.get("useLayoutDetection") is not False:
            raise ValueError("extraction reads whole pages: set useLayoutDetection to false")
        try:
            return parse_schema(value)
        except InvalidRequestError as exc:
            raise ValueError(exc.message.removeprefix("field 'schema': ")) from None

    @field_validator("maxPixels")
    @classmethod
    def _not_below_min_pixels(cls, value: int | None, info: ValidationInfo) -> int | None:
        smallest = info.data.get("minPixels")
        if value is not None and smallest is not None and value < smallest:
            raise ValueError(f"must not be below minPixels ({smallest})")
        return value

    def recognition_params(self, log_id: str) -> RecognitionParams:
        return RecognitionParams(
            temperature=self.temperature,
            top_p=self.topP,
            repetition_penalty=self.repetitionPenalty,
            max_new_tokens=self.maxNewTokens,
            min_pixels=self.minPixels,
            max_pixels=self.maxPixels,
            json_schema=self.jsonSchema,
            log_id=log_id,
        )

    def ignored_labels(self) -> frozenset[str]:
        labels = self.markdownIgnoreLabels
        return frozenset(DEFAULT_MARKDOWN_IGNORE_LABELS if labels is None else labels)


def describe_validation_error(exc: ValidationError) -> str:
    """The request's problems, each naming the field: what a caller needs to fix it."""
    return describe_problems(exc.errors(include_url=False, include_input=False))


def describe_problems(errors: Sequence[Mapping[str, Any]]) -> str:
    """At most ``MAX_PROBLEMS_NAMED`` problems and how many more there are, each field
    name cut short: a request of a million unknown keys once got a 32 MB answer."""
    parts = []
    for error in errors[:MAX_PROBLEMS_NAMED]:
        location = clip(".".join(str(p) for p in error["loc"]) or "body")
        if error["type"] == "extra_forbidden":
            parts.append(f"field '{location}': unknown field")
        else:
            parts.append(f"field '{location}': {clip(str(error['msg']), 200)}")
    if len(errors) > MAX_PROBLEMS_NAMED:
        parts.append(f"and {len(errors) - MAX_PROBLEMS_NAMED} more problems")
    return "; ".join(parts)


def check_json_limits(raw: bytes | str, error: type[DocParseError] = InvalidRequestError,
                      what: str = "the request", max_entries: int = MAX_JSON_ENTRIES) -> None:
    """Refuse JSON text nested deeper than ``MAX_JSON_DEPTH`` or holding more than
    ``max_entries`` entries, before it is parsed: parsing is what gets expensive
    (100,000-deep nesting overflows the parser; a million keys take seconds). Strings
    are skipped whole and scanning stops at a limit, so this costs little: about 10 ms
    for a 100 MB body with its file as base64."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    depth = entries = strings = 0
    for char in _structure(data):
        if char == _QUOTE:
            strings += 1  # a key or a value: at most two per entry in valid JSON
        elif char in b"[{":
            depth, entries = depth + 1, entries + 1
            if depth > MAX_JSON_DEPTH:
                raise error(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels, the most this API reads")
        elif char in b"]}":
            depth -= 1
        else:  # a comma: one more entry in its object or array
            entries += 1
        if entries > max_entries or strings > 2 * max_entries + 2:
            raise error(
                f"{what} holds more than {max_entries} entries (object keys and array "
                "items), the most this API reads"
            )


def _structure(data: bytes) -> Iterator[int]:
    """JSON text's structural characters (brackets, braces, commas) in order, and a
    quote for each string, whose contents are skipped."""
    position = 0
    while (match := _STRUCTURAL.search(data, position)) is not None:
        char = data[match.start()]
        position = _string_end(data, match.end()) if char == _QUOTE else match.end()
        yield char


def _string_end(data: bytes, position: int) -> int:
    """Just past the quote that closes the string opened before ``position`` (the end
    of ``data`` if none does)."""
    while (end := data.find(b'"', position)) >= 0:
        backslashes = 0
        while data[end - 1 - backslashes] == _BACKSLASH:  # stops at the opening quote
            backslashes += 1
        position = end + 1
        if backslashes % 2 == 0:
            return position
    return len(data)


def load_json(raw: bytes | str, error: type[DocParseError] = InvalidRequestError,
              what: str = "the request", max_entries: int = MAX_JSON_ENTRIES) -> Any:
    """A JSON document from untrusted text, within the limits above; ``error`` (naming
    ``what``) says what is wrong otherwise. Every JSON entry point reads through here:
    the gateway's body and form fields, the Triton models' inputs."""
    check_json_limits(raw, error, what, max_entries)
    try:
        # orjson: 3x the standard library on a page image's base64 (2.5 against 7.9 ms
        # for 2.6 MB here); what it refuses and the standard library reads (integers
        # beyond 64 bits, lone surrogates, NaN) is read as before, as are the errors.
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except RecursionError:  # the limits keep it from happening; never a 500 if it does
        raise error(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels, the most this API reads") from None
    except ValueError as exc:  # not JSON, not UTF-8, an integer of over 4300 digits
        raise error(f"{what} is not valid JSON: {clip(str(exc), 200)}") from None


def json_object(
    raw: bytes | str | dict, error: type[DocParseError] = InvalidRequestError, max_entries: int = MAX_JSON_ENTRIES
) -> dict:
    """A JSON object from text (or a dict as is); ``error`` says what is wrong otherwise."""
    if isinstance(raw, (bytes, str)):
        raw = load_json(raw, error, max_entries=max_entries)
    if not isinstance(raw, dict):
        raise error("the request must be a JSON object")
    return raw


def json_bytes(value: Any) -> bytes:
    """``value`` as UTF-8 JSON, the one encoder of every hop (Triton tensors, VLM calls,
    SSE). Response models serialise themselves (also inside lists). Anything else goes
    through orjson, because requests carry whole pages as base64 and the standard
    library's encoder takes about 1 ms for each (orjson 0.02 ms); the standard library
    takes what both refuse: integers beyond 64 bits and lone surrogates, which a request
    may carry in fields passed on as they are (escaped to ASCII, so that any string
    survives the round trip)."""
    if isinstance(value, BaseModel):
        return value.__pydantic_serializer__.to_json(value)
    try:
        return orjson.dumps(value)
    except TypeError:
        pass
    try:
        return pydantic_core.to_json(value)
    except pydantic_core.PydanticSerializationError:
        return json.dumps(value).encode("ascii")


def parse_request(raw: bytes | str | dict, model: type[M] = LayoutParsingRequest) -> M:  # type: ignore[assignment]
    """Validate a request from JSON text or a dict; errors name the field."""
    raw = json_object(raw)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRequestError(describe_validation_error(exc)) from None


def new_log_id() -> str:
    return uuid.uuid4().hex


def log_id_for(request: dict) -> str:
    """The request's logId: the caller's (cut to the 128 characters the field allows)
    when it sent a printable one, else a new one. Every entry point (the gateway, the Triton models)
    picks it this one way, so a request keeps its id on every hop."""
    given = request.get("logId")
    if isinstance(given, str) and _LOG_ID.fullmatch(given[:MAX_LOG_ID]):
        return given[:MAX_LOG_ID]
    return new_log_id()  # none, or one no header could carry
