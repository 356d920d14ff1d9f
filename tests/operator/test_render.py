"""The pure render layer: golden manifests per kind, every manifest valid offline, key behaviour."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s_schemas import FOREIGN_KINDS, example_resources, validate_builtin
from tanuki_operator.lineage import resolve
from tanuki_operator.render import Owner, Settings, StageNotAvailable, render
from tanuki_operator.stages import STAGES
from tanuki_operator.validation import validate_spec

GOLDEN = Path(__file__).parent / "golden"
SETTINGS = Settings(trainer_image="registry.example/tanuki-trainer:test",
                    serving_image="registry.example/tanuki-serving:test")
UPSTREAM_OUTPUTS = {"checkpoint": "/data/upstream/checkpoints/step_00000150",
                    "dataset": "/data/upstream/synth.jsonl", "dialogues": "/data/upstream/dialogues.jsonl",
                    "url": "http://upstream.default.svc/v1", "model": "upstream",
                    "tokens": "/data/upstream/tokens", "tokenizer": "/data/upstream/tokenizer",
                    "leaderboard": "/data/upstream/leaderboard.json"}
EXAMPLES = {r["metadata"]["name"]: r for r in example_resources()}
RENDERED = sorted(name for name, r in EXAMPLES.items() if STAGES[r["kind"]].available)
"""Examples whose stage this version has (the others fail as StageNotAvailable, rendering nothing)."""


def succeeded(kind: str, name: str) -> dict[str, Any]:
    return {"phase": "Running" if kind == "ModelServer" else "Succeeded", "outputs": UPSTREAM_OUTPUTS}


def render_example(name: str, **changes: Any) -> list[dict[str, Any]]:
    resource = EXAMPLES[name]
    spec, errors = validate_spec(resource["kind"], {**resource["spec"], **changes})
    assert not errors, errors
    resolution = resolve(spec, spec.storage, succeeded)
    assert resolution.ready
    owner = Owner(kind=resource["kind"], name=name, namespace="ml", uid="0000-uid")
    return render(STAGES[resource["kind"]], owner, spec, resolution.inputs, SETTINGS)


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(m for m in manifests if m["kind"] == kind)


@pytest.mark.parametrize("name", RENDERED)
def test_rendered_manifests_validate_offline(name: str) -> None:
    for manifest in render_example(name):
        if (manifest["apiVersion"], manifest["kind"]) in FOREIGN_KINDS:
            assert manifest["spec"], manifest["kind"]
            continue
        validate_builtin(manifest)
        if manifest["kind"] == "PersistentVolumeClaim":  # an Arena's votes outlive it: no owner
            assert "ownerReferences" not in manifest["metadata"] and manifest["metadata"]["name"] == f"{name}-votes"
        else:
            assert manifest["metadata"]["ownerReferences"][0]["uid"] == "0000-uid"
        assert manifest["metadata"]["namespace"] == "ml"


@pytest.mark.parametrize("name", RENDERED)
def test_golden(name: str) -> None:
    text = yaml.safe_dump_all(render_example(name), sort_keys=True, allow_unicode=True)
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}: run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"{name}: render changed; UPDATE_GOLDEN=1 if intended"


def test_multi_node_pretrain_is_an_indexed_job_with_rendezvous_at_pod_0() -> None:
    manifests = render_example("tanuki-8b")
    assert [m["kind"] for m in manifests] == ["ConfigMap", "Service", "NetworkPolicy", "Job"]
    job, service = by_kind(manifests, "Job"), by_kind(manifests, "Service")
    assert service["spec"]["clusterIP"] == "None"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 8
    assert spec["backoffLimit"] == 20
    assert spec["podFailurePolicy"]["rules"][0] == {
        "action": "FailJob", "onExitCodes": {"operator": "In", "values": [2]}}
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == "tanuki-8b" and pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    command = container["command"]
    assert command[:4] == ["torchrun", "--nnodes", "8", "--nproc-per-node"] and command[4] == "8"
    assert command[command.index("--node-rank") + 1] == "$(NODE_RANK)"
    assert command[command.index("--master-addr") + 1] == "tanuki-8b-0.tanuki-8b"
    assert command[command.index("-m") + 1] == "tanuki_pipelines.pretrain.train"
    assert command[-1] == "/data/pretrainjob/tanuki-8b"
    env = {e["name"]: e for e in container["env"]}
    assert "job-completion-index" in env["NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    policy = by_kind(manifests, "NetworkPolicy")  # NCCL and the rendezvous: pods of this job reach each other
    assert \
        policy["spec"]["podSelector"]["matchLabels"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert policy["spec"]["ingress"] == [{"from": [{"podSelector": policy["spec"]["podSelector"]}]}]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}} in pod["volumes"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["priorityClassName"] == "training-high"


def test_kueue_queue_labels_the_job_and_creates_it_suspended() -> None:
    job = by_kind(render_example("tanuki-8b"), "Job")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-training"
    assert job["spec"]["suspend"] is True
    plain = by_kind(render_example("debug-base"), "Job")
    assert plain["spec"]["suspend"] is False and "kueue.x-k8s.io/queue-name" not in plain["metadata"]["labels"]


def test_recipe_configmap_binds_upstream_sources() -> None:
    from tanuki_pipelines.pretrain.config import PretrainConfig
    from tanuki_pipelines.tokenize.config import TokenizeConfig

    tokenize = yaml.safe_load(by_kind(render_example("tanuki-corpus"), "ConfigMap")["data"]["recipe.yaml"])
    sources = {s["name"]: s["path"] for s in tokenize["sources"]}
    curated = UPSTREAM_OUTPUTS["dataset"]  # the CurateJob's, one directory per source (subset)
    assert sources == {"ja": f"{curated}/ja", "en": f"{curated}/en", "synth": UPSTREAM_OUTPUTS["dataset"]}
    assert tokenize["tokenizer"] == "/data/tokenizer/tanuki-65k"
    TokenizeConfig.model_validate(tokenize)  # the stage accepts what the operator mounts
    pretrain = yaml.safe_load(by_kind(render_example("tanuki-8b"), "ConfigMap")["data"]["recipe.yaml"])
    assert pretrain["data"]["store"] == UPSTREAM_OUTPUTS["tokens"]
    assert all("path" not in source for source in pretrain["data"]["sources"])
    PretrainConfig.model_validate(pretrain)


def test_tokenize_job_is_one_pod_within_its_cores_or_a_rayjob() -> None:
    job = by_kind(render_example("debug-tokens"), "Job")
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["tanuki", "tokenize"] and command[-2:] == ["--cpus", "1"]
    rayjob = by_kind(render_example("tanuki-corpus"), "RayJob")
    assert rayjob["spec"]["entrypoint"].startswith("tanuki tokenize ") and "--ray-address auto" in rayjob["spec"]["entrypoint"]
    workers = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert workers["replicas"] == 16
    worker = workers["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in worker["resources"]["limits"] and worker["resources"]["limits"]["cpu"] == "32"
    assert any(mount["mountPath"] == "/data" for mount in worker["volumeMounts"])


def test_single_pod_stage_runs_the_tanuki_cli() -> None:
    manifests = render_example("debug-moe")
    job = by_kind(manifests, "Job")
    assert "completionMode" not in job["spec"]
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["tanuki", "upcycle"]
    recipe = yaml.safe_load(by_kind(manifests, "ConfigMap")["data"]["recipe.yaml"])
    assert recipe["source"] == UPSTREAM_OUTPUTS["checkpoint"]


def test_stages_without_a_program_render_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    # every kind has its program today; a kind added before its program behaves like this
    monkeypatch.setitem(STAGES, "DPOJob", dataclasses.replace(STAGES["DPOJob"], program=None))
    with pytest.raises(StageNotAvailable):
        render_example("debug-dpo")
    assert sorted(name for name in EXAMPLES if name not in RENDERED) == []  # the examples' kinds all render


def test_every_pod_is_restricted_and_reads_secrets_from_files() -> None:
    for name in RENDERED:
        for manifest in render_example(name):
            template = (manifest.get("spec") or {}).get("template")
            if manifest["kind"] not in ("Job", "Deployment"):
                continue
            pod = template["spec"]
            assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] >= 10000
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert pod["automountServiceAccountToken"] is False
            for container in pod["containers"]:
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
                assert context["capabilities"] == {"drop": ["ALL"]}
                assert not any("valueFrom" in env and "secretKeyRef" in env["valueFrom"]
                               for env in container.get("env") or [])
                assert any(mount["mountPath"] == "/tmp" for mount in container["volumeMounts"])


def test_model_server_revision_deployment_router_and_autoscaler() -> None:
    manifests = render_example("debug-chat")
    deployments = {m["metadata"]["labels"]["app.kubernetes.io/component"]: m
                   for m in manifests if m["kind"] == "Deployment"}
    server, router = deployments["server"], deployments["router"]
    revision = server["metadata"]["labels"]["llm.tanuki.dev/revision"]
    assert server["metadata"]["name"] == f"debug-chat-{revision}"
    container = server["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    # the API key comes from the mounted Secret file, through tanuki_serving.serve
    assert command[:5] == ["python3", "-m", "tanuki_serving.serve", "--api-key-file",
                           "/var/run/secrets/tanuki/api-key/api-key"]
    assert command[command.index("--model") + 1] == UPSTREAM_OUTPUTS["checkpoint"]
    volumes = {v["name"]: v for v in server["spec"]["template"]["spec"]["volumes"]}
    assert volumes["api-key"]["secret"]["secretName"] == "tanuki-api-key"
    assert {probe: container[probe]["httpGet"]["path"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")} \
        == dict.fromkeys(("startupProbe", "readinessProbe", "livenessProbe"), "/health")
    assert server["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # the router discovers every vLLM pod of this ModelServer (all revisions) by label
    command = router["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[0] == "vllm-router" and "--service-discovery" in command
    pod_labels = server["spec"]["template"]["metadata"]["labels"]
    selectors = command[command.index("--selector") + 1:command.index("--service-discovery-port")]
    assert all(pod_labels[key] == value for key, value in (item.split("=", 1) for item in selectors))
    assert "llm.tanuki.dev/revision" not in {item.split("=")[0] for item in selectors}
    assert command[command.index("--policy") + 1] == "cache_aware"
    service = next(m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"] == "debug-chat")
    assert service["spec"]["selector"].items() <= router["spec"]["template"]["metadata"]["labels"].items()
    role = by_kind(manifests, "Role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    # the autoscaler scales the ModelServer's /scale; the operator splits replicas across revisions
    hpa = by_kind(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "llm.tanuki.dev/v1alpha1", "kind": "ModelServer",
                                             "name": "debug-chat"}
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "vllm_num_requests_waiting"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"  # no smoke prompts in the debug example
    keda_manifests = render_example("tanuki-8x8b-chat")
    big = next(m for m in keda_manifests if m["kind"] == "Deployment"
               and m["metadata"]["labels"]["app.kubernetes.io/component"] == "server")
    smoke = big["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["exec"]["command"]
    assert smoke[:3] == ["python3", "-m", "tanuki_serving.smoke"]
    assert smoke[smoke.index("--prompt") + 1] == "日本の首都はどこですか？"
    keda = by_kind(keda_manifests, "ScaledObject")
    assert keda["spec"]["maxReplicaCount"] == 8 and keda["spec"]["scaleTargetRef"]["kind"] == "ModelServer"
    assert keda["spec"]["triggers"][0]["metadata"]["query"].startswith("avg(vllm:num_requests_waiting{")


def test_continued_pretraining_starts_from_the_upstream_checkpoint() -> None:
    recipe = yaml.safe_load(by_kind(render_example("tanuki-8x8b"), "ConfigMap")["data"]["recipe.yaml"])
    assert recipe["init_from"] == UPSTREAM_OUTPUTS["checkpoint"]
    assert recipe["model"]["num_experts"] == 8 and recipe["train"]["router_aux_loss"] == 0.02
