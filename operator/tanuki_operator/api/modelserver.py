"""ModelServer: vLLM replicas behind a Service, autoscaled on vLLM's own metrics."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tanuki_operator.api.common import (
    DNS_LABEL,
    ArtifactSource,
    Endpoint,
    Input,
    K8sModel,
    Output,
    Resources,
    Scheduling,
    SecretKeyRef,
    StageSpec,
    Storage,
    reads,
    reads_of,
)
from tanuki_pipelines.eval.config import EvalConfig, GateConfig, PerplexityGate
from tanuki_serving.config import Analysis, EngineConfig, RolloutPolicy, RouterConfig
from tanuki_serving.rollout import RolloutState


class Autoscaling(K8sModel):
    """Replica bounds and the vLLM metric that drives scaling."""

    engine: Literal["hpa", "keda", "none"] = "hpa"
    """autoscaling/v2 HPA (Pods metric via prometheus-adapter), a KEDA ScaledObject, or fixed."""
    minReplicas: int = Field(default=1, ge=1)
    """Fewest replicas."""
    maxReplicas: int = Field(default=4, ge=1)
    """Most replicas."""
    metric: Literal["vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"] = "vllm:num_requests_waiting"
    """vLLM metric averaged over replicas."""
    target: float = Field(default=2.0, gt=0)
    """Target average value per replica (queue length, or KV-cache usage 0..1)."""
    prometheusAddress: str = "http://prometheus-operated.monitoring.svc:9090"
    """Prometheus the KEDA trigger queries (engine keda)."""

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.maxReplicas < self.minReplicas:
            raise ValueError(f"maxReplicas ({self.maxReplicas}) < minReplicas ({self.minReplicas})")
        return self


class Monitoring(K8sModel):
    """Prometheus scraping of the replicas and the router (prometheus-operator)."""

    serviceMonitor: bool = False
    """Create a ServiceMonitor (needs the monitoring.coreos.com CRDs)."""
    intervalSeconds: int = Field(default=15, ge=1)
    """Scrape interval."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Extra labels on the ServiceMonitor (e.g. the release label your Prometheus selects)."""


class Auth(K8sModel):
    """API key required by the OpenAI-compatible endpoint."""

    required: bool = True
    """Reject requests without the key (the default)."""
    apiKey: SecretKeyRef | None = None
    """Secret key holding the API key."""

    @model_validator(mode="after")
    def _secret_when_required(self) -> Auth:
        if self.required and self.apiKey is None:
            raise ValueError("apiKey: a Secret reference is required unless required is false")
        return self


class QualityReference(K8sModel):
    """What a canary is compared with instead of its own server's stable revision."""

    modelServer: str = Field(pattern=DNS_LABEL)
    """Another ModelServer whose served model is the reference (e.g. the unquantized model's server
    for a quantized one's)."""
    apiKey: SecretKeyRef | None = None
    """Secret key holding that server's API key (when it requires one)."""


def _default_gates() -> EvalConfig:
    return EvalConfig(mode="gate", gate=GateConfig(perplexity=PerplexityGate()))


class LatencyGate(K8sModel):
    """The canary's p95 time to first token and inter-token latency, from vLLM's histograms over the
    step's pause (the same window for both tracks), against the stable revision's."""

    maxRatio: float = Field(default=1.5, ge=1)
    """The most each canary p95 may be, as a multiple of the stable revision's."""
    minRequests: int = Field(default=20, ge=1)
    """Requests each track must have answered in the window for the figures to count (fewer:
    no evidence, the canary is held)."""


