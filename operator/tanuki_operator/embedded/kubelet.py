"""A kubelet (and the Job controller) for one machine: the Jobs in an ``ObjectStore`` run as processes
(RayJobs too, see ``embedded.rayjobs``; Deployments, see ``embedded.deployments``; Services, see
``embedded.services``).

What the operator rendered is what runs: each pod's container command, its ``$(VAR)`` references
and env (``value``, ``fieldRef``), its volumes and its termination message, within ``cpus`` cores
of ``resources.requests.cpu`` (a pod larger than the machine runs alone, as on a node that fits
it). Without containers or network namespaces, the kubelet maps what a container would see:

- volumes: a PVC is ``WORKDIR/<claimName>``, a Secret ``WORKDIR/secrets/<name>`` (a file per
  key); a ConfigMap's keys are files in the pod's directory; an emptyDir is a directory of its
  own; ``terminationMessagePath`` is a file there too. Arguments and env values under a mount
  path are rewritten to the local directory.
- network: the DNS names of the Job's pods (``<job>-<index>.<subdomain>``) are 127.0.0.1, and each
  declared ``containerPort`` moves to a free local port, the same for all pods of a Job, one's own
  for each pod of a Deployment (arguments and env naming it follow); ``0.0.0.0`` (all of a pod's
  interfaces) is the loopback. ``ObjectStore.pod_ports`` says where each pod's port went.
- cores: a pod asking for a whole number of cores fewer than the machine has gets that many to
  itself (CPU affinity, and ``OMP_NUM_THREADS`` unless its env sets it), as the static CPU manager
  policy gives a Guaranteed pod exclusive cores.
- the image: the command's program is looked up beside this Python first (the virtualenv's
  ``tanuki``, ``torchrun``), then on ``PATH``; what an image ships prebuilt (DeepSpeed's JIT ops,
  compiled kernels) comes from this machine's caches (``BUILD_CACHES``), not the pod's emptyDir.

Containers: probes (``embedded.probes``) decide a pod's ``Ready`` condition and restart a container
that fails them; with ``restartPolicy: Always`` an ended container starts again in its pod after a
back-off (``CrashLoopBackOff``); a pod deleted from the store is stopped after its preStop hook,
SIGKILLed when its grace period ends. A vllm-router's service discovery is done for it
(``embedded.discovery``).

The Job controller's part: Indexed and NonIndexed completions (all pods at once: parallelism =
completions, as the operator renders; a Job's pods start together or wait together, as a gang
scheduler places a multi-node job), ``suspend``, ``backoffLimit`` and ``podFailurePolicy``
(``FailJob`` on exit codes, ``Ignore`` on ``DisruptionTarget``), ``activeDeadlineSeconds`` (from
``startTime``, which a suspension resets); the Job's status (startTime, active, succeeded, failed,
Complete / Failed / Suspended conditions). Pods whose process belongs to an earlier kubelet (the
runner was stopped) are marked disrupted, so their Job runs them anew and the program resumes
from its checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tanuki_operator.embedded.deployments import DeploymentController
from tanuki_operator.embedded.discovery import RouterDiscovery, admin_url, split_discovery, sync_router, worker_urls
from tanuki_operator.embedded.node import has_condition
from tanuki_operator.embedded.probes import Prober, ProbeTarget
from tanuki_operator.embedded.rayjobs import RayJobController
from tanuki_operator.embedded.services import ServiceProxy
from tanuki_operator.embedded.store import ObjectStore
from tanuki_operator.k8s import ApiError
from tanuki_operator.units import cpu_cores, now, seconds_since
from tanuki_serving.net import free_port

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
BUILD_CACHES = ("XDG_CACHE_HOME", "TORCH_EXTENSIONS_DIR", "TRITON_CACHE_DIR")
"""Where programs keep what they compile on first use (DeepSpeed's JIT ops, vLLM's and torch's
kernels): an image ships these built; locally the machine's own caches stand in (its values of
these, its ``~/.cache`` otherwise; a pod's HOME is its emptyDir), or every pod would build them again."""
NODE_NAME = "local"
PID_ANNOTATION = "local.tanuki.dev/pid"
"""On a pod the kubelet runs: its process (the leader of the pod's process group)."""
STOP_GRACE_SECONDS = 20.0
BACKOFF_SECONDS, MAX_BACKOFF_SECONDS = 10.0, 300.0
"""A restarted container's back-off: 10 s, doubled after each exit, at most 5 min (the kubelet's)."""
Printer = Callable[[str], None]


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names are replaced, ``$$`` escapes, others stay."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def field_value(pod: dict[str, Any], path: str) -> str:
    """A ``fieldRef.fieldPath`` of the pod (metadata.name / namespace / uid, labels['x'], annotations['x'])."""
    meta = pod["metadata"]
    if path in ("metadata.name", "metadata.namespace", "metadata.uid"):
        return str(meta.get(path.split(".")[1], ""))
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if path == "spec.nodeName":
        return NODE_NAME
    raise ApiError(422, f"fieldRef {path!r} is not supported by the local kubelet")


