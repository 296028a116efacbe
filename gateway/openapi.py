"""What /docs, /redoc and /openapi.json say beyond what FastAPI derives from the routes'
response models: the request body (JSON, described field by field from the shared
request model, or a multipart upload) and every error answer, from the error table."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from docparse.errors import ErrorKind
from docparse.responses import ErrorEnvelope

REF = "#/components/schemas/"


def error_responses(*kinds: ErrorKind) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route: each status with what its kinds mean."""
    meanings: dict[int, list[str]] = {}
    for kind in kinds:
        meanings.setdefault(kind.status, []).append(kind.meaning)
    return {
        status: {"model": ErrorEnvelope, "description": " Or: ".join(texts)}
        for status, texts in sorted(meanings.items())
    }


#: Every error a parsing route can answer.
PARSING_ERRORS = error_responses(*ErrorKind)


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads ``model`` as JSON or as a form upload
    (the routes read the body themselves, to bound its size)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"{REF}{model.__name__}"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary", "description": "The PDF or image."},
                        },
                        "additionalProperties": {
                            "type": "string",
                            "description": "Any other request field, e.g. pages=1-3, dpi=200.",
                        },
                    }
                },
            },
        }
    }


def form_body(model: type[BaseModel], files: dict[str, str], repeated: bool = False) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads a multipart form: ``files`` (name →
    description; ``repeated``: each may be sent several times) and ``model``'s fields."""
    binary: dict[str, Any] = {"type": "string", "format": "binary"}
    properties: dict[str, Any] = {
        name: {"type": "array", "items": binary, "description": text} if repeated else {**binary, "description": text}
        for name, text in files.items()
    }
    fields = model.model_json_schema(by_alias=True)
    properties.update(fields["properties"])
    required = [*files, *fields.get("required", [])]
    schema = {"type": "object", "required": required, "properties": properties, "additionalProperties": False}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def customise_openapi(
    app: FastAPI,
    request_models: list[type[BaseModel]],
    event_data: dict[str, list[type[BaseModel]]],
    open_paths: tuple[str, ...] | None = None,
) -> None:
    """Add what FastAPI cannot see: the request models (read by the routes themselves,
    described field by field), the data of streamed events (``name``: one of
    ``models``), each from the model that builds it, and, when API keys are on
    (``open_paths`` given), how to send a key to every other path."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in request_models:
                add_schema(components, model, "validation")
            for name, models in event_data.items():
                for model in models:
                    add_schema(components, model, "serialization")
                components[name] = {"oneOf": [{"$ref": f"{REF}{model.__name__}"} for model in models]}
            if open_paths is not None:
                add_security(schema, open_paths)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def add_schema(components: dict[str, Any], model: type[BaseModel], mode: Literal["validation", "serialization"]) -> None:
    model_schema = model.model_json_schema(ref_template=REF + "{model}", mode=mode)
    components.update(model_schema.pop("$defs", {}))
    components[model.__name__] = model_schema


def add_security(schema: dict[str, Any], open_paths: tuple[str, ...]) -> None:
    """The two ways to send an API key (either will do), required on every operation of
    a path that is not open; /docs then offers "Authorize"."""
    schema["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    for path, operations in schema.get("paths", {}).items():
        if path not in open_paths:
            for operation in operations.values():
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
