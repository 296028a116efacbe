#!/usr/bin/env bash
# Prepare a host for `docker compose up`: check the prerequisites, create .env from
# .env.example (never overwritten), download the model files (GLM-OCR weights and the
# PP-DocLayoutV3 inference model into models/), then `docker compose build`.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: ./prepare.sh [--cpu] [--skip-download] [--dry-run] [--help]

  --cpu            CPU-only host: skip the GPU checks (nvidia-smi, NVIDIA container
                   toolkit, compute capability) and the GPU model downloads
  --skip-download  do not download model files into models/
  --dry-run        print every step it would take ("would: ...") and every missing
                   prerequisite, change nothing; exit 1 when something is missing
  --help           this text
USAGE
}

cpu=0
skip_download=0
dry_run=0
for arg in "$@"; do
    case "$arg" in
        --cpu) cpu=1 ;;
        --skip-download) skip_download=1 ;;
        --dry-run) dry_run=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "error: unknown option: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

LAYOUT_MODEL=PP-DocLayoutV3
# PaddleX's official inference-model download (paddlex/inference/utils/official_models.py).
LAYOUT_URL="https://paddle-model-ecology.bj.bcebos.com/paddlex/official_inference_model/paddle3.0.0/${LAYOUT_MODEL}_infer.tar"
LAYOUT_DIR="models/${LAYOUT_MODEL}"
LAYOUT_FILES=(inference.yml inference.json inference.pdiparams)
VLM_REPO=zai-org/GLM-OCR
VLM_DIR=models/GLM-OCR