@dataclass
class Launch:
    """How to start (and restart) a pod's container: what ``_run`` worked out from its spec."""

    command: list[str]
    env: dict[str, str]
    """The process's whole environment."""
    directory: Path
    log: Path
    cores: frozenset[int]
    """The cores it has to itself (a whole-core request), as the static CPU manager gives them."""
    ports: dict[str, int]
    """Container port name or number (as text) → the local port it listens on."""
    rewrite: Callable[[str], str]
    """What an argument naming a mount path, a declared port or a pod DNS name is locally."""


@dataclass
class LocalPod:
    """A pod the kubelet started: its process and where it writes."""

    namespace: str
    name: str
    owner: str
    """``Kind/name`` of the tanuki resource it works for."""
    process: subprocess.Popen[str]
    directory: Path
    cpus: float
    termination_file: Path
    launch: Launch
    container: dict[str, Any]
    """The container's spec (its probes, lifecycle hooks, termination settings)."""
    grace: float = 30.0
    """``terminationGracePeriodSeconds``: from its deletion to SIGKILL, the preStop hook included."""
    restart_policy: str = "Never"
    """``Always`` (a Deployment's pod): an ended container is started again after a back-off."""
    cores: frozenset[int] = frozenset()
    """The cores it has to itself (a whole-core request), as the static CPU manager gives them."""
    printer: threading.Thread | None = None
    prober: Prober | None = None
    started: float = field(default_factory=time.monotonic)
    evicted: bool = False
    """Stopped by the kubelet (its Job suspended): it ends disrupted, not failed."""
    restarts: int = 0
    restart_at: float | None = None
    """While its container waits to be started again (CrashLoopBackOff): when, on the monotonic clock."""
    unhealthy: str | None = None
    """Why the kubelet killed the container (a failed startup or liveness probe)."""
    deleting: bool = False
    """Its pod object was deleted: the container is being stopped (preStop hook, then SIGTERM)."""
    container_status: dict[str, Any] = field(default_factory=dict)
    """The container's status as last written (written whole: a merge patch replaces lists)."""
    discovery: RouterDiscovery | None = None
    """A vllm-router's service discovery, which the kubelet does for it (``embedded.discovery``)."""


def _program(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name) or name


