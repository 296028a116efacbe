"""Init container of the Triton pods: put the layout model's inference files in place.

    python3 fetch_layout.py URL DEST

Does nothing when DEST already holds inference.yml, inference.json and
inference.pdiparams (a volume filled before); otherwise downloads the tar at URL (one
top folder with those files, as PaddleX publishes them) and extracts its files into
DEST. Standard library only: it runs in the Triton image.
"""

import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request

FILES = ("inference.yml", "inference.json", "inference.pdiparams")


def present(dest):
    paths = [os.path.join(dest, name) for name in FILES]
    return all(os.path.isfile(path) and os.path.getsize(path) > 0 for path in paths)


def main(url, dest):
    if present(dest):
        print(f"ok: {dest} has {', '.join(FILES)}")
        return 0
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(dest))) as work:
        archive = os.path.join(work, "model.tar")
        print(f"downloading {url}", flush=True)
        with urllib.request.urlopen(url, timeout=60) as answer, open(archive, "wb") as out:
            shutil.copyfileobj(answer, out, 1 << 20)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = os.path.basename(member.name)
                if member.isfile() and name and not name.startswith("."):
                    source = tar.extractfile(member)
                    with open(os.path.join(dest, name), "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
    if not present(dest):
        print(f"error: {url} did not hold {', '.join(FILES)}", file=sys.stderr)
        return 1
    print(f"ok: {dest} has {', '.join(FILES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
