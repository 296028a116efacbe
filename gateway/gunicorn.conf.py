"""gunicorn settings for the gateway, all read from the one settings object:

    gunicorn -c gateway/gunicorn.conf.py

UVICORN_WORKERS worker processes, each with its own event loop, Triton client and
concurrency limits; HPS_GRACEFUL_TIMEOUT seconds for in-flight requests on SIGTERM. The
API keys are checked before any worker starts, and a warning is logged when the gateway
listens beyond loopback without keys.
"""

import os
import shutil
import sys
import tempfile

from docparse.settings import Settings, SettingsError
from gateway.keys import KeyConfigError, exposure_warning, load_keyring

try:
    _settings = Settings.load()
except SettingsError as _error:
    sys.exit(f"error: the gateway's settings are wrong: {_error}")
try:  # read again by each worker; checked here so that a bad file stops the start
    _exposure = exposure_warning(_settings.gateway.host, load_keyring(_settings.auth))
except KeyConfigError as _error:
    sys.exit(f"error: the gateway's API keys are wrong: {_error}")

wsgi_app = "gateway.app:create_app()"
bind = [f"{_settings.gateway.host}:{_settings.gateway.port}"]
workers = _settings.gateway.workers
worker_class = "gateway.worker.GatewayWorker"
graceful_timeout = int(_settings.gateway.graceful_timeout)
# A worker that stops answering the master's heartbeat for this long is restarted. Long
# documents do not block the heartbeat: the event loop keeps running while they stream.
timeout = 60
keepalive = 75  # longer than common load balancers' idle timeout (60 s)
accesslog = None  # the gateway writes its own structured line per request
# gunicorn's control socket (gunicornc) is not used; left on, every gateway on a host
# shares $HOME/.gunicorn/gunicorn.ctl, and one stopping removes the others' socket.
control_socket_disable = True
errorlog = "-"
loglevel = _settings.general.log_level.lower()

# Metrics of all workers in one scrape (gateway/metrics.py).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hps-metrics-")
    _own_metrics_dir = True
else:
    _own_metrics_dir = False

# Per-key quotas counted once for all workers. Imported only now: it imports
# prometheus_client, which reads PROMETHEUS_MULTIPROC_DIR once, on import.
from gateway.quotas import STORE_ENV, QuotaStore  # noqa: E402

if not os.environ.get(STORE_ENV):
    os.environ[STORE_ENV] = os.path.join(tempfile.mkdtemp(prefix="hps-quotas-"), "quotas.sqlite")
    _own_quota_store = True
else:
    _own_quota_store = False


def when_ready(server):
    if _exposure:
        server.log.warning("%s", _exposure)


def child_exit(server, worker):  # noqa: ARG001 - gunicorn hook signature
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    QuotaStore.forget_process(os.environ[STORE_ENV], worker.pid)  # what a dead worker held


def on_exit(server):  # noqa: ARG001 - gunicorn hook signature
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    if _own_quota_store:
        shutil.rmtree(os.path.dirname(os.environ[STORE_ENV]), ignore_errors=True)
