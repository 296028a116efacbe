"""API keys, per-key quotas and CORS, end to end: gunicorn (2 workers) → tritonserver →
VLM stand-in, over real HTTP."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import yaml

from docparse.cli import sse_events
from gateway.keys import hash_key, new_key
from scripts.gateway_local import GatewayServer
from scripts.processes import LaunchError
from scripts.triton_local import TritonServer
from testkit.documents import sample_image, sample_pdf
from tests.e2e.conftest import gateway_env
from tests.e2e.test_gateway import body_for, wait_for
from vlmsim import SimulatorProcess

pytestmark = pytest.mark.triton

ALICE, BOB = new_key(), new_key()
ORIGIN = "https://app.example"
IMAGE = body_for(sample_image("PNG"))


def write_keys(path: Path, entries: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"keys": entries}))
    return path


def keyed_server(triton: TritonServer, vlm: SimulatorProcess, folder: Path, **settings: object) -> GatewayServer:
    return GatewayServer(env=gateway_env(triton, vlm, **settings), workers=2, log_path=folder / "gateway.log")


def access_lines(server: GatewayServer) -> list[dict]:
    marker = "docparse.gateway.access: "
    return [json.loads(line.split(marker, 1)[1]) for line in server.log_tail(2000).splitlines() if marker in line]


@pytest.fixture(scope="module")
def keyed(triton: TritonServer, vlm_server: SimulatorProcess, tmp_path_factory) -> Iterator[GatewayServer]:
    """Keys on (alice in the file, bob inline), the default open paths, CORS for ORIGIN."""
    folder = tmp_path_factory.mktemp("keyed")
    keys = write_keys(folder / "keys.yaml", [{"name": "alice", "sha256": hash_key(ALICE)}])
    server = keyed_server(
        triton, vlm_server, folder, api_keys_file=keys, api_keys=f"bob:{hash_key(BOB)}", cors_origins=ORIGIN
    )
    with server:
        yield server


# --- API keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [("POST", "/layout-parsing"), ("POST", "/layout-parsing/stream"),
                                              ("GET", "/metrics"), ("GET", "/docs"), ("GET", "/openapi.json")])
def test_no_key_is_a_401_envelope_saying_how_to_send_one(keyed, method, path):
    response = httpx.request(method, f"{keyed.url}{path}", json=IMAGE, timeout=30)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="DocParse HPS"'
    envelope = response.json()
    assert envelope["errorCode"] == 401 and envelope["logId"]
    assert "Authorization: Bearer <key>" in envelope["errorMsg"] and "X-API-Key" in envelope["errorMsg"]


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer dp_wrong"}, {"X-API-Key": "dp_wrong"},
                                     {"Authorization": f"Basic {ALICE}"}, {"Authorization": ALICE}])
def test_a_wrong_key_is_a_401(keyed, headers):
    response = httpx.post(f"{keyed.url}/layout-parsing", json=IMAGE, headers=headers, timeout=30)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="DocParse HPS"')


def test_a_key_works_as_bearer_or_x_api_key_and_the_log_names_it_never_shows_it(keyed, vlm):
    bearer = httpx.post(f"{keyed.url}/layout-parsing", json={**IMAGE, "logId": "by-bearer"},
                        headers={"Authorization": f"Bearer {ALICE}"}, timeout=120)
    assert bearer.status_code == 200 and bearer.json()["errorCode"] == 0
    with httpx.stream("POST", f"{keyed.url}/layout-parsing/stream", json={**IMAGE, "logId": "by-header"},
                      headers={"X-API-Key": BOB}, timeout=120) as streamed:
        assert streamed.status_code == 200
        assert [name for name, _ in sse_events(streamed)] == ["page", "final"]

    # A stream's line is written when the worker has finished sending it: wait for it.
    deadline = time.monotonic() + 10
    while "by-header" not in (lines := {line["logId"]: line for line in access_lines(keyed)}):
        assert time.monotonic() < deadline, "no access-log line for the stream within 10 s"
        time.sleep(0.05)
    assert lines["by-bearer"]["key"] == "alice" and lines["by-header"]["key"] == "bob"
    log = keyed.log_tail(2000)
    assert ALICE not in log and BOB not in log
    metrics = httpx.get(f"{keyed.url}/metrics", headers={"X-API-Key": ALICE}, timeout=30).text
    assert 'hps_key_requests_total{key="alice",route="/layout-parsing",status="200"}' in metrics
    assert 'hps_key_pages_total{key="bob"}' in metrics
    assert ALICE not in metrics


def test_health_stays_open_and_metrics_and_docs_need_a_key(keyed):
    assert httpx.get(f"{keyed.url}/health", timeout=30).status_code == 200
    assert httpx.get(f"{keyed.url}/health/ready", timeout=30).status_code == 200
    for path in ("/metrics", "/docs", "/redoc", "/openapi.json"):
        assert httpx.get(f"{keyed.url}{path}", timeout=30).status_code == 401, path
        assert httpx.get(f"{keyed.url}{path}", headers={"X-API-Key": ALICE}, timeout=30).status_code == 200, path
    schema = httpx.get(f"{keyed.url}/openapi.json", headers={"X-API-Key": ALICE}, timeout=30).json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert {"401", "429"} <= set(schema["paths"]["/layout-parsing"]["post"]["responses"])
    assert "security" not in schema["paths"]["/health"]["get"]


def test_the_glm_ocr_api_needs_a_key_and_its_errors_keep_its_shape_while_the_web_page_is_open(keyed, vlm):
    image = {"image": ("page.png", sample_image(), "image/png")}
    refused = httpx.post(f"{keyed.url}/api/ocr/recognize", files=image, timeout=30)
    assert refused.status_code == 401 and "X-API-Key" in refused.json()["error"]
    read = httpx.post(f"{keyed.url}/api/ocr/recognize", files=image, headers={"X-API-Key": ALICE}, timeout=120)
    assert read.status_code == 200 and read.json()["text"].startswith("text ")
    assert httpx.get(f"{keyed.url}/api/info", timeout=30).status_code == 401
    assert httpx.get(f"{keyed.url}/", timeout=30).status_code == 200  # the page asks for a key itself


def test_the_open_paths_are_configurable(start_gateway):
    server = start_gateway(api_keys=f"alice:{hash_key(ALICE)}", auth_open_paths="/health,/metrics,/docs,/openapi.json")
    for path in ("/health", "/metrics", "/docs", "/openapi.json"):
        assert httpx.get(f"{server.url}{path}", timeout=30).status_code == 200, path
    assert httpx.get(f"{server.url}/health/ready", timeout=30).status_code == 401
    assert httpx.post(f"{server.url}/layout-parsing", json=IMAGE, timeout=30).status_code == 401


def test_a_wrong_keys_file_stops_the_start_naming_the_file_and_line(start_gateway, tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys:\n  - name: alice\n    sha256: {hash_key(ALICE)}\n  - name: bob\n    sha256: nothex\n")
    with pytest.raises(LaunchError) as failed:
        start_gateway(api_keys_file=keys)
    assert f"error: the gateway's API keys are wrong: {keys}:4: sha256: must be 64 hex digits" in str(failed.value)


# --- CORS --------------------------------------------------------------------------------------


def preflight(server: GatewayServer, origin: str) -> httpx.Response:
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization, content-type"}
    return httpx.options(f"{server.url}/layout-parsing", headers=headers, timeout=30)


def test_cors_answers_a_preflight_from_an_allowed_origin_only(keyed):
    allowed = preflight(keyed, ORIGIN)
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    assert "access-control-allow-origin" not in preflight(keyed, "https://elsewhere.example").headers

    # The answers themselves, errors too, carry what a browser needs to read them.
    refused = httpx.post(f"{keyed.url}/layout-parsing", json=IMAGE, headers={"Origin": ORIGIN}, timeout=30)
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Log-Id" in refused.headers["Access-Control-Expose-Headers"]
    other = httpx.post(
        f"{keyed.url}/layout-parsing", json=IMAGE, headers={"Origin": "https://elsewhere.example"}, timeout=30
    )
    assert "access-control-allow-origin" not in other.headers


def test_cors_is_off_by_default(gateway):
    assert "access-control-allow-origin" not in preflight(gateway, ORIGIN).headers


# --- quotas ------------------------------------------------------------------------------------

KEYS = {name: new_key() for name in ("one-at-a-time", "rate", "shared", "pages", "job-pages")}
LIMITS = {
    "one-at-a-time": {"concurrent_requests": 1},
    "rate": {"requests_per_minute": 60, "requests_burst": 1},  # one a second
    "shared": {"requests_per_minute": 0.01, "requests_burst": 3},  # 3, then none for the test
    "pages": {"pages_per_minute": 2},
    "job-pages": {"pages_per_minute": 2},
}


@pytest.fixture(scope="module")
def quota_gateway(triton: TritonServer, vlm_server: SimulatorProcess, tmp_path_factory) -> Iterator[GatewayServer]:
    folder = tmp_path_factory.mktemp("quotas")
    entries = [{"name": name, "sha256": hash_key(key), "limits": LIMITS[name]} for name, key in KEYS.items()]
    with keyed_server(triton, vlm_server, folder, api_keys_file=write_keys(folder / "keys.yaml", entries)) as server:
        yield server


def post_as(server: GatewayServer, name: str, body: dict = IMAGE) -> httpx.Response:
    """One request on a connection of its own: either worker may take it."""
    return httpx.post(f"{server.url}/layout-parsing", json=body, headers={"X-API-Key": KEYS[name]}, timeout=120)


def test_requests_at_once_over_the_key_limit_get_429_whichever_worker(quota_gateway, vlm):
    vlm.configure(latency=0.3, max_concurrency=1)  # 2 pages x 5 regions, one at a time: 3 s
    url = f"{quota_gateway.url}/layout-parsing/stream"
    with httpx.stream("POST", url, json=body_for(sample_pdf(pages=2)), headers={"X-API-Key": KEYS["one-at-a-time"]},
                      timeout=120) as held:
        events = sse_events(held)
        assert next(events)[0] == "page"  # in progress now
        with ThreadPoolExecutor(6) as pool:
            refused = list(pool.map(lambda _: post_as(quota_gateway, "one-at-a-time"), range(6)))
        assert [r.status_code for r in refused] == [429] * 6
        assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
        assert "requests at once: 1 (1 in progress)" in refused[0].json()["errorMsg"]
        assert [name for name, _ in events] == ["page", "final"]
    vlm.configure(latency=0.02, max_concurrency=64)
    # Counted out once the answer is sent: a moment after the client has read it.
    wait_for(lambda: post_as(quota_gateway, "one-at-a-time").status_code == 200, 10, "the place freed")


def test_the_request_rate_gives_429_with_retry_after_then_admits_after_the_refill(quota_gateway, vlm):
    assert post_as(quota_gateway, "rate").status_code == 200
    refused = post_as(quota_gateway, "rate")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.json()["errorCode"] == 429 and "requests per minute: 60" in refused.json()["errorMsg"]
    wait_for(lambda: post_as(quota_gateway, "rate").status_code == 200, 10, "the bucket refilled")


def test_the_rate_is_one_count_for_both_workers(quota_gateway):
    """8 requests on their own connections at once: 3 admitted in all (each then a 422,
    its body being wrong), not 3 per worker."""
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: post_as(quota_gateway, "shared", {}).status_code, range(8)))
    assert statuses == [422] * 3 + [429] * 5


def test_pages_are_charged_and_a_key_in_debt_waits(quota_gateway, vlm):
    assert post_as(quota_gateway, "pages", body_for(sample_pdf(pages=3))).status_code == 200
    refused = post_as(quota_gateway, "pages")
    assert refused.status_code == 429 and "pages per minute: 2" in refused.json()["errorMsg"]
    # 3 pages from a bucket of 2: one page in debt, and one page is needed, at one every 30 s.
    assert 50 <= int(refused.headers["Retry-After"]) <= 60


def test_a_key_sees_and_cancels_only_its_own_jobs(keyed):
    as_alice, as_bob = {"X-API-Key": ALICE}, {"X-API-Key": BOB}
    body = {"file": base64.b64encode(sample_pdf(1)).decode()}
    job = httpx.post(f"{keyed.url}/jobs", json=body, headers=as_alice, timeout=30).json()
    assert httpx.get(f"{keyed.url}/jobs/{job['jobId']}", headers=as_alice, timeout=30).status_code == 200
    for method in ("GET", "DELETE"):
        other = httpx.request(method, f"{keyed.url}/jobs/{job['jobId']}", headers=as_bob, timeout=30)
        assert other.status_code == 404, (method, other.text)
    assert httpx.get(f"{keyed.url}/jobs/{job['jobId']}/result", headers=as_bob, timeout=30).status_code == 404
    listed = httpx.get(f"{keyed.url}/jobs", headers=as_bob, timeout=30).json()["jobs"]
    assert job["jobId"] not in [j["jobId"] for j in listed]
    assert httpx.get(f"{keyed.url}/jobs", timeout=30).status_code == 401


def test_the_cli_sends_docparse_api_key(keyed, monkeypatch, tmp_path, capsys):
    from docparse.cli import main

    document = tmp_path / "report.pdf"
    document.write_bytes(sample_pdf(pages=1))
    monkeypatch.setenv("DOCPARSE_URL", keyed.url)
    monkeypatch.delenv("DOCPARSE_API_KEY", raising=False)
    assert main(["parse", str(document), "--out", str(tmp_path / "refused")]) == 1
    assert "error 401" in capsys.readouterr().err
    monkeypatch.setenv("DOCPARSE_API_KEY", ALICE)
    assert main(["parse", str(document), "--out", str(tmp_path / "parsed")]) == 0
    assert (tmp_path / "parsed" / "report.md").read_text().strip()
    assert main(["submit", str(document), "--wait", "--out", str(tmp_path / "job")]) == 0
    assert (tmp_path / "job" / "report.md").read_text() == (tmp_path / "parsed" / "report.md").read_text()


def test_a_job_s_pages_are_charged_to_its_key(quota_gateway, vlm):
    headers = {"X-API-Key": KEYS["job-pages"]}
    job = httpx.post(f"{quota_gateway.url}/jobs", json=body_for(sample_pdf(pages=3)), headers=headers, timeout=30)
    assert job.status_code == 202, job.text
    path = f"{quota_gateway.url}/jobs/{job.json()['jobId']}"
    wait_for(lambda: httpx.get(path, headers=headers, timeout=30).json()["status"] == "succeeded", 60, "the job")
    refused = httpx.post(f"{quota_gateway.url}/jobs", json=body_for(sample_pdf(pages=1)), headers=headers, timeout=30)
    assert refused.status_code == 429 and "pages per minute: 2" in refused.json()["errorMsg"]
    assert post_as(quota_gateway, "job-pages").status_code == 429
