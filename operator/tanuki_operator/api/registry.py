"""Every kind of the API with its CRD names: one table the CRDs, handlers and tests all read."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from tanuki_operator.api.common import GROUP
from tanuki_operator.api.dpo import DPOJobSpec
from tanuki_operator.api.eval import EvalJobSpec
from tanuki_operator.api.modelserver import ModelServerSpec
from tanuki_operator.api.pretrain import PretrainJobSpec
from tanuki_operator.api.sft import SFTJobSpec
from tanuki_operator.api.synth import SynthJobSpec
from tanuki_operator.api.upcycle import UpcycleJobSpec


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    description: str
    scale: bool = False

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


KINDS: dict[str, KindInfo] = {
    info.kind: info
    for info in [
        KindInfo("PretrainJob", "pretrainjobs", ("ptj",), PretrainJobSpec,
                 "Tokenizer training and dense pretraining with DeepSpeed across nodes."),
        KindInfo("UpcycleJob", "upcyclejobs", ("upj",), UpcycleJobSpec,
                 "Dense to Mixture-of-Experts upcycling."),
        KindInfo("SynthJob", "synthjobs", ("syj",), SynthJobSpec,
                 "Synthetic data generation with vLLM through Ray Data."),
        KindInfo("SFTJob", "sftjobs", ("sftj",), SFTJobSpec, "Supervised chat fine-tuning with TRL."),
        KindInfo("DPOJob", "dpojobs", ("dpoj",), DPOJobSpec,
                 "Preference pair generation, LLM judging and TRL DPO."),
        KindInfo("ModelServer", "modelservers", ("msv",), ModelServerSpec,
                 "vLLM serving with autoscaling and canary rollout.", scale=True),
        KindInfo("EvalJob", "evaljobs", ("evj",), EvalJobSpec,
                 "MT-Bench-style grading and arena ratings."),
    ]
}
