# syntax=docker/dockerfile:1
# The REST gateway: FastAPI under gunicorn with uvicorn workers (gateway/gunicorn.conf.py).
FROM python:3.11.10-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    HPS_HOST=0.0.0.0 \
    HPS_PORT=8080 \
    HPS_DATA_DIR=/data

WORKDIR /opt/docparse
COPY pyproject.toml README.md ./
COPY docparse ./docparse
COPY docparse_triton ./docparse_triton
COPY gateway ./gateway
# The project pins its dependency ranges in pyproject.toml, which hadolint cannot see.
# hadolint ignore=DL3013
RUN python -m pip install ".[gateway]" \
    && useradd --create-home --uid 10001 docparse \
    && mkdir /data && chown 10001 /data
USER 10001
# The job store (SQLite) lives here; compose mounts a named volume so jobs outlive the container.
VOLUME /data

EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HPS_PORT', '8080'), timeout=4)"]
CMD ["gunicorn", "-c", "gateway/gunicorn.conf.py"]
