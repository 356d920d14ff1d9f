"""Arena → recipe ConfigMap, votes claim, Deployment, Service and NetworkPolicy (pure).

The pods run ``tanuki arena serve`` from the mounted recipe. With SQLite the database lives on the
ReadWriteOnce claim ``<name>-votes``: one pod, replaced rather than rolled (``Recreate``), since two
processes on two nodes cannot share one SQLite file. With PostgreSQL (``database.urlSecret``) the
pods are stateless and roll one by one. The claim carries no owner reference: deleting the Arena
keeps its votes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

from tanuki_operator.api.arena import VOTER_TOKENS_ENV, ArenaSpec
from tanuki_operator.render.common import (
    RECIPE_FILE,
    RECIPE_MOUNT,
    SECRETS_MOUNT,
    WRITABLE,
    Owner,
    Settings,
    container_security_context,
    labels,
    metadata,
    network_policy,
    pod_security_context,
    recipe_configmap,
    scheduling_fields,
    secret_file_env,
    secret_volumes,
    writable_env,
)
from tanuki_operator.stages import Program

VOTES_MOUNT = "/var/lib/tanuki-arena"
"""Where the votes claim is mounted; ``tanuki arena serve --output-dir`` (SQLite's file is there)."""
TOKENS_KEY = "tokens"
"""The key of ``<name>-voter-tokens``."""
ISSUED_MOUNT = f"{SECRETS_MOUNT}/voters"
"""Where the issued tokens are mounted."""
RECIPE_HASH = "llm.tanuki.dev/recipe-hash"
"""Pod annotation: the hash of the recipe the pods were started with."""
SERVICE_PORT = 80
"""The port of the ``<name>`` Service people's browsers (or the auth proxy) reach."""


def votes_claim_name(owner: Owner) -> str:
    return f"{owner.name}-votes"


def voter_tokens_name(owner: Owner) -> str:
    return f"{owner.name}-voter-tokens"


def issued_tokens(existing: str, voters: list[str], new_token: Callable[[], str]) -> str:
    """The ``voter:token`` lines of ``voters``: a voter listed in ``existing`` keeps their token, a new
    one gets ``new_token()``, one no longer listed is left out."""
    known = dict(line.split(":", 1) for line in existing.splitlines() if ":" in line)
    return "".join(f"{voter}:{known.get(voter) or new_token()}\n" for voter in voters)


def voter_tokens_secret(owner: Owner, lines: str) -> dict[str, Any]:
    """The Secret of the tokens the operator issued (owned: it goes with the Arena)."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata(owner, voter_tokens_name(owner), "voters"),
            "type": "Opaque", "data": {TOKENS_KEY: base64.b64encode(lines.encode()).decode()}}


def web_selector(owner: Owner) -> dict[str, str]:
    return labels(owner, "web")


def serve_command(spec: ArenaSpec, program: Program) -> list[str]:
    """``tanuki <command> serve`` on every interface of the pod, at ``spec.port``."""
    assert program.command is not None, "a web stage names its tanuki command"
    return ["tanuki", program.command, "serve", "--config", f"{RECIPE_MOUNT}/{RECIPE_FILE}",
            "--output-dir", VOTES_MOUNT, "--host", "0.0.0.0", "--port", str(spec.port)]  # noqa: S104 - a pod's own interfaces


def votes_claim(owner: Owner, spec: ArenaSpec) -> dict[str, Any]:
    sqlite = spec.database.sqlite
    claim: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": sqlite.size}}}
    if sqlite.storageClassName:
        claim["storageClassName"] = sqlite.storageClassName
    meta = metadata(owner, votes_claim_name(owner), "votes")
    del meta["ownerReferences"]  # the votes outlive the Arena
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": claim}


def _volumes(owner: Owner, spec: ArenaSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts): recipe, votes (SQLite: the claim; PostgreSQL: scratch), /tmp, the data PVC
    read-only, and one per Secret key."""
    votes: dict[str, Any] = ({"persistentVolumeClaim": {"claimName": votes_claim_name(owner)}}
                             if spec.database.urlSecret is None else {"emptyDir": {}})
    volumes = [{"name": "recipe", "configMap": {"name": f"{owner.name}-recipe"}}, {"name": "votes", **votes},
               {"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "recipe", "mountPath": RECIPE_MOUNT, "readOnly": True},
              {"name": "votes", "mountPath": VOTES_MOUNT}, {"name": "tmp", "mountPath": WRITABLE}]
    if spec.storage is not None:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": spec.storage.claimName,
                                                                  "readOnly": True}})
        mounts.append({"name": "data", "mountPath": spec.storage.mountPath, "readOnly": True})
    key_volumes, key_mounts = secret_volumes(spec.secrets())
    volumes += key_volumes
    mounts += key_mounts
    if spec.identity.issued:
        volumes.append({"name": "voters", "secret": {"secretName": voter_tokens_name(owner), "defaultMode": 0o440}})
        mounts.append({"name": "voters", "mountPath": ISSUED_MOUNT, "readOnly": True})
    return volumes, mounts


