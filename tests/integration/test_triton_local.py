"""The local tritonserver launcher leaves nothing behind, even when it has to kill."""

from __future__ import annotations

import shutil
from pathlib import Path

from scripts.triton_local import DEFAULT_MODEL_REPOSITORY, TritonServer


def test_a_killed_server_leaves_no_shared_memory(tmp_path: Path):
    # One light model is enough: each Python-backend stub gets a region in /dev/shm.
    repository = tmp_path / "repository"
    shutil.copytree(DEFAULT_MODEL_REPOSITORY / "pdf_render", repository / "pdf_render")
    server = TritonServer(model_repository=repository, log_path=tmp_path / "tritonserver.log")
    server.start()
    try:
        regions = server.shm_regions()
        assert regions, f"no region named {server.shm_prefix}* in /dev/shm"
    finally:
        server.stop(timeout=0)  # SIGKILL at once: the stubs cannot clean up after themselves
    assert server.process.returncode != 0
    assert not [region for region in regions if region.exists()]
