"""The Arena kind: validation, what it renders (SQLite on its own claim, or PostgreSQL from a
Secret), and its reconcile against an in-memory API (waits for its models, serves, keeps serving
while a model rolls out, reports a crash-looping pod)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
import yaml
from fake_kube import FakeKube

from k8s_schemas import example_resources, validate_builtin
from tanuki_operator.api import API_VERSION
from tanuki_operator.handlers.reconcile import reconcile
from tanuki_operator.render import Owner, Settings, render
from tanuki_operator.render.web import issued_tokens
from tanuki_operator.stages import STAGES
from tanuki_operator.validation import validate_spec

SETTINGS = Settings(trainer_image="registry.example/tanuki-trainer:test")
ARENA = next(r for r in example_resources() if r["kind"] == "Arena")
MODELS = {"debug-chat": ("http://debug-chat.ml.svc/v1", "debug-chat"),
          "debug-chat-w8a8": ("http://debug-chat-w8a8.ml.svc/v1", "debug-chat-w8a8")}
POSTGRES = {"urlSecret": {"name": "arena-db", "key": "url"}}


def spec_of(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(ARENA["spec"]), **changes}


def rendered(**changes: Any) -> list[dict[str, Any]]:
    spec, errors = validate_spec("Arena", spec_of(**changes))
    assert spec is not None, errors
    inputs = {"contestant:0:url": MODELS["debug-chat"][0], "contestant:0:model": "debug-chat",
              "contestant:1:url": MODELS["debug-chat-w8a8"][0], "contestant:1:model": "debug-chat-w8a8",
              "results": "/data/evaljob/debug-eval/leaderboard.json"}
    return render(STAGES["Arena"], Owner("Arena", "debug-arena", "ml", "uid-1"), spec, inputs, SETTINGS)


def of_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_sqlite_arena_is_one_pod_replaced_not_rolled_on_a_claim_that_outlives_it() -> None:
    manifests = rendered()
    for manifest in manifests:
        validate_builtin(manifest)
    claim, = of_kind(manifests, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"] and "ownerReferences" not in claim["metadata"]
    deployment, = of_kind(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "votes", "persistentVolumeClaim": {"claimName": "debug-arena-votes"}} in pod["volumes"]
    container = pod["containers"][0]
    assert container["command"][:3] == ["tanuki", "arena", "serve"]
    assert container["securityContext"]["readOnlyRootFilesystem"] and pod["securityContext"]["runAsNonRoot"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    recipe = yaml.safe_load(of_kind(manifests, "ConfigMap")[0]["data"]["recipe.yaml"])
    assert [(c["name"], c["base_url"], c["api_key_env"]) for c in recipe["contestants"]] == [
        ("dpo", MODELS["debug-chat"][0], "CONTESTANT_0_API_KEY"),
        ("dpo-w8a8", MODELS["debug-chat-w8a8"][0], "CONTESTANT_1_API_KEY")]
    assert env_of(deployment)["CONTESTANT_0_API_KEY_FILE"].startswith("/var/run/secrets/tanuki/")
    assert recipe["identity"] == {"mode": "open", "header": "X-Forwarded-User"}
    assert recipe["results"] == "/data/evaljob/debug-eval"  # the EvalJob's output directory
    assert recipe["database_url"] == "sqlite:///arena.db"  # relative: under --output-dir, the claim
    assert recipe["answers_at_start"] is True  # one pod: the page's streams reach the pod that asked
    policy, = of_kind(manifests, "NetworkPolicy")
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]
    service, = of_kind(manifests, "Service")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]


def test_postgres_arena_rolls_several_stateless_pods_and_reads_the_url_and_tokens_from_secrets() -> None:
    manifests = rendered(database=POSTGRES, replicas=3,
                         identity={"mode": "tokens", "tokens": {"name": "voters", "key": "tokens"}})
    assert not of_kind(manifests, "PersistentVolumeClaim")
    deployment, = of_kind(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 3 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = env_of(deployment)
    assert "TANUKI_ARENA_DATABASE_URL" not in env  # never the value: the file of a mounted key
    assert env["TANUKI_ARENA_DATABASE_URL_FILE"].endswith("/url") and env["ARENA_VOTER_TOKENS_FILE"].endswith("/tokens")
    mounted = {v["secret"]["secretName"] for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    assert mounted == {"tanuki-api-key", "arena-db", "voters"}
    recipe = yaml.safe_load(of_kind(manifests, "ConfigMap")[0]["data"]["recipe.yaml"])
    assert recipe["identity"] == {"mode": "tokens", "header": "X-Forwarded-User", "tokens_env": "ARENA_VOTER_TOKENS"}
    assert recipe["answers_at_start"] is False  # a stream may reach another pod: it asks when the page asks


def test_a_changed_recipe_changes_the_pod_template_so_the_pods_restart_with_it() -> None:
    before = of_kind(rendered(), "Deployment")[0]["spec"]["template"]
    after = of_kind(rendered(recipe={"max_tokens": 64}), "Deployment")[0]["spec"]["template"]
    assert before != after and before["spec"] == after["spec"]


@pytest.mark.parametrize(("changes", "field", "said"), [
    ({"replicas": 2}, "replicas", "needs database.urlSecret"),
    ({"identity": {"mode": "tokens"}}, "identity", "either the Secret key of voter:token lines or voters"),
    ({"identity": {"mode": "tokens", "voters": ["a:b"]}}, "identity", "without ':'"),
    ({"storage": None}, "storage", "results and recipe.questions are read from a PVC"),
    ({"contestants": [{"from": {"kind": "ModelServer", "name": "debug-chat"}}]}, "contestants", "at least 2"),
    ({"results": {"from": {"kind": "SFTJob", "name": "debug-sft"}}}, "results", "EvalJob"),
    ({"port": 80}, "port", "greater than or equal to 1024"),
])
def test_bad_specs_are_refused_naming_the_field(changes: dict[str, Any], field: str, said: str) -> None:
    spec, errors = validate_spec("Arena", spec_of(**changes))
    assert spec is None
    text = str(errors)
    assert field in text and said in text, text


# ---- reconcile -----------------------------------------------------------------------------------

def put_upstreams(kube: FakeKube, phase: str = "Running") -> None:
    for name, (url, model) in MODELS.items():
        kube.put({"apiVersion": API_VERSION, "kind": "ModelServer", "metadata": {"name": name, "namespace": "ml"},
                  "spec": {}, "status": {"phase": phase, "outputs": {"url": url, "model": model},
                                         "rollout": {"stable": {"revision": "r1", "model": "/data/m"}}}})
    kube.put({"apiVersion": API_VERSION, "kind": "EvalJob", "metadata": {"name": "debug-eval", "namespace": "ml"},
              "spec": {}, "status": {"phase": "Succeeded",
                                     "outputs": {"leaderboard": "/data/evaljob/debug-eval/leaderboard.json"}}})


def step(kube: FakeKube, arena: dict[str, Any]) -> dict[str, Any]:
    key = (API_VERSION, "Arena", "ml", arena["metadata"]["name"])
    outcome = reconcile(kube, SETTINGS, "Arena", copy.deepcopy(kube.objects[key]))
    if outcome.status:
        kube.patch_status(API_VERSION, "Arena", "ml", arena["metadata"]["name"], outcome.status)
    return kube.objects[key]["status"]


def test_an_arena_waits_for_its_models_serves_at_its_service_and_keeps_serving_while_one_rolls_out() -> None:
    kube = FakeKube()
    arena = kube.put({**copy.deepcopy(ARENA), "metadata": {"name": "debug-arena", "namespace": "ml"}})
    status = step(kube, arena)
    assert status["phase"] == "Waiting" and "ModelServer/debug-chat" in status["message"]
    assert not kube.of_kind("Deployment")

    put_upstreams(kube)
    status = step(kube, arena)
    assert (status["phase"], status["conditions"][-1]["reason"]) == ("Pending", "PodsStarting")
    assert kube.get("v1", "PersistentVolumeClaim", "ml", "debug-arena-votes") is not None
    recipe = yaml.safe_load(kube.get("v1", "ConfigMap", "ml", "debug-arena-recipe")["data"]["recipe.yaml"])
    assert [c["base_url"] for c in recipe["contestants"]] == [url for url, _ in MODELS.values()]
    kube.objects[("apps/v1", "Deployment", "ml", "debug-arena")]["status"] = {"readyReplicas": 1}
    status = step(kube, arena)
    assert status["phase"] == "Running" and status["outputs"]["url"] == kube.service_url("ml", "debug-arena", 80)

    put_upstreams(kube, phase="Pending")  # debug-chat-w8a8 rolls out a new revision, say
    status = step(kube, arena)
    assert status["phase"] == "Running" and "waits to apply" in status["message"]
    assert kube.get("apps/v1", "Deployment", "ml", "debug-arena") is not None


def test_a_crash_looping_arena_pod_is_reported_with_its_last_words() -> None:
    kube = FakeKube()
    arena = kube.put({**copy.deepcopy(ARENA), "metadata": {"name": "debug-arena", "namespace": "ml"}})
    put_upstreams(kube)
    step(kube, arena)
    labels = kube.get("apps/v1", "Deployment", "ml", "debug-arena")["spec"]["template"]["metadata"]["labels"]
    kube.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug-arena-abc", "namespace": "ml",
                                                               "labels": labels},
              "status": {"containerStatuses": [{"name": "arena", "restartCount": 4, "state": {"waiting": {
                  "reason": "CrashLoopBackOff", "message": "back-off"}}, "lastState": {"terminated": {
                      "exitCode": 2, "message": "identity.tokens_env: ARENA_VOTER_TOKENS_FILE is not set"}}}]}})
    status = step(kube, arena)
    assert status["phase"] == "Pending" and "CrashLoopBackOff" in status["message"]
    assert "ARENA_VOTER_TOKENS_FILE" in status["message"]


def test_issued_tokens_keep_a_voters_token_add_new_voters_and_drop_removed_ones() -> None:
    fresh = iter(f"token-{n:016d}" for n in range(10))
    first = issued_tokens("", ["hanako", "taro"], lambda: next(fresh))
    assert first == "hanako:token-0000000000000000\ntaro:token-0000000000000001\n"
    again = issued_tokens(first, ["taro", "jiro"], lambda: next(fresh))
    assert again == "taro:token-0000000000000001\njiro:token-0000000000000002\n"


def test_the_operator_issues_voter_tokens_into_a_secret_the_pod_mounts_and_keeps_them() -> None:
    kube = FakeKube()
    identity = {"mode": "tokens", "voters": ["hanako", "taro"]}
    arena = kube.put({**copy.deepcopy(ARENA), "metadata": {"name": "debug-arena", "namespace": "ml"},
                      "spec": spec_of(identity=identity)})
    put_upstreams(kube)
    step(kube, arena)
    secret = kube.get("v1", "Secret", "ml", "debug-arena-voter-tokens")
    lines = base64.b64decode(secret["data"]["tokens"]).decode().splitlines()
    assert [line.split(":")[0] for line in lines] == ["hanako", "taro"]
    assert all(len(line.split(":", 1)[1]) >= 16 for line in lines)
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "Arena"  # it goes with the Arena
    deployment = kube.get("apps/v1", "Deployment", "ml", "debug-arena")
    assert env_of(deployment)["ARENA_VOTER_TOKENS_FILE"] == "/var/run/secrets/tanuki/voters/tokens"
    template = deployment["spec"]["template"]
    assert {"name": "voters", "secret": {"secretName": "debug-arena-voter-tokens", "defaultMode": 0o440}} in \
        template["spec"]["volumes"]

    key = (API_VERSION, "Arena", "ml", "debug-arena")
    kube.objects[key]["spec"]["identity"] = {"mode": "tokens", "voters": ["hanako", "taro", "jiro"]}
    kube.objects[key]["metadata"]["generation"] += 1
    step(kube, arena)
    after = base64.b64decode(kube.get("v1", "Secret", "ml", "debug-arena-voter-tokens")["data"]["tokens"]).decode()
    assert after.splitlines()[:2] == lines and after.splitlines()[2].startswith("jiro:")
    restarted = kube.get("apps/v1", "Deployment", "ml", "debug-arena")["spec"]["template"]
    assert restarted["metadata"]["annotations"] != template["metadata"]["annotations"]  # pods read tokens at start
