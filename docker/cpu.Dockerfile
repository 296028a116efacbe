# syntax=docker/dockerfile:1
# CPU-only Triton (compose profile "cpu"): the tritonserver of the nvidia-pytriton wheel,
# started by scripts/triton_local.py, with the engines that ship in wheels
# (HPS_LAYOUT_BACKEND=cpu, HPS_RECOGNIZER=cpu). No GPU and no VLM needed.
# The official python image is built with --enable-shared, as the Python backend stub needs.
FROM python:3.11.10-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    HPS_LAYOUT_BACKEND=cpu \
    HPS_RECOGNIZER=cpu

WORKDIR /opt/docparse
COPY pyproject.toml README.md ./
COPY docparse ./docparse
COPY docparse_triton ./docparse_triton
COPY gateway ./gateway
# The project pins its dependency ranges in pyproject.toml, which hadolint cannot see.
# hadolint ignore=DL3013
RUN python -m pip install ".[triton,gateway,cpu]" \
    && useradd --create-home --uid 10001 docparse
COPY scripts ./scripts
COPY model_repository ./model_repository

USER 10001

EXPOSE 8000 8001 8002
# triton_local binds 127.0.0.1; the flags after -- come last and win (Triton keeps the
# last value of a repeated flag), so the container listens on all interfaces.
CMD ["python", "-m", "scripts.triton_local", "--model-repository", "model_repository", \
     "--http-port", "8000", "--grpc-port", "8001", "--metrics-port", "8002", \
     "--ready-timeout", "600", "--", \
     "--http-address=0.0.0.0", "--grpc-address=0.0.0.0", "--metrics-address=0.0.0.0"]
