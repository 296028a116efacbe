#!/bin/sh
# Start tritonserver on the DocParse model repository inside the container.
# The one place the container's server flags live (docker/tritonserver.Dockerfile runs it).
# The shared flags (--backend-config, --exit-*) must match scripts/triton_local.py:
# tests/unit/test_deploy.py fails when one changes without the other.
# Extra tritonserver flags may be passed as arguments.
set -eu

MODEL_REPOSITORY="${MODEL_REPOSITORY:-/opt/docparse/model_repository}"
# gpu: layout_detection loads model_repository/layout_detection/configs/gpu.pbtxt.
MODEL_CONFIG_NAME="${TRITON_MODEL_CONFIG_NAME:-gpu}"

exec tritonserver \
    --model-repository="${MODEL_REPOSITORY}" \
    --model-config-name="${MODEL_CONFIG_NAME}" \
    --http-address=0.0.0.0 \
    --grpc-address=0.0.0.0 \
    --metrics-address=0.0.0.0 \
    --http-port=8000 \
    --grpc-port=8001 \
    --metrics-port=8002 \
    --exit-on-error=true \
    --exit-timeout-secs=30 \
    --grpc-keepalive-permit-without-calls=1 \
    --grpc-http2-min-recv-ping-interval-without-data=10000 \
    --grpc-http2-max-ping-strikes=0 \
    --backend-config=python,shm-default-byte-size=16777216 \
    --backend-config=python,shm-growth-byte-size=16777216 \
    "$@"