class QualityAnalysis(K8sModel):
    """Quality gates of a canary, at each step or once before it takes traffic: an EvalJob this
    ModelServer owns compares the canary's own endpoint with the reference's (``tanuki eval gate``).
    The step ends only on a passing verdict; a failing one rolls the canary back
    (``QualityRegression``), an evaluation that fails holds it (``AnalysisError``) and is retried
    with backoff. A first revision, with nothing to compare it with, is judged alone against the
    gates' absolute bars when the recipe gives any (``gate.perplexity.max_perplexity``,
    ``gate.grade.min_grade``, ``gate.harness.min_scores``): it takes no traffic until it reaches
    them, and none at all below them; without a bar it serves at once."""

    when: Literal["eachStep", "beforeTraffic"] = "eachStep"
    """``eachStep``: the gates judge the canary at every step, while it takes its share of the
    traffic. ``beforeTraffic``: they judge it once, before its first step, while it runs one replica
    out of the router's pool; no user request reaches a canary that has not passed; ``latency``
    cannot be used (it needs the traffic). With ``beforeTraffic`` or a bar, this server's pods enter
    the pool when the operator admits them (label ``llm.tanuki.dev/traffic=on``; a new pod waits
    for the operator)."""

    recipe: EvalConfig | None = Field(default_factory=_default_gates)
    """The evaluation's recipe (``mode: gate``): which gates (``gate.perplexity``, ``gate.arena``,
    ``gate.grade``, ``gate.harness``) and their thresholds, the prompts and questions; the targets
    are filled in. Default: the perplexity gate on the shipped questions; null: no evaluation
    (``latency`` alone)."""
    latency: LatencyGate | None = None
    """Latency against the stable revision under the live traffic of the step (read by the operator
    from the replicas' metrics; not with ``against``)."""
    judge: Endpoint | None = None
    """The judge of the arena and grade gates (a ModelServer or a URL)."""
    against: QualityReference | None = None
    """Compare with another ModelServer's model (default: this server's stable revision)."""
    retrySeconds: int = Field(default=60, ge=1)
    """Wait after a failed evaluation before the next attempt (doubling each time, at most 16×)."""
    resources: Resources = Field(default_factory=Resources)
    """Compute of the evaluation's pod."""

    def before_traffic(self) -> bool:
        """A canary is judged once, out of the router's pool, before its first step."""
        return self.when == "beforeTraffic"

    def judges_first(self) -> bool:
        """A server's first revision waits, out of traffic, for the gates' absolute bars."""
        return self.recipe is not None and bool(self.recipe.gate.bars())

    def servers(self) -> dict[str, str]:
        """Field → the ModelServer it names (the judge's, ``against``'s): the evaluation waits for them."""
        found = {}
        if self.judge is not None and self.judge.from_ is not None:
            found["spec.rollout.analysis.quality.judge.from"] = self.judge.from_.name
        if self.against is not None:
            found["spec.rollout.analysis.quality.against.modelServer"] = self.against.modelServer
        return found

    @model_validator(mode="after")
    def _a_gate_and_its_judge(self) -> QualityAnalysis:
        if self.latency is not None and self.before_traffic():
            raise ValueError("latency: measured on the step's live traffic; a canary judged beforeTraffic has none "
                             "(use when: eachStep)")
        if self.latency is not None and self.against is not None:
            raise ValueError("latency: compares the canary with the stable revision under the same traffic; "
                             "not with `against`")
        if self.recipe is None:
            if self.latency is None:
                raise ValueError("recipe: give the evaluation's gates, or latency")
            return self
        if self.recipe.mode != "gate":
            raise ValueError("recipe.mode: the quality gates run `tanuki eval` in mode gate")
        if self.recipe.targets:
            raise ValueError("recipe.targets: filled in by the operator (the canary and its reference)")
        if self.recipe.gate.needs_judge() and self.judge is None:
            raise ValueError(f"judge: the {' and '.join(g for g in ('arena', 'grade') if getattr(self.recipe.gate, g))} "
                             "gate needs a judge")
        return self


class ServerAnalysis(Analysis):
    """What a canary must show before it gets more traffic: health, and optionally quality."""

    quality: QualityAnalysis | None = None
    """Quality gates against the model the canary replaces (empty: health alone decides)."""


class ServerRollout(RolloutPolicy):
    """How a new checkpoint replaces the serving one."""

    analysis: ServerAnalysis = Field(default_factory=ServerAnalysis)
    """Health and quality checks between steps."""


