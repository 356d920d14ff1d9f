"""A Ray connection for the stages that run on Ray Data (synthesis, DPO's pair generation,
tokenization): the given cluster (KubeRay's ``auto``) or an in-process one sized to this machine
(also for ``auto`` where ``RAY_ADDRESS=local`` says the cluster is this node, as the local kubelet
runs a RayJob)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

SHM_LEFTOVERS = "/dev/shm/psm_*"
"""vLLM's CPU backend leaves one of these per engine actor that Ray tears down."""


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """A Ray connection: the given cluster, or an in-process one sized to this machine."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if address == "auto" and os.environ.get("RAY_ADDRESS") == "local":
        address = None  # a one-node runner's RayJob (Ray's "local"): the in-process Ray below, sized the same
    before = set(glob.glob(SHM_LEFTOVERS))
    temp_dir = None
    if address:
        ray.init(address=address, log_to_driver=True)
    else:  # Ray's socket paths (~70 characters below its temp dir) must fit AF_UNIX's 107 bytes
        base = tempfile.gettempdir()
        temp_dir = tempfile.mkdtemp(prefix="tanuki-ray-", dir=base if len(base) <= 30 else "/tmp")
        # the cores this process may run on: a pod's own under the local kubelet, else the machine's
        ray.init(address="local", num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False,
                 object_store_memory=512 * 2**20, _temp_dir=temp_dir)
    try:
        yield ray
    finally:
        ray.shutdown()
        for leftover in set(glob.glob(SHM_LEFTOVERS)) - before:
            with contextlib.suppress(OSError):
                os.unlink(leftover)
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)
