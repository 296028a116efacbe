"""The web page: ``/`` and its assets under ``/static/``, all served by the gateway
(no CDN: the front-end libraries are vendored under ``gateway/static/vendor/``).

The page and its assets are public even when API keys are on: they hold nothing secret,
and the page asks for a key and sends it with each API call."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_PREFIX = "/static"
PAGE_PATHS = ("/", "/index.html")

router = APIRouter(include_in_schema=False)


@router.get("/")
@router.get("/index.html")
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


class RevalidatedFiles(StaticFiles):
    """Files that the browser checks again (a 304 by ETag when unchanged) each time the
    page loads: their paths stay the same across versions of the gateway, so a cached
    copy must never outlive an upgrade."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def static_files() -> StaticFiles:
    """The page's scripts, styles and vendored libraries."""
    return RevalidatedFiles(directory=STATIC_DIR)


def is_public(path: str) -> bool:
    """The page and its assets: served without a key."""
    return path in PAGE_PATHS or path.startswith(STATIC_PREFIX + "/")
