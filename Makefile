# DocParse HPS — the two commands: `make run` (issue #4) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run test test-unit test-integration test-e2e bench bench-peer fuzz triton gateway clean

install: $(STAMP)

# Reinstalls when pyproject.toml changes. numpy stays < 2: the Triton Python stub needs it.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' || \
	  { echo "error: Python >= 3.11 is needed (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[paddle,triton,gateway,cpu,dev,helm]"
	touch $(STAMP)

run: install
	$(PY) -m scripts.run_local

test: install
	$(PY) -m pytest -q

test-unit: install
	$(PY) -m pytest -q tests/unit

test-integration: install
	$(PY) -m pytest -q tests/integration

test-e2e: install
	$(PY) -m pytest -q tests/e2e

# Short standard benchmark (about 2 min on 2 cores): the whole stack against the VLM
# simulator; JSON, Markdown and PNG under bench/results/<timestamp>/ (see BENCHMARKS.md).
bench: install
	$(PY) -m bench.load --concurrency 1,4,16,64 --duration 10 --vlm-latency 0.2 --overhead-requests 20

# Side by side with the GLM-OCR SDK (BENCHMARKS.md, "Peer"); the SDK gets its own venv.
PEER_VENV := bench/.venv-peer
$(PEER_VENV)/.installed: bench/peer-requirements.txt
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet --no-deps -r bench/peer-requirements.txt
	touch $@

bench-peer: install $(PEER_VENV)/.installed
	$(PY) -m bench.peer

# Fuzzing at scale (RELIABILITY.md): the whole stack on free ports, 10,000 inputs made
# from --seed (OpenAPI-generated requests for every route, byte-level mutants of real PDFs
# and images); no 5xx, no hang, no crashed process. Results and a reproducer per failure
# under bench/results/fuzz-<time>/; exit code 1 unless clean. A short run is in the suite.
fuzz: install
	$(PY) -m bench.fuzz --inputs 10000

# A local tritonserver on 8000/8001/8002 (set HPS_LAYOUT_MODEL_DIR and HPS_VLM_URL first).
triton: install
	scripts/tritonserver-local

# The gateway in the foreground on HPS_HOST:HPS_PORT (0.0.0.0:8080), talking to HPS_TRITON_URL.
gateway: install
	$(VENV)/bin/gunicorn -c gateway/gunicorn.conf.py

clean:
	rm -rf $(VENV) .pytest_cache
