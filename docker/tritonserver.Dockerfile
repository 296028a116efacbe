# syntax=docker/dockerfile:1
# Triton with the DocParse model repository and PP-DocLayoutV3 on the GPU.
# Triton 24.10 = server 2.51, the version of the local server (nvidia-pytriton's).
# Its Python 3.10 runs the Python backend models; CUDA 12.6 runtime.
FROM nvcr.io/nvidia/tritonserver:24.10-py3

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

# paddlepaddle-gpu 3.3.1 from Paddle's own index for CUDA 12.6 (cu126 wheels; the
# base image ships CUDA 12.6). PaddleX's PP-DocLayout predictor and numpy 1.x (the
# Triton Python backend stub is built against numpy 1.x).
RUN python3 -m pip install \
        "paddlepaddle-gpu==3.3.1" \
        --index-url https://www.paddlepaddle.org.cn/packages/stable/cu126/ \
    && python3 -m pip install \
        "paddlex[ocr-core]==3.7.2" \
        "numpy<2" \
        "tritonclient[grpc,http]>=2.50,<3"

WORKDIR /opt/docparse
COPY pyproject.toml README.md ./
COPY docparse ./docparse
COPY docparse_triton ./docparse_triton
COPY gateway ./gateway
# The image's Python is 3.10 (the Python backend stub is built for it) while the project
# declares >=3.11: the code Triton loads (docparse, docparse_triton, model_repository)
# uses no 3.11-only feature, which tests/unit/test_deploy.py checks with vermin (only
# gateway/ needs 3.11, and it runs in its own 3.11 image).
RUN python3 -m pip install --ignore-requires-python . "numpy<2"

COPY model_repository ./model_repository
COPY docker/tritonserver-entrypoint.sh /usr/local/bin/tritonserver-entrypoint.sh

# The base image's non-root user triton-server (uid 1000).
USER 1000
ENV HOME=/home/triton-server \
    PADDLE_PDX_CACHE_HOME=/tmp/paddlex

EXPOSE 8000 8001 8002
ENTRYPOINT ["/usr/local/bin/tritonserver-entrypoint.sh"]
CMD []