def _env(spec: ArenaSpec) -> list[dict[str, Any]]:
    env = [{"name": "PYTHONUNBUFFERED", "value": "1"}, *writable_env(), *secret_file_env(spec.secrets())]
    if spec.identity.issued:
        env.append({"name": f"{VOTER_TOKENS_ENV}_FILE", "value": f"{ISSUED_MOUNT}/{TOKENS_KEY}"})
    return env


def deployment(owner: Owner, spec: ArenaSpec, recipe: dict[str, Any], settings: Settings,
               program: Program) -> dict[str, Any]:
    selector = web_selector(owner)
    # the pods read the recipe once, at start: a changed recipe is a changed template, so it rolls out
    # (the voters too: tokens are read at start as well)
    started_with = {"recipe": recipe, "voters": spec.identity.voters}
    recipe_hash = hashlib.sha256(json.dumps(started_with, sort_keys=True).encode()).hexdigest()[:16]
    volumes, mounts = _volumes(owner, spec)
    probe = {"httpGet": {"path": "/healthz", "port": "http"}}
    amounts = {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    container = {
        "name": "arena",
        "image": spec.image or settings.image(program.image),
        "command": serve_command(spec, program),
        "env": _env(spec),
        "ports": [{"name": "http", "containerPort": spec.port}],
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "volumeMounts": mounts,
        # the database is migrated before the app listens: the startup probe allows a minute for it
        "startupProbe": {**probe, "periodSeconds": 2, "failureThreshold": 30},
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security_context(),
    }
    sqlite = spec.database.urlSecret is None
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, owner.name, "web"),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector},
            # SQLite: the old pod lets go of the claim (and the file) before the new one opens it
            "strategy": {"type": "Recreate"} if sqlite else
            {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": selector, "annotations": {RECIPE_HASH: recipe_hash}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": volumes,
                    **scheduling_fields(spec.scheduling),
                },
            },
        },
    }


def service(owner: Owner) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(owner, owner.name, "web"),
            "spec": {"selector": web_selector(owner),
                     "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}]}}


def arena_manifests(owner: Owner, spec: ArenaSpec, recipe: dict[str, Any], settings: Settings,
                    program: Program) -> list[dict[str, Any]]:
    """Every child of an Arena, in creation order (the claim before the pods that mount it)."""
    manifests = [recipe_configmap(owner, recipe)]
    if spec.database.urlSecret is None:
        manifests.append(votes_claim(owner, spec))
    manifests += [deployment(owner, spec, recipe, settings, program), service(owner)]
    if settings.network_policies:  # the page is the endpoint: anyone may reach its port, nothing else
        manifests.append(network_policy(owner, web_selector(owner),
                                        [{"ports": [{"protocol": "TCP", "port": spec.port}]}], "web"))
    return manifests
