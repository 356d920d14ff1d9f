"""The stage registry: every kind of the API, with everything the operator, the CRD generator and
the local runner need to know about it, in one entry.

Adding a kind = its spec module in ``api/`` (fields, inputs, the recipe its program reads) plus
one ``Stage`` here. Everything else reads this table: CRDs, validation, lineage, rendering (by
workload), reconciliation, the kopf wiring, ``tanuki render`` and ``tanuki local apply``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tanuki_operator.api.arena import ArenaSpec
from tanuki_operator.api.common import GROUP, JobSpec, Output, Phase, StageSpec
from tanuki_operator.api.curate import CurateJobSpec
from tanuki_operator.api.dpo import DPOJobSpec
from tanuki_operator.api.eval import EvalJobSpec
from tanuki_operator.api.modelserver import ModelServerSpec, modelserver_settling
from tanuki_operator.api.pretrain import PretrainJobSpec
from tanuki_operator.api.quantize import QuantizeJobSpec
from tanuki_operator.api.sft import SFTJobSpec
from tanuki_operator.api.synth import SynthJobSpec
from tanuki_operator.api.tokenize import TokenizeJobSpec
from tanuki_operator.api.upcycle import UpcycleJobSpec


class Workload(StrEnum):
    """What a resource becomes in the cluster; the renderer and the phase mapping follow from it."""

    TORCHRUN = "torchrun"
    """Indexed Job (one pod per node) + headless Service; each pod runs torchrun -m <module>."""
    POD = "pod"
    """A one-pod Job running ``tanuki <command>``."""
    RAY = "ray"
    """A KubeRay RayJob whose entrypoint is ``tanuki <command>``."""
    SERVER = "server"
    """vLLM Deployments (one per revision) behind vllm-router, autoscaled, rolled out as canaries."""
    WEB = "web"
    """A Deployment running ``tanuki <command> serve`` behind a Service (the Arena's page)."""

    @property
    def batch(self) -> bool:
        return self not in (Workload.SERVER, Workload.WEB)


WORKLOAD_CHILD: dict[Workload, tuple[str, str]] = {
    Workload.TORCHRUN: ("batch/v1", "Job"),
    Workload.POD: ("batch/v1", "Job"),
    Workload.RAY: ("ray.io/v1", "RayJob"),
}
"""The child that runs a batch stage: created once, its phase is the resource's phase."""

CHILD_KINDS: dict[Workload, tuple[tuple[str, str], ...]] = {
    Workload.TORCHRUN: (("v1", "ConfigMap"), ("v1", "Service"), ("networking.k8s.io/v1", "NetworkPolicy"),
                        ("batch/v1", "Job")),
    Workload.POD: (("v1", "ConfigMap"), ("networking.k8s.io/v1", "NetworkPolicy"), ("batch/v1", "Job")),
    Workload.RAY: (("v1", "ConfigMap"), ("networking.k8s.io/v1", "NetworkPolicy"), ("ray.io/v1", "RayJob")),
    Workload.SERVER: (("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "ServiceAccount"),
                      ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
                      ("networking.k8s.io/v1", "NetworkPolicy"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
                      ("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "ServiceMonitor")),
    # the votes claim is not among them: it is not owned, so deleting the Arena keeps the votes
    Workload.WEB: (("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "Service"),
                   ("networking.k8s.io/v1", "NetworkPolicy")),
}
"""Every kind of child a workload may own (pruning, watching, RBAC)."""


@dataclass(frozen=True)
class Program:
    """What the stage's pods run; the local runner runs the same program as a subprocess."""

    command: str | None = None
    """The ``tanuki`` subcommand (``tanuki <command> --config R --output-dir D``)."""
    module: str | None = None
    """The Python module a distributed stage runs under torchrun (``-m <module>``), or the server's."""
    extras: tuple[str, ...] = ("train",)
    """The package extras its image must install for the program to import."""
    image: str = "trainer"
    """The operator's default image it runs in (``trainer``, ``quantize``; ModelServers: ``serving``)."""
    cpus_flag: str | None = None
    """Its option for the cores it may use, given the pod's CPU request in whole cores: in a
    container the process sees the node's cores, not its limit."""


@dataclass(frozen=True)
class Stage:
    """One kind of the API."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[StageSpec]
    description: str
    workload: Workload
    program: Program | None
    """None until the stage's program is part of the package: the resource then fails with
    reason StageNotAvailable instead of starting a pod that cannot run."""
    outputs: frozenset[Output]
    """What it publishes in ``status.outputs`` for downstream resources: a ``from:`` reading any
    other output of it is refused when the reading spec is validated, naming the field."""
    ready_phase: Phase = Phase.SUCCEEDED
    """The phase in which downstream resources may read its outputs."""
    settling: Callable[[dict[str, Any]], str | None] | None = None
    """Why one in its ready phase is not ready for consumers yet (ModelServer: mid-rollout)."""
    scale: bool = False
    """Has a /scale subresource (spec.replicas) for autoscalers."""
    choose_workload: Callable[[Any], Workload] | None = None
    """When the spec picks the workload (SynthJob: RayJob in cluster mode, one pod otherwise)."""
    columns: tuple[dict[str, Any], ...] = ()
    """Extra ``kubectl get`` columns (after Phase; the default shows Progress)."""

    def workload_of(self, spec: Any) -> Workload:
        return self.choose_workload(spec) if self.choose_workload else self.workload

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def available(self) -> bool:
        return self.program is not None


def _ray_or_pod(spec: JobSpec) -> Workload:
    return Workload.RAY if spec.ray_cluster() is not None else Workload.POD


STAGES: dict[str, Stage] = {stage.kind: stage for stage in [
    Stage("CurateJob", "curatejobs", ("crj",), CurateJobSpec,
          "Corpus cleaning and exact and near-duplicate removal, in stages over files.", Workload.POD,
          Program(command="curate", extras=("train", "synth"), cpus_flag="--cpus"), frozenset({Output.DATASET}),
          choose_workload=_ray_or_pod),
    Stage("PretrainJob", "pretrainjobs", ("ptj",), PretrainJobSpec,
          "Tokenizer training and dense pretraining with DeepSpeed across nodes.", Workload.TORCHRUN,
          Program(command="pretrain", module="tanuki_pipelines.pretrain.train"),
          frozenset({Output.CHECKPOINT, Output.TOKENIZER, Output.METRICS})),
    Stage("TokenizeJob", "tokenizejobs", ("tkj",), TokenizeJobSpec,
          "Corpus tokenization into a Megatron-LM indexed-dataset token store for PretrainJobs.", Workload.POD,
          Program(command="tokenize", extras=("train", "synth"), cpus_flag="--cpus"),
          frozenset({Output.TOKENS, Output.TOKENIZER}), choose_workload=_ray_or_pod),
    Stage("UpcycleJob", "upcyclejobs", ("upj",), UpcycleJobSpec,
          "Dense to Mixture-of-Experts upcycling.", Workload.POD, Program(command="upcycle"),
          frozenset({Output.CHECKPOINT})),
    Stage("SynthJob", "synthjobs", ("syj",), SynthJobSpec,
          "Synthetic data generation with vLLM through Ray Data.", Workload.RAY,
          Program(command="synth", extras=("synth", "serve")), frozenset({Output.DATASET, Output.DIALOGUES}),
          choose_workload=_ray_or_pod),
    Stage("SFTJob", "sftjobs", ("sftj",), SFTJobSpec, "Supervised chat fine-tuning with TRL.",
          Workload.TORCHRUN, Program(command="sft", module="tanuki_pipelines.sft.train"),
          frozenset({Output.CHECKPOINT, Output.METRICS})),
    # one pod: generating and judging pairs needs the whole node, then `tanuki dpo` starts torchrun
    # itself over the pod's GPUs (nodes: 1)
    Stage("DPOJob", "dpojobs", ("dpoj",), DPOJobSpec,
          "Preference pair generation, LLM judging and TRL DPO.", Workload.POD,
          Program(command="dpo", module="tanuki_pipelines.dpo.train", extras=("train", "synth", "serve", "eval")),
          frozenset({Output.CHECKPOINT, Output.PAIRS, Output.METRICS})),
    # llmcompressor and llama.cpp pin what vLLM pins differently: the program has its own image
    Stage("QuantizeJob", "quantizejobs", ("qzj",), QuantizeJobSpec,
          "Quantization for vLLM (W8A8, W4A16, FP8) or llama.cpp (GGUF), gated on agreement with the source.",
          Workload.POD, Program(command="quantize", extras=("train", "serve", "quantize"), image="quantize"),
          frozenset({Output.CHECKPOINT, Output.QUALITY})),
    Stage("ModelServer", "modelservers", ("msv",), ModelServerSpec,
          "vLLM serving with autoscaling and canary rollout.", Workload.SERVER,
          Program(module="vllm.entrypoints.openai.api_server", extras=("serve",)),
          frozenset({Output.URL, Output.MODEL, Output.CHECKPOINT}),
          ready_phase=Phase.RUNNING, settling=modelserver_settling, scale=True),
    Stage("EvalJob", "evaljobs", ("evj",), EvalJobSpec,
          "MT-Bench-style grading, arena ratings and lm-evaluation-harness scores.", Workload.POD,
          Program(command="eval", extras=("eval", "harness")), frozenset({Output.LEADERBOARD, Output.REPORT}),
          columns=({"name": "Top", "type": "string", "jsonPath": ".status.outputs.top_model"},
                   {"name": "Score", "type": "string", "jsonPath": ".status.outputs.top_score"},
                   {"name": "Report", "type": "string", "jsonPath": ".status.outputs.report", "priority": 1})),
    Stage("Arena", "arenas", ("arn",), ArenaSpec,
          "The blind side-by-side page where people vote on two anonymous models; live ratings.", Workload.WEB,
          Program(command="arena", extras=("eval",)), frozenset({Output.URL}), ready_phase=Phase.RUNNING,
          columns=({"name": "URL", "type": "string", "jsonPath": ".status.outputs.url"},)),
]}


def stage_of(kind: str) -> Stage:
    return STAGES[kind]


def not_available_message(stage: Stage) -> str:
    return (f"this version of tanuki has no program for {stage.kind} yet, so no pod is started; the resource "
            "is kept and an operator version that has the stage runs it when it starts")