INITIAL_MODEL_REASON = "ServingInitialModel"
"""A ModelServer's status reason while spec.initialModel stands in for spec.model."""


def modelserver_settling(status: dict[str, Any]) -> str | None:
    """Why a Running ModelServer does not serve what its spec asks for yet (None: it does): its
    initial model stands in, or a canary is rolling out. Consumers wait for it to settle."""
    conditions: list[dict[str, Any]] = status.get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), {})
    if INITIAL_MODEL_REASON in (status.get("reason"), ready.get("reason")):  # local runner / operator
        return "serving spec.initialModel"
    rollout = RolloutState.of(status)
    if rollout.admission is not None:
        return "its first revision waits for its quality bars"
    if rollout.canary is not None:
        return "a canary is rolling out"
    return None


class ModelServerSpec(StageSpec):
    """Serve a checkpoint through vLLM's OpenAI-compatible API."""

    image: str | None = None
    """vLLM serving image; default: the operator's configured serving image."""
    model: ArtifactSource = Field(json_schema_extra=reads(Output.CHECKPOINT))
    """Checkpoint: a path or a finished training job (new checkpoints roll out)."""
    initialModel: ArtifactSource | None = Field(default=None, json_schema_extra=reads(Output.CHECKPOINT))
    """Checkpoint served while spec.model's upstream has produced nothing yet (e.g. the SFT model
    while DPO trains); spec.model's first checkpoint then rolls out over it as a canary."""
    storage: Storage
    """PVC holding the checkpoint."""
    engine: EngineConfig = Field(default_factory=EngineConfig)
    """vLLM engine settings."""
    replicas: int = Field(default=1, ge=0)
    """Desired replicas (stable + canary); the autoscaler owns it through the /scale subresource when enabled."""
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    """Autoscaling bounds and metric."""
    resources: Resources = Field(default_factory=lambda: Resources(gpus=1))
    """Compute per replica."""
    scheduling: Scheduling = Field(default_factory=Scheduling)
    """Node selection, tolerations and priority."""
    auth: Auth
    """API key handling."""
    port: int = Field(default=8000, ge=1, le=65535)
    """Container port of vLLM's OpenAI API in each replica."""
    router: RouterConfig = Field(default_factory=RouterConfig)
    """The vllm-router front door clients talk to."""
    monitoring: Monitoring = Field(default_factory=Monitoring)
    """ServiceMonitor for the vLLM and router metrics."""
    rollout: ServerRollout = Field(default_factory=ServerRollout)
    """How a new checkpoint (a new upstream output or a changed spec.model) replaces the serving one."""

    @model_validator(mode="after")
    def _gpus_for_parallelism(self) -> ModelServerSpec:
        """vLLM runs one rank per GPU: a replica needs tensor × pipeline parallel GPUs."""
        ranks = self.engine.tensor_parallel_size * self.engine.pipeline_parallel_size
        if self.resources.gpus and ranks > self.resources.gpus:
            raise ValueError(f"engine.tensor_parallel_size: {self.engine.tensor_parallel_size} × pipeline_parallel_size "
                             f"{self.engine.pipeline_parallel_size} needs {ranks} GPUs per replica but resources.gpus "
                             f"is {self.resources.gpus}")
        return self

    def inputs(self) -> dict[str, Input]:
        inputs = {"model": Input(self.model, "spec.model", reads_of(ModelServerSpec, "model"))}
        if self.initialModel is not None:  # optional: its absence only means there is nothing to stand in
            inputs["initialModel"] = Input(self.initialModel, "spec.initialModel", reads_of(ModelServerSpec, "initialModel"),
                                           required=False)
        return inputs

    def total_replicas(self) -> int:
        """Replicas to run: spec.replicas, kept within the autoscaling bounds when an autoscaler owns it."""
        if self.autoscaling.engine == "none":
            return max(self.replicas, 1)
        return min(max(self.replicas, self.autoscaling.minReplicas), self.autoscaling.maxReplicas)
