"""One chat-completions call as the stand-in sees it: vLLM's validation of the body,
OpenAI's error format, the deterministic answer and the response body.

The answer follows from the prompt and the image, so a test can tell which crop and
prompt produced which answer:

    "Text Recognition:"    -> "text {W}x{H} #{h}"
    "Table Recognition:"   -> "<table><tr><td>cell {W}x{H}</td></tr></table>"
    "Formula Recognition:" -> "\\frac{a}{b} #{h}"
    "Page to Markdown:"    -> a whole page as Markdown (``PAGE_MARKDOWN``): a heading,
                              a paragraph with "{W}x{H}", a pipe table, a $$ formula
    any other prompt       -> "echo: {prompt} {W}x{H}"

A call asking for structured output (``response_format`` with a JSON Schema, or vLLM's
``structured_outputs``/``guided_json``) gets JSON that fits the schema, its strings
``"text {W}x{H} #{h}"``, as vLLM's guided decoding would always give valid JSON.

with W x H the decoded image size and h the first 8 hex digits of sha256(image bytes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import time
import uuid
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

PATCH = 28  # pixels per vision-token side: GLM-OCR's 14 px patches, merged 2x2
ABORTED = 499  # the record's status of a call whose client went away

TASK_OF_PROMPT = {"Text Recognition:": "text", "Table Recognition:": "table", "Formula Recognition:": "formula"}
TASKS = ("text", "table", "formula")
# A page-mode profile's prompt (HPS_VLM_PROFILES mode "page"): the whole page in one call.
PAGE_PROMPT = "Page to Markdown:"
PAGE_MARKDOWN = "# Title\n\npage {width}x{height} #{digest}\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n$$x^2$$"


class ApiError(Exception):
    """An error answered in OpenAI's format: ``{"error": {"message", "type", "code"}}``."""

    TYPES = {400: "BadRequestError", 404: "NotFoundError", 429: "RateLimitError"}

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict:
        kind = self.TYPES.get(self.status, "InternalServerError" if self.status >= 500 else "Error")
        return {"error": {"message": self.message, "type": kind, "param": None, "code": self.status}}


@dataclass(frozen=True)
class ChatRequest:
    """What the simulator reads from a chat-completions body."""

    model: str
    prompt: str
    image: bytes
    width: int
    height: int
    max_tokens: int | None
    temperature: float | None
    json_schema: dict | None = None  # structured output asked for: the answer's schema
    priority: int = 0  # vLLM's request priority (lower runs first; --scheduling-policy priority)


def parse_chat_request(raw: bytes, served_model: str) -> ChatRequest:
    """Validate a body the way vLLM does (as far as this stand-in needs); raises ApiError."""
    body = _json_object(raw)
    model = body.get("model", served_model)
    if model != served_model:
        raise ApiError(404, f"The model `{model}` does not exist.")
    texts, urls = _content_parts(body.get("messages"))
    # vLLM answers text-only prompts too (the GLM-OCR SDK probes the server with "hello"
    # before it starts); GLM-OCR region calls carry one image.
    if len(urls) > 1 or not all(isinstance(u, str) for u in urls):
        raise ApiError(400, f"expected at most one image_url part with a 'url', got {len(urls)}")
    image, width, height = decode_data_uri(urls[0]) if urls else (b"", 0, 0)
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        raise ApiError(400, f"'max_tokens' must be a positive integer, got {max_tokens!r}")
    temperature = body.get("temperature")
    if temperature is not None and (type(temperature) not in (int, float) or temperature < 0):
        raise ApiError(400, f"'temperature' must be a number >= 0, got {temperature!r}")
    schema = _answer_schema(body)
    priority = body.get("priority", 0)
    if type(priority) is not int:
        raise ApiError(400, f"'priority' must be an integer, got {priority!r}")
    return ChatRequest(model, "\n".join(texts), image, width, height, max_tokens, temperature, schema, priority)


def _answer_schema(body: dict) -> dict | None:
    """The JSON Schema a call's answer must fit, as vLLM reads it: OpenAI's
    ``response_format`` (``json_schema`` or ``json_object``), or vLLM's own
    ``structured_outputs.json`` and older ``guided_json``."""
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind == "json_object":
            return {"type": "object"}
        if kind == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            if not isinstance(schema, dict):
                raise ApiError(400, "response_format.json_schema.schema must be a JSON Schema object")
            return schema
        if kind != "text":
            raise ApiError(400, f"response_format.type must be text, json_object or json_schema, got {kind!r}")
    guided = (body.get("structured_outputs") or {}).get("json") or body.get("guided_json")
    if isinstance(guided, str):
        try:
            guided = json.loads(guided)
        except ValueError:
            raise ApiError(400, "the guided JSON schema is not valid JSON") from None
    if guided is not None and not isinstance(guided, dict):
        raise ApiError(400, "the guided JSON schema must be a JSON object")
    return guided


