"""Init container of the vLLM pods: download a Hugging Face model repository.

    python3 fetch_vlm.py REPO DEST

Resumable: files already complete in DEST are skipped (huggingface_hub's
snapshot_download, which the vLLM image ships). vLLM itself then runs with
HF_HUB_OFFLINE=1 and reads DEST only.
"""

import sys

from huggingface_hub import snapshot_download

if __name__ == "__main__":
    repo, dest = sys.argv[1:3]
    print(f"downloading {repo} into {dest}", flush=True)
    snapshot_download(repo_id=repo, local_dir=dest)
    print(f"ok: {dest} has {repo}")
