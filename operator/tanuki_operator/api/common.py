"""Fields every tanuki custom resource shares (group ``llm.tanuki.dev``, version ``v1alpha1``).

Kubernetes-facing fields are camelCase; the embedded stage ``recipe`` keeps the snake_case keys of
the recipe files, so a recipe YAML can be pasted into a spec unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

GROUP = "llm.tanuki.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

KindName = Literal["PretrainJob", "UpcycleJob", "SynthJob", "SFTJob", "DPOJob", "ModelServer", "EvalJob"]
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
QUANTITY = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"


class K8sModel(BaseModel):
    """Unknown fields rejected; field docstrings become CRD descriptions for ``kubectl explain``."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, populate_by_name=True)


class Toleration(K8sModel):
    """A core/v1 toleration."""

    key: str | None = None
    """Taint key to tolerate (empty with operator Exists: every taint)."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """How key and value are compared."""
    value: str | None = None
    """Taint value (operator Equal)."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to tolerate (empty: all)."""
    tolerationSeconds: int | None = Field(default=None, ge=0)
    """How long a NoExecute taint is tolerated."""


class Resources(K8sModel):
    """Per-node (per-pod) compute."""

    gpus: int = Field(default=0, ge=0)
    """GPUs per node; each node runs one training process per GPU."""
    gpuResource: str = "nvidia.com/gpu"
    """Extended resource name of the GPU."""
    cpu: str = Field(default="4", pattern=QUANTITY)
    """CPU request and limit per pod."""
    memory: str = Field(default="16Gi", pattern=QUANTITY)
    """Memory request and limit per pod."""
    sharedMemory: str = Field(default="8Gi", pattern=QUANTITY)
    """Size of the /dev/shm tmpfs (NCCL and dataloaders need more than the 64Mi default)."""


class Scheduling(K8sModel):
    """Where pods may run and in which queue they wait."""

    nodeSelector: dict[str, str] = Field(default_factory=dict)
    """Node labels every pod requires."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Taints the pods tolerate."""
    priorityClassName: str | None = None
    """PriorityClass of the pods."""
    queueName: str | None = None
    """Kueue LocalQueue; the Job is created suspended and Kueue admits it."""


class Storage(K8sModel):
    """The PersistentVolumeClaim inputs are read from and outputs written to."""

    claimName: str = Field(pattern=DNS_LABEL)
    """PVC name (ReadWriteMany for multi-node jobs)."""
    mountPath: str = Field(default="/data", pattern=r"^/")
    """Where the PVC is mounted; relative recipe paths resolve against it."""
    outputPath: str | None = None
    """Output directory below mountPath (default ``<kind>/<name>``, lower case)."""


class ObjectRef(K8sModel):
    """Another tanuki resource in the same namespace."""

    kind: KindName
    """Kind of the upstream resource."""
    name: str = Field(pattern=DNS_LABEL)
    """Name of the upstream resource."""


class ArtifactSource(K8sModel):
    """An input: a path on the PVC, or the output of an upstream resource once it succeeded."""

    path: str | None = None
    """Absolute path, or relative to storage.mountPath."""
    from_: ObjectRef | None = Field(default=None, alias="from")
    """Upstream whose status.outputs provides the path; this resource waits until it succeeds."""

    @model_validator(mode="after")
    def _exactly_one(self) -> "ArtifactSource":
        if (self.path is None) == (self.from_ is None):
            raise ValueError("set exactly one of path and from")
        return self


class SecretKeyRef(K8sModel):
    """A key of a Secret in the same namespace."""

    name: str = Field(pattern=DNS_LABEL)
    """Secret name."""
    key: str
    """Key within the Secret."""


class JobSpec(K8sModel):
    """Common fields of every batch stage (PretrainJob, UpcycleJob, SynthJob, SFTJob, DPOJob, EvalJob)."""

    image: str | None = None
    """Container image; default: the operator's configured trainer image."""
    resources: Resources = Field(default_factory=Resources)
    """Compute per node."""
    nodes: int = Field(default=1, ge=1)
    """Pods (nodes) the job spans; one Indexed Job completion each."""
    scheduling: Scheduling = Field(default_factory=Scheduling)
    """Node selection, tolerations, priority and Kueue queue."""
    storage: Storage
    """PVC for inputs and outputs."""
    suspend: bool = False
    """Pause: no pods run while true; resuming continues from the newest checkpoint."""
    backoffLimit: int = Field(default=3, ge=0)
    """Pod restarts (each resuming from the newest checkpoint) before the job fails."""
    activeDeadlineSeconds: int | None = Field(default=None, ge=1)
    """Wall-clock limit of the whole job."""


