"""Batch stages → ConfigMap + Job manifests (pure).

Multi-node training (PretrainJob, SFTJob, DPOJob): a headless Service and an Indexed Job, one pod
per node, each running torchrun with ``--node-rank`` from its completion index and the rendezvous
at pod 0 (``<job>-0.<service>``). Single-pod stages (UpcycleJob, EvalJob, local-mode SynthJob):
a plain Job running ``tanuki <stage>``.
"""

from __future__ import annotations

from typing import Any

from tanuki_operator.api.common import JobSpec
from tanuki_operator.render.common import (
    RECIPE_FILE,
    RECIPE_MOUNT,
    Owner,
    Settings,
    batch_job,
    job_network_policy,
    metadata,
    output_dir,
    owner_selector,
    recipe_configmap,
    scheduling_fields,
    stage_container,
    volumes,
)
from tanuki_operator.stages import Program
from tanuki_operator.units import whole_cores


def torchrun_command(owner: Owner, spec: JobSpec, settings: Settings, module: str) -> list[str]:
    per_node = spec.resources.gpus or 1
    return [
        "torchrun",
        "--nnodes", str(spec.nodes),
        "--nproc-per-node", str(per_node),
        "--node-rank", "$(NODE_RANK)",
        "--master-addr", f"{owner.name}-0.{owner.name}",
        "--master-port", str(settings.master_port),
        "-m", module,
        "--config", f"{RECIPE_MOUNT}/{RECIPE_FILE}",
        "--output-dir", output_dir(owner, spec.storage),
    ]


def headless_service(owner: Owner, settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, owner.name, "rendezvous"),
        "spec": {
            "clusterIP": "None",
            # the rendezvous must resolve before pod 0 reports ready
            "publishNotReadyAddresses": True,
            "selector": owner_selector(owner),
            "ports": [{"name": "rendezvous", "port": settings.master_port, "targetPort": settings.master_port}],
        },
    }


def training_manifests(owner: Owner, spec: JobSpec, recipe: dict[str, Any], settings: Settings,
                       module: str) -> list[dict[str, Any]]:
    per_node = spec.resources.gpus or 1
    env: list[dict[str, Any]] = [
        {"name": "NODE_RANK", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
        {"name": "NNODES", "value": str(spec.nodes)},
        {"name": "NPROC_PER_NODE", "value": str(per_node)},
        {"name": "MASTER_ADDR", "value": f"{owner.name}-0.{owner.name}"},
        {"name": "MASTER_PORT", "value": str(settings.master_port)},
    ]
    container = stage_container(spec, settings.trainer_image, torchrun_command(owner, spec, settings, module), env)
    container["ports"] = [{"name": "rendezvous", "containerPort": settings.master_port}]
    pod_spec = {
        "subdomain": owner.name,
        "containers": [container],
        "volumes": volumes(owner, spec.storage, spec.resources, secrets=spec.secrets()),
        **scheduling_fields(spec.scheduling),
    }
    manifests = [recipe_configmap(owner, recipe), headless_service(owner, settings)]
    if settings.network_policies:
        manifests.append(job_network_policy(owner))
    return [*manifests, batch_job(owner, spec, pod_spec, completions=spec.nodes, indexed=True)]


def stage_command(owner: Owner, spec: JobSpec, command: str) -> list[str]:
    """``tanuki <command> --config <mounted recipe> --output-dir <PVC path>``."""
    return ["tanuki", command, "--config", f"{RECIPE_MOUNT}/{RECIPE_FILE}", "--output-dir",
            output_dir(owner, spec.storage)]


def single_pod_manifests(owner: Owner, spec: JobSpec, recipe: dict[str, Any], settings: Settings,
                         program: Program) -> list[dict[str, Any]]:
    assert program.command is not None, "a pod stage names its tanuki command"
    command = stage_command(owner, spec, program.command)
    if program.cpus_flag is not None:
        command += [program.cpus_flag, str(whole_cores(spec.resources.cpu))]
    container = stage_container(spec, settings.image(program.image), command, [])
    pod_spec = {"containers": [container], "volumes": volumes(owner, spec.storage, spec.resources,
                                                              secrets=spec.secrets()),
                **scheduling_fields(spec.scheduling)}
    manifests = [recipe_configmap(owner, recipe)]
    if settings.network_policies:
        manifests.append(job_network_policy(owner))
    return [*manifests, batch_job(owner, spec, pod_spec, completions=1, indexed=False)]
