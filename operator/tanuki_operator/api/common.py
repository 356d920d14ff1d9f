"""Fields every tanuki custom resource shares (group ``llm.tanuki.dev``, version ``v1alpha1``).

Kubernetes-facing fields are camelCase; the embedded stage ``recipe`` keeps the snake_case keys of
the recipe files, so a recipe YAML can be pasted into a spec unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tanuki_operator.api.phase import Phase
from tanuki_serving.rollout import RolloutState

__all__ = ["Phase"]  # re-exported: the one phase enum of the API

GROUP = "llm.tanuki.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

KindName = Literal["CurateJob", "TokenizeJob", "PretrainJob", "UpcycleJob", "SynthJob", "SFTJob", "DPOJob", "QuantizeJob",
                   "ModelServer", "EvalJob", "Arena"]
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
    def _exactly_one(self) -> ArtifactSource:
        if (self.path is None) == (self.from_ is None):
            raise ValueError("set exactly one of path and from")
        return self


class SecretKeyRef(K8sModel):
    """A key of a Secret in the same namespace."""

    name: str = Field(pattern=DNS_LABEL)
    """Secret name."""
    key: str
    """Key within the Secret."""


class Output(StrEnum):
    """What a stage publishes in ``status.outputs`` for others to read (the stage registry says which
    kind publishes which; lineage is checked against it when a spec is validated)."""

    CHECKPOINT = "checkpoint"
    """An HF checkpoint directory (config.json, safetensors, tokenizer files)."""
    TOKENIZER = "tokenizer"
    """An HF tokenizer directory."""
    DATASET = "dataset"
    """A JSONL of ``{"text"}`` documents (pretraining data, calibration texts, prompts)."""
    DIALOGUES = "dialogues"
    """A JSONL of ``{"messages"}`` conversations (SFT data)."""
    PAIRS = "pairs"
    """A JSONL of ``{"prompt", "chosen", "rejected"}`` preference pairs (TRL's format)."""
    TOKENS = "tokens"
    """A token store: Megatron-LM indexed datasets per source, ``store.json``, a copy of the tokenizer."""
    METRICS = "metrics"
    """The training run's ``metrics.jsonl``."""
    QUALITY = "quality"
    """The quantization gate's figures (``quality.json``)."""
    LEADERBOARD = "leaderboard"
    """Ratings and grades (``leaderboard.json``)."""
    REPORT = "report"
    """A self-contained HTML page of the results."""
    URL = "url"
    """An OpenAI-compatible base URL (``.../v1``)."""
    MODEL = "model"
    """The served model name to send in requests."""


READS_KEY = "x-tanuki-reads"
"""Schema key marking a field that references an upstream: the CRD generator turns it into a CEL rule
naming the kinds that publish that output, and ``inputs()`` reads it with ``reads_of``."""


def reads(output: Output) -> dict[str, Any]:
    """``json_schema_extra`` of a field holding an upstream reference: which output of it is read."""
    return {READS_KEY: output.value}


def reads_of(model: type[BaseModel], name: str) -> Output:
    """The output field ``name`` of ``model`` reads (declared with ``reads``)."""
    extra = model.model_fields[name].json_schema_extra
    assert isinstance(extra, dict) and READS_KEY in extra, f"{model.__name__}.{name} does not declare what it reads"
    return Output(str(extra[READS_KEY]))


@dataclass(frozen=True)
class Input:
    """One input of a stage: where it comes from and, for an upstream, which of its outputs it reads."""

    source: ArtifactSource | ObjectRef | str
    """A path (or upstream) from the spec, or a literal value such as a URL."""
    spec_field: str
    """Where the source is in the resource (``spec.dataset``): lineage errors name it."""
    output: Output = Output.CHECKPOINT
    """The upstream's ``status.outputs`` key that provides the value."""
    required: bool = True
    """An upstream that succeeded without this output is an error (False: the input is left out)."""


class StageSpec(K8sModel):
    """What every kind's spec tells the stage registry: its inputs (the lineage fields) and the
    recipe its program reads once they are resolved."""

    MUTABLE_FIELDS: ClassVar[frozenset[str]] = frozenset()
    """Spec fields that may change after the stage's workload exists (batch kinds: only suspend)."""

    def inputs(self) -> dict[str, Input]:
        """Input role → where it comes from."""
        return {}

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        """The recipe YAML the stage's program reads, with each input role bound to its resolved value."""
        raise NotImplementedError(f"{type(self).__name__} has no stage recipe")

    def secrets(self) -> dict[str, SecretKeyRef]:
        """Secret keys the program reads, by the environment variable naming their file (``<NAME>_FILE``)."""
        return {}


def dump_recipe(recipe: BaseModel) -> dict[str, Any]:
    """A recipe model as the YAML the stage reads (aliases, no unset optionals)."""
    return recipe.model_dump(mode="json", by_alias=True, exclude_none=True)


class RayCluster(K8sModel):
    """KubeRay settings of a stage that runs as a RayJob."""

    rayVersion: str = "2.60.0"
    """Ray version of the image (KubeRay needs it)."""
    workerGpus: int = Field(default=1, ge=0)
    """GPUs per Ray worker pod."""
    shutdownAfterJobFinishes: bool = True
    """Delete the Ray cluster when the job ends."""


class SourceBinding(K8sModel):
    """Fill a data source's path from an upstream job's dataset (e.g. a SynthJob)."""

    source: str
    """Name of the data source in the recipe's source lists (for a PretrainJob: data.sources and
    tokenizer.train.sources)."""
    from_: ObjectRef = Field(alias="from", json_schema_extra=reads(Output.DATASET))
    """Upstream resource whose status.outputs.dataset becomes the source's path."""
    subset: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    """One part of the upstream's dataset: a CurateJob's source of that name (its directory
    ``<dataset>/<subset>``). Empty: the whole dataset."""


def source_inputs(bindings: list[SourceBinding]) -> dict[str, Input]:
    """The inputs of ``sourcesFrom``, keyed ``source:<name>`` (``source:<name>/<subset>`` for a part)."""
    return {f"source:{b.source}" + (f"/{b.subset}" if b.subset else ""):
            Input(b.from_, f"spec.sourcesFrom[{index}]", reads_of(SourceBinding, "from_"))
            for index, b in enumerate(bindings)}


def check_bindings(names: list[str], unbound: list[str], bindings: list[SourceBinding], field: str) -> None:
    """Each binding names a source of ``field``; each source in ``unbound`` (no path) has a binding."""
    bound = {binding.source for binding in bindings}
    unknown = sorted(bound - set(names))
    if unknown:
        raise ValueError(f"sourcesFrom: unknown sources {unknown}; {field} has {names}")
    unset = [name for name in unbound if name not in bound]
    if unset:
        raise ValueError(f"{field}: {unset} have neither a path nor a sourcesFrom binding")


def bind_sources(sources: list[dict[str, Any]], resolved: dict[str, str]) -> None:
    """Each dumped source bound in ``sourcesFrom`` takes its upstream's resolved path (with a
    ``subset``: that part of it)."""
    for source in sources:
        for key, path in resolved.items():
            role, _, subset = key.partition("/")
            if role == f"source:{source['name']}":
                source["path"] = f"{path}/{subset}" if subset else path


class JobSpec(StageSpec):
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

    MUTABLE_FIELDS: ClassVar[frozenset[str]] = frozenset({"suspend"})

    def ray_cluster(self) -> tuple[RayCluster, int] | None:
        """The KubeRay cluster (settings, worker pods) of a stage whose spec runs it as a RayJob."""
        return None


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


class Status(K8sModel):
    """Observed state, written only by the operator."""

    phase: Phase | None = None
    """Pending, Waiting, Running, Succeeded, Failed, ValidationFailed or Suspended; the Ready
    condition's reason says more (e.g. Failed with reason StageNotAvailable)."""
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
    rollout: RolloutState | None = None
    """ModelServer: stable and canary revisions, traffic share and rollout history."""
    runGeneration: int | None = None
    """Batch kinds: the spec generation the stage's Job (or RayJob) was created from. Once set,
    spec.recipe, spec.resources and spec.image (and every other field but spec.suspend) cannot change."""


class Endpoint(K8sModel):
    """An OpenAI-compatible model: a ModelServer, or any URL with its model name."""

    from_: ObjectRef | None = Field(default=None, alias="from")
    """A ModelServer; the job waits until it serves, then uses its URL and served model name."""
    url: str | None = None
    """Base URL of an OpenAI-compatible API (``.../v1``)."""
    model: str | None = None
    """Model name sent in requests (default for a ModelServer: its served model name)."""
    apiKey: SecretKeyRef | None = None
    """Secret key holding the endpoint's API key (a ModelServer's, when it requires one)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Endpoint:
        if (self.url is None) == (self.from_ is None):
            raise ValueError("set exactly one of url and from")
        if self.from_ is not None and self.from_.kind != "ModelServer":
            raise ValueError("from.kind must be ModelServer")
        if self.url is not None and not self.model:
            raise ValueError("model: required with url")
        return self

    def inputs(self, role: str, spec_field: str) -> dict[str, Input]:
        if self.from_ is None:
            return {f"{role}:url": Input(str(self.url), spec_field)}
        return {f"{role}:url": Input(self.from_, spec_field, output=Output.URL),
                f"{role}:model": Input(self.from_, spec_field, output=Output.MODEL, required=False)}

    def bound(self, role: str, resolved: dict[str, str], key_env: str) -> dict[str, Any]:
        return {"base_url": resolved[f"{role}:url"], "model": self.model or resolved.get(f"{role}:model"),
                "api_key_env": key_env if self.apiKey else None}


class RatedEndpoint(Endpoint):
    """A model that is rated against others (an EvalJob's target, an Arena's contestant)."""

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Its name on the leaderboard (an Arena shows it after the vote; default: the ModelServer's
    name, or the model name)."""

    def leaderboard_name(self) -> str:
        return self.name or (self.from_.name if self.from_ else str(self.model))


def endpoints_inputs(endpoints: Sequence[Endpoint], role: str, spec_field: str) -> dict[str, Input]:
    """The inputs of a list of endpoints, ``<role>:<index>`` for ``<spec_field>[<index>]``."""
    found: dict[str, Input] = {}
    for index, endpoint in enumerate(endpoints):
        found.update(endpoint.inputs(f"{role}:{index}", f"{spec_field}[{index}]"))
    return found


def endpoint_key_env(role: str, index: int) -> str:
    """The variable that carries the API key of the ``index``-th endpoint in a list (``TARGET_0_API_KEY``)."""
    return f"{role.upper()}_{index}_API_KEY"


def rated_endpoints_recipe(endpoints: Sequence[RatedEndpoint], role: str, resolved: dict[str, str]) -> list[dict[str, Any]]:
    """A list of endpoints as the stage's recipe names them: leaderboard name, URL, model, key variable."""
    entries = []
    for index, endpoint in enumerate(endpoints):
        bound = endpoint.bound(f"{role}:{index}", resolved, endpoint_key_env(role, index))
        entries.append({"name": endpoint.leaderboard_name(), **{k: v for k, v in bound.items() if v is not None}})
    return entries


def endpoints_secrets(endpoints: Sequence[Endpoint], role: str) -> dict[str, SecretKeyRef]:
    """The API keys of a list of endpoints, by the variable each reaches the stage as."""
    return {endpoint_key_env(role, index): endpoint.apiKey for index, endpoint in enumerate(endpoints) if endpoint.apiKey}


class CpuRayCluster(RayCluster):
    """A KubeRay cluster of CPU worker pods that mount spec.storage: a stage's file tasks (shards,
    partitions) as Ray Data tasks on them."""

    workerGpus: int = Field(default=0, ge=0)
    """GPUs per Ray worker pod (corpus work needs none)."""
    workers: int = Field(default=2, ge=1)
    """Ray worker pods, each with spec.resources."""


class CorpusJobSpec(JobSpec):
    """A batch stage over corpus sources (TokenizeJob, CurateJob): sources are paths or upstream
    datasets; it runs in one pod (a process pool within spec.resources.cpu) or on a KubeRay cluster."""

    sourcesFrom: list[SourceBinding] = Field(default_factory=list)
    """Sources whose files come from upstream jobs' datasets (a SynthJob's, a CurateJob's subset)."""
    ray: CpuRayCluster | None = None
    """Run as a KubeRay RayJob across ``ray.workers`` pods; unset: one pod."""

    @model_validator(mode="after")
    def _bindings_name_sources(self) -> CorpusJobSpec:
        sources = self.recipe_sources()
        check_bindings([s.name for s in sources], [s.name for s in sources if s.path is None], self.sourcesFrom,
                       "recipe.sources")
        return self

    def recipe_sources(self) -> list[Any]:
        """The recipe's data sources (each kind's recipe has ``sources``)."""
        raise NotImplementedError

    def ray_cluster(self) -> tuple[RayCluster, int] | None:
        return None if self.ray is None else (self.ray, self.ray.workers)
