"""The web page's files without a browser (tests/browser has the page in Chromium): every
asset the page names is there, nothing is fetched from elsewhere, the vendored libraries
match their pins and carry their licences, and the gateway serves the files to be
revalidated."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.routes import web

STATIC = web.STATIC_DIR
REPO_ROOT = STATIC.parents[1]
VENDOR = STATIC / "vendor"
OWN_FILES = sorted([*STATIC.glob("js/*.js"), *STATIC.glob("css/*.css"), STATIC / "index.html"])


def test_every_asset_the_page_names_is_served_from_static():
    html = (STATIC / "index.html").read_text()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/js/app.js" in assets
    for asset in assets:
        if asset.startswith("data:"):
            continue
        assert asset.startswith(web.STATIC_PREFIX + "/"), asset
        assert (STATIC / asset.removeprefix(web.STATIC_PREFIX + "/")).is_file(), asset


def test_every_module_import_resolves():
    for path in STATIC.glob("js/*.js"):
        for target in re.findall(r'^\s*import\b[^;]*?from\s+"([^"]+)"', path.read_text(), flags=re.M):
            assert target.startswith("."), (path.name, target)
            assert (path.parent / target).resolve().is_file(), (path.name, target)
        for target in re.findall(r'import\(`\$\{PDFJS\}/([^`]+)`\)', path.read_text()):
            assert (VENDOR / "pdfjs-dist" / target).is_file(), target


def test_nothing_comes_from_another_site():
    for path in OWN_FILES:
        assert not re.search(r"\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", path.read_text(), flags=re.I), path


def test_own_files_stay_small():
    assert {p.name for p in OWN_FILES} >= {"app.js", "api.js", "sse.js", "tabs.js", "app.css", "index.html"}
    long = {p.name: n for p in OWN_FILES if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long


def test_vendored_libraries_match_their_pins_and_carry_their_licences():
    pins = json.loads((REPO_ROOT / "web" / "package.json").read_text())["dependencies"]
    lock = json.loads((REPO_ROOT / "web" / "package-lock.json").read_text())["packages"]
    listed = {}
    for line in (VENDOR / "VERSIONS.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version, licence = line.split(" ", 2)
            listed[name] = version
            assert licence
    assert listed == pins
    for name, version in pins.items():
        assert lock[f"node_modules/{name}"]["version"] == version
        assert list((VENDOR / name).glob("LICENSE*")), name
    assert sorted(p.name for p in VENDOR.iterdir() if p.is_dir()) == sorted(pins)


def test_files_are_served_to_be_revalidated():
    app = FastAPI()
    app.include_router(web.router)
    app.mount(web.STATIC_PREFIX, web.static_files())
    with TestClient(app) as client:
        page = client.get("/")
        module = client.get("/static/js/app.js")
        pdfjs = client.get("/static/vendor/pdfjs-dist/build/pdf.min.mjs")
        missing = client.get("/static/js/nothing.js")
    assert page.status_code == 200 and "<title>DocParse HPS</title>" in page.text
    for answer in (page, module, pdfjs):
        assert answer.headers["cache-control"] == "no-cache"
        assert answer.headers["etag"]
    for answer in (module, pdfjs):  # module scripts need a JavaScript type
        assert answer.headers["content-type"].split(";")[0] in {"text/javascript", "application/javascript"}
    assert missing.status_code == 404
    assert web.is_public("/") and web.is_public("/static/vendor/VERSIONS.txt") and not web.is_public("/layout-parsing")