class Kubelet:
    """Runs the store's Jobs; ``sync`` is one pass, ``start`` runs passes on a thread."""

    def __init__(self, store: ObjectStore, workdir: Path, cpus: float | None = None,
                 echo: Printer | None = None, environ: dict[str, str] | None = None) -> None:
        self.store, self.workdir = store, workdir.resolve()
        self.capacity = cpus if cpus is not None else float(os.cpu_count() or 1)
        self.echo = echo or (lambda line: print(line, flush=True))
        self.environ = dict(os.environ if environ is None else environ)
        """What every process inherits below the pod's own env (PATH, the virtualenv, ...)."""
        self.pods: dict[tuple[str, str], LocalPod] = {}
        self._job_ports: dict[str, dict[str, str]] = {}
        """Job uid → declared containerPort → the local port all its pods use for it."""
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pods_dir = self.workdir / ".tanuki" / "pods"
        self.ray = RayJobController(self)
        """KubeRay's part: each RayJob's driver as one pod of this node."""
        self.deployments = DeploymentController(self)
        """The Deployment controller's part: each Deployment's pods, rolled when its template changes."""
        self.proxy = ServiceProxy(store)
        """kube-proxy's part: each Service a local port forwarding to its ready pods."""
        store.watch(lambda event, obj: self._wake.set())

    # ---- the loop -------------------------------------------------------------------------------

    def start(self) -> None:
        self.disrupt_orphans()
        self._thread = threading.Thread(target=self._loop, name="local-kubelet", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.sync()
            except Exception as exc:  # a kubelet keeps going; the next pass tries again
                self.echo(f"[tanuki local] kubelet: {type(exc).__name__}: {exc}")
            self._wake.wait(0.5)

    def stop(self) -> None:
        """Stop the loop, then the processes (SIGTERM, SIGKILL after a grace period); their pods are
        marked disrupted, so a later kubelet runs them anew."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            running = list(self.pods.values())
        for pod in running:
            if pod.prober is not None:
                pod.prober.stop()
            if pod.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pod.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for pod in running:
            _wait_or_kill(pod, deadline - time.monotonic())
            self._mark_disrupted(pod.namespace, pod.name, "the local runner stopped")
        with self._lock:
            self.pods.clear()
        for deployment in self.deployments.deployments():  # their pods ended with the node: none is ready
            self.deployments.report(deployment)
        self.proxy.close()

    def busy(self) -> bool:
        """A pod runs, or a Job still needs one started."""
        with self._lock:
            if any(pod.restart_policy != "Always" for pod in self.pods.values()):
                return True
        return any(self._wanted(job) for job in self._jobs()) or any(map(self.ray.wants_driver, self.ray.rayjobs()))

    # ---- one pass -------------------------------------------------------------------------------

    def sync(self) -> None:
        self._reap()
        self._stop_deleted()
        self._restart_due()
        for job in self._jobs():
            self._sync_job(job)
        self.ray.sync()
        self.deployments.sync()
        self.proxy.sync()
        self._discover()

    def _jobs(self) -> list[dict[str, Any]]:
        return self.store.of_kind("batch/v1", "Job")

    def pods_of(self, owner: dict[str, Any]) -> list[dict[str, Any]]:
        """The pods ``owner`` (a Job, RayJob or Deployment) owns: read from its namespace's pods only."""
        meta = owner["metadata"]
        return [pod for pod in self.store.list("v1", "Pod", meta["namespace"], {})
                if any(ref.get("uid") == meta["uid"] for ref in pod["metadata"].get("ownerReferences") or [])]

    def _wanted(self, job: dict[str, Any]) -> list[int]:
        """Completion indexes that need a pod now (none for a finished or suspended Job)."""
        spec = job.get("spec") or {}
        if spec.get("suspend") or has_condition(job, "Complete") or has_condition(job, "Failed"):
            return []
        pods = self.pods_of(job)
        covered = {int(p["metadata"]["annotations"][INDEX_ANNOTATION]) for p in pods
                   if (p.get("status") or {}).get("phase") in (None, "Pending", "Running", "Succeeded")}
        return [index for index in range(int(spec.get("completions") or 1)) if index not in covered]

    def _sync_job(self, job: dict[str, Any]) -> None:
        meta, spec = job["metadata"], job.get("spec") or {}
        if has_condition(job, "Complete") or has_condition(job, "Failed"):
            return
        if spec.get("suspend"):
            for pod in self.pods_of(job):
                self.terminate(meta["namespace"], pod["metadata"]["name"], evict=True)
            if not has_condition(job, "Suspended"):  # the deadline's clock starts again on resume
                self._job_status(job, {"active": 0, "startTime": None,
                                       "conditions": [self._job_condition("Suspended", "JobSuspended", "Job suspended")]})
            return
        pods = self.pods_of(job)
        failure = self._failure(job, pods)
        if failure is not None:
            for pod in pods:
                self.terminate(meta["namespace"], pod["metadata"]["name"])
            reason, message = failure
            self._job_status(job, {"active": 0, "conditions": [self._job_condition("Failed", reason, message)]})
            return
        completions = int(spec.get("completions") or 1)
        succeeded = {int(p["metadata"]["annotations"][INDEX_ANNOTATION]) for p in pods
                     if (p.get("status") or {}).get("phase") == "Succeeded"}
        active = sum(1 for p in pods if (p.get("status") or {}).get("phase") in ("Pending", "Running"))
        if len(succeeded) >= completions:
            self._job_status(job, {"active": 0, "succeeded": len(succeeded), "completionTime": now(),
                                   "conditions": [self._job_condition("Complete", "Completed", "finished")]})
            return
        wanted = self._wanted(job)
        if wanted and self._fits(job, len(wanted)):  # all of a Job's missing pods start together, or none:
            for index in wanted:                      # a rendezvous with half its nodes would wait forever
                if self._start_pod(job, index):
                    active += 1
        status = job.get("status") or {}
        counts = {"active": active, "succeeded": len(succeeded),
                  "failed": sum(1 for p in pods if self._counts_as_failure(p))}
        if any(status.get(key, 0) != value for key, value in counts.items()) or (active and "startTime" not in status):
            self._job_status(job, {**counts, **({"startTime": now()} if "startTime" not in status and active else {}),
                                   "conditions": None if has_condition(job, "Suspended") else status.get("conditions")})

    @staticmethod
    def counts_as_disruption(pod: dict[str, Any]) -> bool:
        """Stopped from outside (its Job suspended, its node gone), not failed by its program."""
        return has_condition(pod, "DisruptionTarget")

    @staticmethod
    def exit_summary(pod: dict[str, Any]) -> str:
        """``pod NAME exited with code N: <its termination message>``."""
        return f"pod {pod['metadata']['name']} exited with code {_exit_code(pod)}: {_termination_message(pod)}".rstrip(": ")

    def _counts_as_failure(self, pod: dict[str, Any]) -> bool:
        return (pod.get("status") or {}).get("phase") == "Failed" and not self.counts_as_disruption(pod)

    def _failure(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[str, str] | None:
        """(reason, message) when the Job has failed: a pod failure policy's FailJob, or too many failures."""
        spec = job.get("spec") or {}
        failed = [p for p in pods if self._counts_as_failure(p)]
        for pod in failed:
            code = _exit_code(pod)
            for rule in (spec.get("podFailurePolicy") or {}).get("rules") or []:
                codes = rule.get("onExitCodes") or {}
                if rule.get("action") == "FailJob" and codes.get("operator") == "In" and code in codes.get("values", []):
                    return "PodFailurePolicy", (f"container main of pod {pod['metadata']['name']} exited with code "
                                                f"{code}: {_termination_message(pod)}").rstrip(": ")
        deadline, started = spec.get("activeDeadlineSeconds"), (job.get("status") or {}).get("startTime")
        if deadline and started and seconds_since(started) > int(deadline):
            return "DeadlineExceeded", f"Job was active longer than specified deadline ({deadline} s)"
        if len(failed) > int(spec.get("backoffLimit", 6)):
            last = failed[-1]
            return "BackoffLimitExceeded", (f"Job has reached the specified backoff limit; pod {last['metadata']['name']} "
                                            f"exited with code {_exit_code(last)}")
        return None

    @staticmethod
    def _job_condition(kind: str, reason: str, message: str) -> dict[str, Any]:
        return {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now()}

    def _job_status(self, job: dict[str, Any], status: dict[str, Any]) -> None:
        meta = job["metadata"]
        self.store.patch_status("batch/v1", "Job", meta["namespace"], meta["name"], status, manager="job-controller")

    # ---- pods -----------------------------------------------------------------------------------

    @staticmethod
    def _cpus(job: dict[str, Any]) -> float:
        container = job["spec"]["template"]["spec"]["containers"][0]
        return cpu_cores(((container.get("resources") or {}).get("requests") or {}).get("cpu"))

    def _fits(self, job: dict[str, Any], count: int) -> bool:
        """``count`` more pods of the Job fit in the cores left (anything fits an idle node)."""
        return self.fits_cores(count * self._cpus(job))

    def fits_cores(self, cpus: float) -> bool:
        """Pods asking for ``cpus`` cores fit in the cores left (anything fits an idle node)."""
        with self._lock:
            used = sum(pod.cpus for pod in self.pods.values())
            return not self.pods or used + cpus <= self.capacity

    def _start_pod(self, job: dict[str, Any], index: int) -> bool:
        """Create the pod of completion ``index`` and start its process (False when it cannot start)."""
        meta = job["metadata"]
        hostname = f"{meta['name']}-{index}"
        subdomain = job["spec"]["template"]["spec"].get("subdomain")
        hosts = {f"{meta['name']}-{i}.{subdomain}" for i in range(int(job["spec"].get("completions") or 1))} \
            if subdomain else set()
        with self._lock:  # one mapping per Job: its pods reach pod 0's rendezvous port under the same number
            ports = self._job_ports.setdefault(meta["uid"], {})
        return self.start_pod(job, job["spec"]["template"], hostname, self._cpus(job), hosts, ports,
                              labels={"job-name": meta["name"], "batch.kubernetes.io/job-completion-index": str(index)},
                              annotations={INDEX_ANNOTATION: str(index)}, manager="job-controller")

    def start_pod(self, owner: dict[str, Any], template: dict[str, Any], hostname: str, cpus: float,
                  hosts: set[str], ports: dict[str, str], *, labels: dict[str, str], annotations: dict[str, str],
                  manager: str, command: list[str] | None = None, env: dict[str, str] | None = None) -> bool:
        """Create a pod of ``owner`` from ``template`` and start its first container's process (False when
        it cannot start). ``hosts``: DNS names that are this machine; ``ports``: the owner's declared
        containerPort → local port mapping (filled as needed); ``command``/``env``: what the controller
        runs instead of the container's own command, and adds to its env."""
        meta = owner["metadata"]
        container = template["spec"]["containers"][0]
        pod: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{hostname}-{uuid.uuid4().hex[:5]}", "namespace": meta["namespace"],
                         "labels": {**(template.get("metadata") or {}).get("labels", {}), **labels},
                         "annotations": annotations,
                         "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                              "name": meta["name"], "uid": meta["uid"], "controller": True}]},
            "spec": {**template["spec"], "hostname": hostname, "nodeName": NODE_NAME},
        }
        created = self.store.create(pod, manager=manager)
        assert created is not None, "pod names carry a random suffix"
        name = created["metadata"]["name"]
        try:
            local = self._run(created, container, cpus, hosts, ports, meta["name"], command, env)
        except (OSError, ApiError) as exc:  # the container cannot be created: it waits, as it would in a cluster
            why = exc.reason if isinstance(exc, ApiError) else str(exc)
            self._pod_status(created, {"phase": "Pending", "containerStatuses": [{
                "name": container["name"], "ready": False, "restartCount": 0,
                "state": {"waiting": {"reason": "CreateContainerConfigError", "message": why}}}]})
            self.echo(f"[tanuki local] Pod/{name}: cannot start: {why}")
            return False
        with self._lock:
            self.pods[meta["namespace"], name] = local
        self.store.patch("v1", "Pod", meta["namespace"], name, {"metadata": {"annotations": {
            PID_ANNOTATION: str(local.process.pid)}}}, manager="kubelet")
        self._container_started(local, {"phase": "Running", "startTime": now(), "podIP": "127.0.0.1"})
        return True

    def _container_started(self, pod: LocalPod, extra: dict[str, Any]) -> None:
        """The pod's status once its container (again) runs; with probes it is Ready only when they say so."""
        probed = Prober.needed(pod.container)
        pod.container_status = {"name": pod.container["name"], "ready": not probed, "started": not probed,
                                "restartCount": pod.restarts, "state": {"running": {"startedAt": now()}},
                                **({"lastState": pod.container_status["lastState"]}
                                   if "lastState" in pod.container_status else {})}
        stored = self.store.get("v1", "Pod", pod.namespace, pod.name)
        if stored is not None:
            self._pod_status(stored, {**extra, "containerStatuses": [pod.container_status],
                                      "conditions": [{"type": "Ready", "status": str(not probed)}]})
        if probed:
            run = pod.launch
            target = ProbeTarget(run.ports, lambda command, timeout: self._exec(pod, command, timeout))
            pod.prober = Prober(pod.container, target, lambda ready: self._set_ready(pod, ready),
                                lambda why: self._kill_unhealthy(pod, why))
            pod.prober.start()

    def _set_ready(self, pod: LocalPod, ready: bool) -> None:
        stored = self.store.get("v1", "Pod", pod.namespace, pod.name)
        if stored is None or pod.deleting or pod.process.poll() is not None:
            return
        pod.container_status = {**pod.container_status, "ready": ready, "started": True}
        self._pod_status(stored, {"containerStatuses": [pod.container_status],
                                  "conditions": [{"type": "Ready", "status": str(ready)}]})

    def _kill_unhealthy(self, pod: LocalPod, why: str) -> None:
        """A failed startup or liveness probe: the container is killed and (its policy says) restarted."""
        pod.unhealthy = why
        self.echo(f"[tanuki local] {pod.owner}: pod {pod.name}: {why}; killing its container")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pod.process.pid, signal.SIGKILL)

    def _exec(self, pod: LocalPod, command: list[str], timeout: float) -> int:
        """A probe's or hook's command, run in the pod: its env, directory and local paths and ports."""
        run = pod.launch
        argv = [run.rewrite(expand(arg, run.env)) for arg in command]
        argv[0] = _program(argv[0])
        try:
            return subprocess.run(argv, env=run.env, cwd=run.directory, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return 1
        except OSError:
            return 127

    def _volumes(self, pod: dict[str, Any], directory: Path) -> dict[str, Path]:
        """Volume name → the local directory it is."""
        found: dict[str, Path] = {}
        for volume in pod["spec"].get("volumes") or []:
            name = volume["name"]
            if "persistentVolumeClaim" in volume:
                found[name] = self.workdir / volume["persistentVolumeClaim"]["claimName"]
            elif "configMap" in volume:
                source = self.store.get("v1", "ConfigMap", pod["metadata"]["namespace"], volume["configMap"]["name"])
                if source is None:
                    raise ApiError(404, f'configmap "{volume["configMap"]["name"]}" not found')
                found[name] = directory / "volumes" / name
                found[name].mkdir(parents=True, exist_ok=True)
                for key, text in (source.get("data") or {}).items():
                    (found[name] / key).write_text(text)
            elif "secret" in volume:  # the Secret's own directory: its value is never copied
                secret = volume["secret"]["secretName"]
                found[name] = self.workdir / "secrets" / secret
                for item in volume["secret"].get("items") or []:
                    if item["path"] != item["key"]:
                        raise ApiError(422, f"secret volume {name}: items must keep their key as path locally")
                    if not (found[name] / item["key"]).is_file():
                        raise ApiError(404, f"Secret {secret} has no key {item['key']} "
                                            f"(locally: the file {found[name] / item['key']})")
            else:  # emptyDir and the rest: a directory of the pod's own
                found[name] = directory / "volumes" / name
            found[name].mkdir(parents=True, exist_ok=True)
        return found

    def _run(self, pod: dict[str, Any], container: dict[str, Any], cpus: float, hosts: set[str], ports: dict[str, str],
             owner_name: str, command_override: list[str] | None = None,
             extra_env: dict[str, str] | None = None) -> LocalPod:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        directory = self.pods_dir / namespace / name
        directory.mkdir(parents=True, exist_ok=True)
        volumes = self._volumes(pod, directory)
        paths = {mount["mountPath"].rstrip("/") or "/": str(volumes[mount["name"]])
                 for mount in container.get("volumeMounts") or []}
        termination = directory / "termination-log"
        paths[container.get("terminationMessagePath", "/dev/termination-log")] = str(termination)
        with self._lock:
            for port in container.get("ports") or []:
                ports.setdefault(str(port["containerPort"]), str(free_port()))
                self.store.pod_ports[namespace, name, int(port["containerPort"])] = int(ports[str(port["containerPort"])])

        def local(value: str) -> str:
            if value == "0.0.0.0":  # noqa: S104 - all of a pod's own interfaces: locally, this machine's loopback
                return "127.0.0.1"
            if value in hosts or any(value.startswith(host + ".") for host in hosts):
                return "127.0.0.1"
            if value in ports:
                return ports[value]
            for mount in sorted(paths, key=len, reverse=True):
                if value == mount or value.startswith(mount.rstrip("/") + "/"):
                    return paths[mount] + value[len(mount.rstrip("/")):]
            return value

        env: dict[str, str] = {}
        for variable in container.get("env") or []:
            if "value" in variable:
                env[variable["name"]] = local(expand(variable["value"], env))
            elif "fieldRef" in (variable.get("valueFrom") or {}):
                env[variable["name"]] = field_value(pod, variable["valueFrom"]["fieldRef"]["fieldPath"])
            else:
                raise ApiError(422, f"env {variable['name']}: only value and fieldRef are supported locally")
        env.update(extra_env or {})
        declared, discovery = split_discovery(command_override or [*container.get("command", []),
                                                                   *container.get("args", [])], namespace)
        command = [local(expand(arg, env)) for arg in declared]
        for variable in BUILD_CACHES:
            env.pop(variable, None)
            if variable in self.environ:
                env[variable] = self.environ[variable]
        env.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))  # where the others default to
        command[0] = _program(command[0])
        log = directory / "log"
        self.store.logs[namespace, name] = log
        labels = pod["metadata"].get("labels") or {}
        owner = f"{_kind_of(labels)}/{labels.get('llm.tanuki.dev/name', owner_name)}"
        shown = " ".join([Path(command[0]).name, *command[1:]])
        self.echo(f"[tanuki local] {owner}: running {shown}")
        cores = self._exclusive_cores(cpus)
        if cores:  # its processes' thread pools follow the cores it has, as in a container with a CPU limit
            env.setdefault("OMP_NUM_THREADS", str(len(cores)))
        local_ports = {str(port["containerPort"]): int(ports[str(port["containerPort"])])
                       for port in container.get("ports") or []}
        local_ports.update({port["name"]: int(ports[str(port["containerPort"])])
                            for port in container.get("ports") or [] if "name" in port})
        run = Launch(command, {**self.environ, **env}, directory, log, frozenset(cores), local_ports, local)
        started = LocalPod(namespace, name, owner, self._launch(run), directory, cpus, termination, run, container,
                           grace=float(pod["spec"].get("terminationGracePeriodSeconds", 30)),
                           restart_policy=pod["spec"].get("restartPolicy", "Always"), cores=frozenset(cores),
                           discovery=discovery)
        self._print(started)
        return started

    @staticmethod
    def _launch(run: Launch) -> subprocess.Popen[str]:
        process = subprocess.Popen(run.command, env=run.env, cwd=run.directory, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
        if run.cores:
            os.sched_setaffinity(process.pid, run.cores)  # before it starts threads or workers, which inherit it
        return process

    def _print(self, pod: LocalPod) -> None:
        pod.printer = threading.Thread(target=self._copy_output, args=(pod, pod.launch.log), daemon=True,
                                       name=f"log-{pod.name}")
        pod.printer.start()

    def _exclusive_cores(self, cpus: float) -> set[int]:
        """Cores for a whole-core request smaller than the node, when that many are free (else none:
        it shares every core, as a burstable pod does)."""
        if cpus < 1 or cpus != int(cpus) or cpus >= len(os.sched_getaffinity(0)):
            return set()
        with self._lock:
            taken = set().union(*(pod.cores for pod in self.pods.values()))
        free = sorted(os.sched_getaffinity(0) - taken)
        return set(free[:int(cpus)]) if len(free) >= cpus else set()

    def _copy_output(self, pod: LocalPod, log: Path) -> None:
        """The container's output into its log file, and onto the runner's terminal after its name."""
        from tanuki_pipelines.outputs import PROGRESS_PREFIX

        prefix = pod.owner.partition("/")[2]
        assert pod.process.stdout is not None
        with open(log, "a", encoding="utf-8") as sink:
            for line in pod.process.stdout:
                sink.write(line)
                sink.flush()
                if not line.startswith(PROGRESS_PREFIX) and pod.restart_policy != "Always":
                    self.echo(f"{prefix} | {line.rstrip()}")  # a server's output stays in its log file
        self._wake.set()

    def _reap(self) -> None:
        """Pods whose process ended: Succeeded (exit 0) or Failed, with the exit code and termination message;
        a container that restarts waits out its back-off (CrashLoopBackOff)."""
        with self._lock:
            ended = [pod for pod in self.pods.values() if pod.process.poll() is not None
                     and pod.restart_at is None and not pod.deleting]
        for pod in ended:
            if pod.prober is not None:
                pod.prober.stop()
            if pod.printer is not None:
                pod.printer.join(timeout=10)
            code = pod.process.returncode
            message = self._termination_message(pod, code)
            stored = self.store.get("v1", "Pod", pod.namespace, pod.name)
            terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "message": message,
                          "finishedAt": now()}
            if pod.restart_policy == "Always" and not pod.evicted and stored is not None and not self._stop.is_set():
                self._back_off(pod, stored, terminated)
                continue
            if pod.evicted:  # stopped by the kubelet (its Job suspended): not a failure of the program
                self._mark_disrupted(pod.namespace, pod.name, "its Job was suspended")
            elif stored is not None:
                self._pod_status(stored, {"phase": "Succeeded" if code == 0 else "Failed", "containerStatuses": [{
                    "name": "main", "ready": False, "restartCount": 0, "state": {"terminated": terminated}}],
                    "conditions": [{"type": "Ready", "status": "False"}]})
            with self._lock:
                self.pods.pop((pod.namespace, pod.name), None)
            self.echo(f"[tanuki local] {pod.owner}: pod {pod.name} exited with code {code}")

    def _termination_message(self, pod: LocalPod, code: int) -> str:
        """The termination message file; with ``FallbackToLogsOnError``, the log's tail when that is empty."""
        message = pod.termination_file.read_text(errors="replace")[:4096] if pod.termination_file.is_file() else ""
        if pod.unhealthy:
            message = message or pod.unhealthy
        if not message and code != 0 and pod.container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            message = "\n".join(self.store.pod_log(pod.namespace, pod.name, tail_lines=20).splitlines()[-20:])[-2048:]
        return message

    def _back_off(self, pod: LocalPod, stored: dict[str, Any], terminated: dict[str, Any]) -> None:
        """The container of a restarting pod ended: it starts again after 10 s, 20 s, ... (at most 5 min)."""
        pod.restarts += 1
        delay = min(BACKOFF_SECONDS * 2 ** (pod.restarts - 1), MAX_BACKOFF_SECONDS)
        pod.restart_at = time.monotonic() + delay
        why = pod.unhealthy or f"exited with code {terminated['exitCode']}"
        pod.container_status = {
            "name": pod.container["name"], "ready": False, "started": False, "restartCount": pod.restarts,
            "lastState": {"terminated": terminated},
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off {delay:.0f}s restarting failed "
                                  f"container {pod.container['name']} of pod {pod.name} ({why})"}}}
        self._pod_status(stored, {"containerStatuses": [pod.container_status],
                                  "conditions": [{"type": "Ready", "status": "False"}]})
        self.echo(f"[tanuki local] {pod.owner}: pod {pod.name}: container {why}; restarting in {delay:.0f} s")

    def _restart_due(self) -> None:
        """Containers whose back-off is over start again, in the same pod (same ports, same directory)."""
        with self._lock:
            due = [pod for pod in self.pods.values()
                   if pod.restart_at is not None and pod.restart_at <= time.monotonic() and not pod.deleting]
        for pod in due:
            pod.restart_at, pod.unhealthy = None, None
            pod.process = self._launch(pod.launch)
            self._print(pod)
            self._container_started(pod, {})

    def _discover(self) -> None:
        """Each running router routes to the ready pods its selector matches (see ``embedded.discovery``)."""
        with self._lock:
            routers = [pod for pod in self.pods.values() if pod.discovery is not None and not pod.deleting
                       and pod.restart_at is None and pod.process.poll() is None]
        for pod in routers:
            admin = admin_url(pod.launch.command)
            if admin is not None and pod.discovery is not None:
                sync_router(admin, worker_urls(self.store, pod.discovery))

    def _stop_deleted(self) -> None:
        """Pods deleted from the store while their container runs (scaled down, their owner deleted): each
        is stopped as a kubelet stops a deleted pod, on a thread of its own (its preStop hook may wait)."""
        with self._lock:
            candidates = [pod for pod in self.pods.values() if not pod.deleting]
        for pod in candidates:
            if self.store.get("v1", "Pod", pod.namespace, pod.name) is None:
                pod.deleting = True
                threading.Thread(target=self._stop_gracefully, args=(pod,), daemon=True,
                                 name=f"stop-{pod.name}").start()

    def _stop_gracefully(self, pod: LocalPod) -> None:
        """preStop hook (a ``sleep`` or an ``exec``), then SIGTERM, then SIGKILL once the grace period is over."""
        if pod.prober is not None:
            pod.prober.stop()
        started = time.monotonic()
        grace = pod.grace
        hook = ((pod.container.get("lifecycle") or {}).get("preStop")) or {}
        if pod.process.poll() is None:
            if "sleep" in hook:
                time.sleep(min(float(hook["sleep"]["seconds"]), grace))
            elif "exec" in hook:
                self._exec(pod, hook["exec"]["command"], grace)
        if pod.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pod.process.pid, signal.SIGTERM)
        _wait_or_kill(pod, max(grace - (time.monotonic() - started), 1.0))
        with self._lock:
            self.pods.pop((pod.namespace, pod.name), None)
        self.echo(f"[tanuki local] {pod.owner}: pod {pod.name} deleted")
        self._wake.set()

    def terminate(self, namespace: str, name: str, evict: bool = False) -> None:
        """SIGTERM to the pod's processes; ``evict``: it ends as disrupted, not as failed."""
        with self._lock:
            pod = self.pods.get((namespace, name))
        if pod is not None and pod.process.poll() is None:
            pod.evicted = pod.evicted or evict
            os.killpg(pod.process.pid, signal.SIGTERM)

    def _mark_disrupted(self, namespace: str, name: str, why: str) -> None:
        stored = self.store.get("v1", "Pod", namespace, name)
        if stored is not None and (stored.get("status") or {}).get("phase") in (None, "Pending", "Running"):
            self._pod_status(stored, {"phase": "Failed", "reason": "Terminated", "message": why, "conditions": [
                {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet", "message": why},
                {"type": "Ready", "status": "False"}]})

    def disrupt_orphans(self) -> None:
        """Pods left Running or Pending by an earlier kubelet are disrupted; a process of theirs that
        outlived it (the runner was killed outright) is stopped first, so two never write one output."""
        with self._lock:
            mine = set(self.pods)
        for obj in self.store.of_kind("v1", "Pod"):
            meta = obj["metadata"]
            if (meta["namespace"], meta["name"]) in mine \
                    or (obj.get("status") or {}).get("phase") not in (None, "Pending", "Running"):
                continue
            pid = (meta.get("annotations") or {}).get(PID_ANNOTATION)
            if pid is not None:
                _stop_leftover(int(pid), self.pods_dir / meta["namespace"] / meta["name"])
            self._mark_disrupted(meta["namespace"], meta["name"], "its node (an earlier tanuki local process) stopped")

    def _pod_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.store.patch_status("v1", "Pod", meta["namespace"], meta["name"], status, manager="kubelet")


def _wait_or_kill(pod: LocalPod, timeout: float) -> None:
    """Wait up to ``timeout`` s for the pod's process to end after SIGTERM, then SIGKILL its group."""
    try:
        pod.process.wait(timeout=max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pod.process.pid, signal.SIGKILL)
        pod.process.wait()
    if pod.printer is not None:
        pod.printer.join(timeout=5)


def _stop_leftover(pid: int, directory: Path) -> None:
    """Stop the process group of ``pid`` if it is still the pod's (its working directory is the pod's)."""
    try:
        if Path(f"/proc/{pid}/cwd").resolve() != directory.resolve():
            return  # gone, or the pid was reused by something else
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        return


def _running(pid: int) -> bool:
    """The process exists and has not exited (a zombie waiting for its parent has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kind_of(labels: dict[str, str]) -> str:
    from tanuki_operator.stages import STAGES

    singular = labels.get("llm.tanuki.dev/kind", "")
    return next((kind for kind in STAGES if kind.lower() == singular), singular or "Job")


def _exit_code(pod: dict[str, Any]) -> int | None:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if "exitCode" in terminated:
            code: int = terminated["exitCode"]
            return code
    return None


def _termination_message(pod: dict[str, Any]) -> str:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        message: str = ((container.get("state") or {}).get("terminated") or {}).get("message") or ""
        if message:
            return message
    return ""
