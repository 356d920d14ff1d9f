"""kopf wiring: kopf watches the resources and their children and hands every event to the
``Controller``, whose work queue and worker threads do the reconciling.

Only event handlers are registered: kopf then writes nothing to our resources (no progress or
diff-base annotations) and adds no finalizer, so deleting a resource never waits for a running
operator; the children go with it by garbage collection (ownerReferences). Children are watched
by the operator's managed-by label: a Job finishing, a Deployment's replicas becoming ready, a pod
crash-looping or a child deleted by hand reconciles its owner at once, not at the next poll.
"""

from __future__ import annotations

import os
from typing import Any

import kopf

from tanuki_operator import metrics
from tanuki_operator.api import GROUP, VERSION
from tanuki_operator.handlers.controller import Controller
from tanuki_operator.k8s import Kube
from tanuki_operator.render import Settings
from tanuki_operator.stages import STAGES

RESYNC_SECONDS = float(os.environ.get("TANUKI_RESYNC_SECONDS", "300"))
WORKERS = int(os.environ.get("TANUKI_WORKERS", "8"))
MANAGED = {"app.kubernetes.io/managed-by": "tanuki-operator"}
WATCHED_CHILDREN = [  # (group, version, plural)
    ("batch", "v1", "jobs"),
    ("ray.io", "v1", "rayjobs"),
    ("apps", "v1", "deployments"),
    ("", "v1", "pods"),
]
"""Children with a status, whose changes wake their owner (KubeRay's RayJobs once that API is
installed). Children without one (ConfigMaps, Services, NetworkPolicies, RBAC, autoscalers) are not
watched: each watch costs the operator and the API server per event, and a hand edit or deletion of
one is repaired at the owner's next reconcile (any of these events, or the resync)."""
KINDS = {"jobs": "Job", "rayjobs": "RayJob", "deployments": "Deployment", "pods": "Pod"}
_state: dict[str, Any] = {}


@kopf.on.startup()
def start(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False  # Events are posted by the controller, on the resources themselves
    settings.watching.server_timeout = 300
    port = int(os.environ.get("TANUKI_METRICS_PORT", "0") or 0)
    if port and "metrics" not in _state:
        metrics.serve(port)
        _state["metrics"] = port
    watched = {(f"{group}/{version}" if group else version, KINDS[plural]) for group, version, plural in WATCHED_CHILDREN}
    controller = Controller(Kube(), Settings.from_env(), workers=WORKERS, resync_seconds=RESYNC_SECONDS,
                            watched_children=watched)
    controller.start()
    _state["controller"] = controller


@kopf.on.cleanup()
def stop(**_: Any) -> None:
    controller = _state.pop("controller", None)
    if controller is not None:
        controller.stop()


def _controller() -> Controller | None:
    return _state.get("controller")


def _register(kind: str, plural: str) -> None:
    async def on_resource(type: str | None, body: kopf.Body, **_: Any) -> None:
        if (controller := _controller()) is not None:
            controller.resource_event(kind, type, dict(body))

    kopf.on.event(GROUP, VERSION, plural, id=f"watch-{plural}")(on_resource)


async def on_child(type: str | None, body: kopf.Body, **_: Any) -> None:
    if (controller := _controller()) is not None:
        controller.child_event(type, dict(body))


for _stage in STAGES.values():
    _register(_stage.kind, _stage.plural)
for _group, _version, _plural in WATCHED_CHILDREN:
    kopf.on.event(_group, _version, _plural, labels=MANAGED, id=f"children-{_plural}")(on_child)