Phase = Literal["Pending", "Waiting", "Running", "Succeeded", "Failed", "ValidationFailed", "Suspended"]


class Condition(K8sModel):
    """A metav1.Condition."""

    type: str
    """Condition type (Ready, Waiting, Complete, Failed, Valid)."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""
    reason: str
    """CamelCase reason."""
    message: str = ""
    """Human-readable detail."""
    lastTransitionTime: str | None = None
    """When status last changed (RFC 3339)."""
    observedGeneration: int | None = None
    """Spec generation the condition was computed for."""


class Progress(K8sModel):
    """Training progress reported by the pipeline."""

    step: int | None = None
    """Optimizer steps done."""
    totalSteps: int | None = None
    """Optimizer steps planned."""
    tokens: int | None = None
    """Tokens consumed."""
    loss: float | None = None
    """Latest training loss."""
    summary: str | None = None
    """Short text for the Progress printer column, e.g. ``40% (120/300)``."""


class RevisionRef(K8sModel):
    """A served revision: a checkpoint with its engine settings."""

    revision: str
    """Content hash of checkpoint path, engine settings and image."""
    model: str
    """Checkpoint path."""


class CanaryStatus(RevisionRef):
    """The revision being rolled out."""

    step: int = 0
    """Index into spec.rollout.steps."""
    stepStartedAt: float | None = None
    """When the current step began (Unix seconds)."""
    healthySince: float | None = None
    """Since when the canary has been healthy at this step (Unix seconds)."""


class RetiringStatus(RevisionRef):
    """The previous stable revision after a promotion."""

    replicas: int = 0
    """Replicas it keeps until the promoted revision runs all of its own."""


class RolloutRecord(RevisionRef):
    """One finished rollout."""

    result: Literal["Promoted", "RolledBack", "Superseded"]
    """How it ended."""
    reason: str = ""
    """Why."""
    time: str | None = None
    """When (RFC 3339)."""


class TrafficShare(K8sModel):
    """Percent of requests per track (replica ratio behind the router)."""

    stable: int = 100
    """Percent to the stable revision."""
    canary: int = 0
    """Percent to the canary."""
    retiring: int = 0
    """Percent still to the previous stable revision right after a promotion."""


class TrackReplicas(K8sModel):
    """Ready replicas per track."""

    stable: int = 0
    """Ready replicas of the stable revision."""
    canary: int = 0
    """Ready replicas of the canary."""


class RolloutStatus(K8sModel):
    """ModelServer: what serves now and what is being rolled out."""

    stable: RevisionRef | None = None
    """Revision receiving traffic."""
    canary: CanaryStatus | None = None
    """Revision being rolled out, if any."""
    retiring: RetiringStatus | None = None
    """Previous stable revision, serving until the promoted one has all its replicas ready."""
    trafficShare: TrafficShare | None = None
    """Current split of the traffic."""
    readyReplicas: TrackReplicas | None = None
    """Ready replicas per track."""
    history: list[RolloutRecord] = Field(default_factory=list)
    """Recent rollouts, newest last."""
    failedRevisions: list[str] = Field(default_factory=list)
    """Rolled-back revisions, not retried until the spec changes."""


class Status(K8sModel):
    """Observed state, written only by the operator."""

    phase: Phase | None = None
    """Pending, Waiting, Running, Succeeded, Failed, ValidationFailed or Suspended."""
    message: str | None = None
    """Why the resource is in this phase."""
    conditions: list[Condition] = Field(default_factory=list)
    """Detailed conditions."""
    observedGeneration: int | None = None
    """Spec generation last reconciled."""
    outputs: dict[str, Any] = Field(default_factory=dict)
    """What the stage produced (checkpoint, dataset, metrics paths), from its outputs.json."""
    progress: Progress | None = None
    """Training progress."""
    startTime: str | None = None
    """When the first pod started (RFC 3339)."""
    completionTime: str | None = None
    """When the stage finished (RFC 3339)."""
    replicas: int | None = None
    """ModelServer: ready replicas (the /scale subresource reads it)."""
    selector: str | None = None
    """ModelServer: label selector of its vLLM pods (the /scale subresource's, for HPA Pods metrics)."""
    rollout: RolloutStatus | None = None
    """ModelServer: stable and canary revisions, traffic share and rollout history."""
