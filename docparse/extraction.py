"""Information extraction: a page image and a JSON Schema in, data that fits it out.

GLM-OCR is trained on one prompt for this (its model card): ``请按下列JSON格式输出图中信息:``
followed by a JSON template with empty values. Users of the GLM-OCR server send either a
real JSON Schema or such a template; both are accepted here and become a JSON Schema
(for vLLM's guided decoding and for validating the answer) and a template (for the
prompt). The answer is checked against the schema with ``jsonschema``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from jsonschema import exceptions as schema_errors
from jsonschema.validators import validator_for

from docparse.errors import InvalidRequestError, clip

DEFAULT_PROMPT = "请按下列JSON格式输出图中信息:"
JSON_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_FENCE = re.compile(r"^```[\w+-]*[ \t]*\n?(.*?)\n?```$", re.DOTALL)
MAX_ERRORS_NAMED = 3


class InvalidAnswerError(InvalidRequestError):
    """The model's answer is not JSON that fits the schema; ``raw`` is what it said."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw


def is_schema(value: Mapping[str, Any]) -> bool:
    """Whether a JSON object is a JSON Schema, else a template of the answer: a schema
    names ``$schema``, has ``properties`` or a ``type`` that is a JSON type (a template
    may well have a field called ``type`` or ``items``, but its values are examples)."""
    kind = value.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    return (
        "$schema" in value
        or isinstance(value.get("properties"), dict)
        or (bool(kinds) and all(isinstance(k, str) and k in JSON_TYPES for k in kinds))
    )


def schema_of_template(value: Any) -> dict[str, Any]:
    """The JSON Schema of a GLM-OCR template: every key required, values typed by the
    example (``""`` a string, ``[]`` a list of strings, ``[{...}]`` a list of objects)."""
    if isinstance(value, dict):
        return {
            "type": "object",
            "properties": {key: schema_of_template(item) for key, item in value.items()},
            "required": list(value),
        }
    if isinstance(value, list):
        return {"type": "array", "items": schema_of_template(value[0]) if value else {"type": "string"}}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, (int, float)):
        return {"type": "number"}
    if value is None:
        return {}
    return {"type": "string"}


def template_of_schema(schema: Any) -> Any:
    """The GLM-OCR prompt's template of a schema: objects by their properties, arrays by
    their items, every other value empty."""
    if not isinstance(schema, dict):
        return ""
    if isinstance(schema.get("properties"), dict):
        return {key: template_of_schema(item) for key, item in schema["properties"].items()}
    if schema.get("type") == "array" or "items" in schema:
        return [template_of_schema(schema.get("items"))]
    return ""


def parse_schema(value: Any) -> dict[str, Any]:
    """A checked JSON Schema from what the caller sent: a schema, or a template (also as
    JSON text). Raises ``InvalidRequestError`` naming the problem."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidRequestError(f"field 'schema': not valid JSON: {clip(str(exc), 200)}") from None
    if not isinstance(value, dict) or not value:
        raise InvalidRequestError(
            "field 'schema': must be a JSON object: a JSON Schema, or a template such as "
            '{"name": "", "date": ""}'
        )
    schema = value if is_schema(value) else schema_of_template(value)
    try:
        validator_for(schema).check_schema(schema)
    except schema_errors.SchemaError as exc:
        raise InvalidRequestError(f"field 'schema': not a valid JSON Schema: {clip(exc.message, 200)}") from None
    return schema


def prompt_for(schema: Mapping[str, Any], prefix: str = DEFAULT_PROMPT) -> str:
    """GLM-OCR's extraction prompt: the prefix, then the schema's template."""
    return prefix + "\n" + json.dumps(template_of_schema(schema), ensure_ascii=False, indent=4)


def response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI ``response_format`` that makes vLLM decode JSON fitting ``schema``."""
    return {"type": "json_schema", "json_schema": {"name": "extraction", "schema": dict(schema)}}


def checked_answer(raw: str, schema: Mapping[str, Any]) -> Any:
    """The model's answer as data that fits ``schema``; ``InvalidAnswerError`` (with the
    answer) says why not. A Markdown code fence around the JSON is allowed."""
    text = raw.strip()
    if fenced := _FENCE.match(text):
        text = fenced.group(1).strip()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidAnswerError(f"the model's answer is not JSON: {clip(str(exc), 200)}", raw) from None
    problems = sorted(validator_for(schema)(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    if problems:
        named = "; ".join(f"{_where(p)}: {clip(p.message, 160)}" for p in problems[:MAX_ERRORS_NAMED])
        more = f" and {len(problems) - MAX_ERRORS_NAMED} more" if len(problems) > MAX_ERRORS_NAMED else ""
        raise InvalidAnswerError(f"the model's answer does not fit the schema: {named}{more}", raw)
    return data


def _where(error: schema_errors.ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return "answer" + path
