"""One fuzz input as it goes on the wire, and as a reproducer file: the request's bytes
exactly, so a failure is sent again as it was, whatever generated it."""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docparse.protocol import json_bytes

UNARY = "/layout-parsing"
STREAM = "/layout-parsing/stream"


@dataclass(frozen=True)
class Probe:
    """``kind`` names what made the input, for the counts (``"openapi negative"``,
    ``"pdf spliced objects"``); ``index`` is its place in the run."""

    kind: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    index: int = 0

    @property
    def streams(self) -> bool:
        return self.method == "POST" and self.path.split("?")[0] == STREAM

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "index": self.index, "method": self.method, "path": self.path,
            "headers": self.headers, "body_base64": base64.b64encode(self.body).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Probe":
        return cls(
            kind=data["kind"], method=data["method"], path=data["path"], headers=data["headers"],
            body=base64.b64decode(data["body_base64"]), index=data.get("index", 0),
        )

    def save(self, path: Path, extra: dict[str, Any]) -> None:
        """``path`` (JSON: the request and ``extra``, e.g. what came back) and next to it
        the body as it was sent and a curl command that sends it again."""
        path.write_text(json.dumps({**self.to_json(), **extra}, indent=1))
        body_file = path.with_suffix(".body")
        body_file.write_bytes(self.body)
        path.with_suffix(".sh").write_text(self.curl("${URL:-http://127.0.0.1:8080}", body_file.name) + "\n")

    def curl(self, url: str, body_file: str) -> str:
        headers = " ".join(f"-H {shlex.quote(f'{name}: {value}')}" for name, value in self.headers.items())
        return (f'cd "$(dirname "$0")" && curl -sS -N -X {self.method} {headers} '
                f'--data-binary @{shlex.quote(body_file)} "{url}{self.path}"')


def json_probe(kind: str, path: str, fields: dict[str, Any]) -> Probe:
    return Probe(kind, "POST", path, {"Content-Type": "application/json"}, json_bytes(fields))


def multipart_probe(kind: str, path: str, file: bytes, fields: dict[str, Any], boundary: str) -> Probe:
    """An upload as ``curl -F file=@… -F name=value`` sends it (fields as text)."""
    parts = [
        b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (boundary.encode(), name.encode(), str(value).encode())
        for name, value in fields.items()
    ]
    parts.append(
        b'--%s\r\nContent-Disposition: form-data; name="file"; filename="document"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n%s\r\n" % (boundary.encode(), file)
    )
    body = b"".join(parts) + b"--%s--\r\n" % boundary.encode()
    return Probe(kind, "POST", path, {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body)