say() { printf '%s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }
warn() { printf 'warning: %s\n' "$*" >&2; }
# A missing prerequisite: said at once and counted, so that every one is named in one run
# (a real run stops after the checks, before changing anything; --dry-run goes on).
missing=()
lack() { printf 'missing: %s\n' "$2" >&2; missing+=("$1"); }
missing_list() { local IFS=,; local names="${missing[*]}"; printf '%s' "${names//,/, }"; }
# Run a command, or print it under --dry-run.
run() {
    if [ "$dry_run" = 1 ]; then
        say "would: $*"
    else
        say "+ $*"
        "$@"
    fi
}

# --- prerequisites ---------------------------------------------------------------------
check_prerequisites() {
    if ! command -v docker >/dev/null 2>&1; then
        lack docker "docker is not installed: install Docker Engine (https://docs.docker.com/engine/install/)"
    fi
    if docker compose version >/dev/null 2>&1; then
        say "ok: $(docker compose version 2>/dev/null | head -n 1)"
    else
        lack "docker compose" "docker compose (v2) is missing: install the docker-compose-plugin package (https://docs.docker.com/compose/install/linux/)"
    fi
    if [ "$cpu" = 1 ]; then
        say "ok: --cpu: GPU checks skipped"
        return
    fi
    local driver=1
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        driver=0
        lack "NVIDIA driver" "the NVIDIA driver: nvidia-smi is not found: install the NVIDIA driver (https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/), or run with --cpu"
    fi
    if docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia \
        || command -v nvidia-ctk >/dev/null 2>&1; then
        [ "$driver" = 1 ] && say "ok: NVIDIA driver and container toolkit"
    else
        lack "NVIDIA Container Toolkit" "the NVIDIA Container Toolkit is missing: install it and run 'sudo nvidia-ctk runtime configure --runtime=docker' (https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html)"
    fi
    [ "$driver" = 1 ] || return 0
    local gpu="${GPU_DEVICE_ID:-0}" cap
    if ! cap="$(nvidia-smi -i "$gpu" --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' ')"; then
        lack "GPU $gpu" "nvidia-smi cannot query GPU $gpu (GPU_DEVICE_ID)"
    elif [ -z "$cap" ]; then
        warn "could not read the compute capability of GPU $gpu"
    elif awk -v c="$cap" 'BEGIN { exit !(c + 0 < 8.0) }'; then
        warn "GPU $gpu has compute capability $cap; 8.0 or newer (Ampere+) is recommended for vLLM"
    else
        say "ok: GPU $gpu compute capability $cap"
    fi
}

# A real run stops here, naming everything that is missing, before it changes anything.
stop_if_missing() {
    [ ${#missing[@]} -eq 0 ] && return
    [ "$dry_run" = 1 ] && return
    fail "${#missing[@]} prerequisite(s) missing: $(missing_list)"
}

# --- disk ------------------------------------------------------------------------------
check_disk() {
    local need_gb=50 free_kb
    [ "$cpu" = 1 ] && need_gb=10
    free_kb="$(df -Pk . 2>/dev/null | awk 'NR == 2 { print $4 }')" || free_kb=""
    if [ -z "$free_kb" ]; then
        warn "could not read the free disk space here"
    elif [ "$free_kb" -lt $((need_gb * 1024 * 1024)) ]; then
        warn "$((free_kb / 1024 / 1024)) GB free here; images and models need about ${need_gb} GB"
    else
        say "ok: $((free_kb / 1024 / 1024)) GB free (about ${need_gb} GB needed)"
    fi
}

# --- .env ------------------------------------------------------------------------------
# COMPOSE_PROFILES in .env makes `docker compose up` start the gpu or the cpu stack.
make_env() {
    local profile=gpu current
    [ "$cpu" = 1 ] && profile=cpu
    if [ -e .env ]; then
        say "ok: .env exists (left as it is)"
        current="$(sed -n 's/^COMPOSE_PROFILES=//p' .env | tail -n 1)"
        [ "$current" = "$profile" ] \
            || warn ".env has COMPOSE_PROFILES=${current:-(unset)}; set COMPOSE_PROFILES=$profile there for this host"
    else
        run cp .env.example .env
        run sed -i "s/^COMPOSE_PROFILES=.*/COMPOSE_PROFILES=$profile/" .env
    fi
}

# --- model files -----------------------------------------------------------------------
layout_present() {
    local f
    for f in "${LAYOUT_FILES[@]}"; do
        [ -s "$LAYOUT_DIR/$f" ] || return 1
    done
}

download_layout() {
    if layout_present; then
        say "ok: $LAYOUT_DIR has ${LAYOUT_FILES[*]}"
        return
    fi
    if ! command -v curl >/dev/null 2>&1 && ! command -v wget >/dev/null 2>&1; then
        [ "$dry_run" = 1 ] || fail "curl or wget is needed to download $LAYOUT_MODEL"
        lack "curl or wget" "curl or wget is needed to download $LAYOUT_MODEL"
    fi
    local tmp="models/.${LAYOUT_MODEL}_infer.tar"
    run mkdir -p models
    if command -v curl >/dev/null 2>&1; then
        run curl -fL --retry 3 -C - -o "$tmp" "$LAYOUT_URL"
    else
        run wget -c -O "$tmp" "$LAYOUT_URL"
    fi
    run mkdir -p "$LAYOUT_DIR"
    # The tar holds one folder PP-DocLayoutV3_infer/ with the files.
    run tar -xf "$tmp" -C "$LAYOUT_DIR" --strip-components=1
    if [ "$dry_run" = 1 ]; then
        say "would: check $LAYOUT_DIR has ${LAYOUT_FILES[*]}"
        return
    fi
    layout_present || fail "$LAYOUT_DIR lacks one of ${LAYOUT_FILES[*]} after extracting $LAYOUT_URL"
    grep -q "model_name: *$LAYOUT_MODEL\b" "$LAYOUT_DIR/inference.yml" \
        || fail "$LAYOUT_DIR/inference.yml is not the $LAYOUT_MODEL model (Global.model_name differs)"
    rm -f "$tmp"
    say "ok: $LAYOUT_DIR has ${LAYOUT_FILES[*]}"
}

# Every weight file the checkpoint index names is present and not empty.
verify_vlm() {
    local index="$VLM_DIR/model.safetensors.index.json" files f
    [ -s "$VLM_DIR/config.json" ] || fail "$VLM_DIR/config.json is missing after the download"
    if [ -s "$index" ]; then
        files="$(grep -o '"[^"]*\.safetensors"' "$index" | tr -d '"' | sort -u)"
    else
        files=model.safetensors
    fi
    for f in $files; do
        [ -s "$VLM_DIR/$f" ] || fail "$VLM_DIR/$f is missing or empty after the download"
    done
    say "ok: $VLM_DIR has config.json and $(echo "$files" | wc -w) weight file(s)"
}

download_vlm() {
    local hf=huggingface-cli
    command -v "$hf" >/dev/null 2>&1 || ! command -v hf >/dev/null 2>&1 || hf=hf
    if ! command -v "$hf" >/dev/null 2>&1; then
        [ "$dry_run" = 1 ] || fail "huggingface-cli is missing: pip install -U 'huggingface_hub[cli]'"
        lack huggingface-cli "huggingface-cli is missing (it downloads $VLM_REPO): pip install -U 'huggingface_hub[cli]'"
    fi
    # Resumable: complete files are skipped. verify_vlm then checks every file is there.
    run "$hf" download "$VLM_REPO" --local-dir "$VLM_DIR"
    if [ "$dry_run" = 1 ]; then
        say "would: check $VLM_DIR has config.json and every weight file of its index"
    else
        verify_vlm
    fi
}

main() {
    [ "$dry_run" = 1 ] && say "dry run: nothing is changed"
    check_prerequisites
    stop_if_missing
    check_disk
    make_env
    if [ "$skip_download" = 1 ]; then
        say "ok: --skip-download: model files not downloaded"
        if [ "$cpu" = 0 ] && { ! layout_present || [ ! -s "$VLM_DIR/config.json" ]; }; then
            warn "$LAYOUT_DIR or $VLM_DIR is incomplete: the gpu stack will not start without them"
        fi
    elif [ "$cpu" = 1 ]; then
        say "ok: --cpu: the CPU engines ship in wheels, nothing to download"
    else
        download_vlm
        download_layout
    fi
    if [ "$cpu" = 1 ]; then
        run docker compose --profile cpu build
    else
        run docker compose --profile gpu build
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        printf 'dry run: %d prerequisite(s) missing: %s\n' "${#missing[@]}" "$(missing_list)" >&2
        exit 1
    fi
    say "done: start with 'docker compose up -d', then: curl -s localhost:8080/health/ready"
}

main