def _json_object(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def _content_parts(messages: object) -> tuple[list[str], list[object]]:
    """The text parts and the image URLs of the last message."""
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "'messages' must be a non-empty list of message objects")
    content = messages[-1].get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise ApiError(400, "message 'content' must be a string or a list of content parts")
    texts = [p.get("text") for p in parts if p.get("type") == "text"]
    urls = [(p.get("image_url") or {}).get("url") for p in parts if p.get("type") == "image_url"]
    if not all(isinstance(t, str) for t in texts):
        raise ApiError(400, "a text part has no 'text' string")
    return texts, urls


def decode_data_uri(url: str) -> tuple[bytes, int, int]:
    """The image bytes and size of a ``data:image/...;base64,...`` URL; raises ApiError."""
    header, comma, data = url.partition(",")
    if not comma or not header.startswith("data:image/") or not header.endswith(";base64"):
        raise ApiError(400, f"the image must be a base64 data URI, got {url[:40]!r}")
    try:
        image = base64.b64decode(data, validate=True)
        # The header gives the size and proves an image; a full decode (~10 ms for a
        # page-sized crop) would be CPU this stand-in takes from the service it measures,
        # on its one event loop, where real vLLM decodes on its own host.
        with Image.open(io.BytesIO(image)) as picture:
            width, height = picture.size
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise ApiError(400, f"the image could not be decoded: {exc}") from None
    return image, width, height


def answer_for(prompt: str, image: bytes, width: int, height: int) -> str:
    """The deterministic answer (see the module docstring)."""
    digest = hashlib.sha256(image).hexdigest()[:8]
    if prompt == "Text Recognition:":
        return f"text {width}x{height} #{digest}"
    if prompt == "Table Recognition:":
        return f"<table><tr><td>cell {width}x{height}</td></tr></table>"
    if prompt == "Formula Recognition:":
        return f"\\frac{{a}}{{b}} #{digest}"
    if prompt == PAGE_PROMPT:
        return PAGE_MARKDOWN.format(width=width, height=height, digest=digest)
    return f"echo: {prompt} {width}x{height}"


def content_for(request: ChatRequest) -> str:
    """The answer to ``request``: JSON fitting its schema when it asked for one."""
    text = answer_for("Text Recognition:", request.image, request.width, request.height)
    if request.json_schema is not None:
        return json.dumps(instance_of(request.json_schema, text), ensure_ascii=False)
    return answer_for(request.prompt, request.image, request.width, request.height)


def instance_of(schema: object, text: str) -> object:
    """A value that fits ``schema`` (the keywords extraction schemas use): ``const`` and
    ``enum`` as given, objects with every property, arrays of ``minItems`` (at least
    one) items, ``text`` for strings, the minimum (else 0) for numbers."""
    if not isinstance(schema, dict):
        return text
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combined in ("anyOf", "oneOf", "allOf"):
        if schema.get(combined):
            return instance_of(schema[combined][0], text)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {key: instance_of(item, text) for key, item in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [instance_of(schema.get("items"), text) for _ in range(max(1, schema.get("minItems", 1)))]
    if kind in ("number", "integer"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text


def prompt_tokens_for(prompt: str, width: int, height: int) -> int:
    """The prompt's length in tokens, roughly: one vision token per 28x28 pixels, the
    prompt's words, and a few chat-template tokens."""
    return (width * height) // (PATCH * PATCH) + len(prompt.split()) + 8


def task_of(prompt: str) -> str:
    """The task a prompt asks for (the prompts ``answer_for`` knows); any other prompt
    counts as text."""
    return TASK_OF_PROMPT.get(prompt, "text")


def completion_body(request: ChatRequest, content: str, completion_tokens: int, finish_reason: str) -> dict:
    """An OpenAI ``chat.completion`` answering ``request`` with ``content``."""
    prompt_tokens = prompt_tokens_for(request.prompt, request.width, request.height)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "logprobs": None,
            "finish_reason": finish_reason,
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
