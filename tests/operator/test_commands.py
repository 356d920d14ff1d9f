"""No dangling commands: every command the operator renders exists in the image that runs it.

Each kind of every example is rendered as the operator would (upstreams finished, placeholder
outputs); every container command and exec probe must resolve — a ``tanuki`` subcommand that is
registered, a ``-m`` module that imports, a console script that is installed — and the image
that runs it (the trainer image for batch stages, the serving image for ModelServers) must
install the package extras the stage's registry entry names. Stages whose program does not exist
yet render nothing (the operator fails them as StageNotAvailable).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from k8s_schemas import example_resources
from tanuki_operator.render import Settings
from tanuki_operator.render_cli import render_file
from tanuki_operator.stages import STAGES, Workload
from tanuki_pipelines.cli import all_commands

REPO = Path(__file__).resolve().parents[2]
IMAGE_OF = {"trainer": REPO / "images/trainer/Dockerfile", "serving": REPO / "images/serving/Dockerfile",
            "quantize": REPO / "images/quantize/Dockerfile"}
EXAMPLE_FILES = sorted((REPO / "examples").glob("*.yaml"))


def dockerfile_labels(text: str) -> dict[str, str]:
    joined = re.sub(r"\\\n\s*", " ", text)
    return dict(re.findall(r'([\w.-]+)="([^"]*)"', " ".join(line for line in joined.splitlines() if line.startswith("LABEL "))))


def image_for(stage: Any) -> str:
    """The default image a stage's pods run (see Settings.image)."""
    return "serving" if stage.workload is Workload.SERVER else stage.program.image


def unresolved(command: list[str]) -> str | None:
    """Why ``command`` would not start in an image of this package, or None."""
    program = command[0]
    if program == "tanuki":
        return None if command[1] in all_commands() else f"`tanuki {command[1]}` is not a registered subcommand"
    if program in ("python3", "python", "torchrun"):
        if program == "torchrun" and importlib.util.find_spec("torch.distributed.run") is None:
            return "torchrun: torch.distributed.run does not import"
        module = command[command.index("-m") + 1]
        if importlib.util.find_spec(module) is None:
            return f"-m {module} does not import"
        if module == "tanuki_serving.serve":  # it replaces itself with vLLM's server
            from tanuki_serving.launch import VLLM_SERVER_MODULE

            if importlib.util.find_spec(VLLM_SERVER_MODULE) is None:
                return f"{VLLM_SERVER_MODULE} does not import"
        return None
    if shutil.which(program, path=str(Path(sys.executable).parent)) or shutil.which(program):
        return None
    return f"{program}: no such executable"


def commands_of(manifest: dict[str, Any]) -> list[list[str]]:
    """Container commands and exec probes of a workload manifest (RayJobs: their entrypoint, and what
    their submitter's script runs after it)."""
    if manifest["kind"] == "RayJob":
        script = manifest["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["command"][-1]
        after = script.splitlines()[-1].split()
        assert after[0] == "exec", script
        return [shlex.split(manifest["spec"]["entrypoint"]), after[1:]]
    template = (manifest.get("spec") or {}).get("template")
    if not template:
        return []
    found = []
    for container in template["spec"]["containers"]:
        found.append(container["command"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if "exec" in (container.get(probe) or {}):
                found.append(container[probe]["exec"]["command"])
    return found


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_rendered_command_exists(path: Path) -> None:
    import yaml

    resources = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    documents, errors = render_file(resources, "ml", {})
    assert errors == []
    checked = 0
    for document in documents:
        if isinstance(document, str):
            continue
        for command in commands_of(document):
            problem = unresolved(command)
            assert problem is None, f"{path.name}: {document['kind']}/{document['metadata']['name']}: {problem}"
            checked += 1
    assert checked


@pytest.mark.parametrize("kind", sorted(STAGES))
def test_each_stage_program_exists_and_its_image_installs_its_extras(kind: str) -> None:
    stage = STAGES[kind]
    if stage.program is None:  # rendered as nothing: the operator reports StageNotAvailable
        return
    program = stage.program
    if program.command is not None:
        assert program.command in all_commands(), f"{kind}: `tanuki {program.command}` is not registered"
    if program.module is not None:
        assert importlib.util.find_spec(program.module) is not None, f"{kind}: -m {program.module} does not import"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(program.extras) <= set(extras)
    dockerfile = IMAGE_OF[image_for(stage)].read_text()
    labelled = set(dockerfile_labels(dockerfile).get("dev.tanuki.extras", "").split())
    assert set(program.extras) <= labelled, f"{kind}: its image does not carry the extras {program.extras}"
    installs = re.sub(r"\\\n\s*", " ", dockerfile)
    installed = {extra for group in re.findall(r'"\.\[([a-z,-]+)\]"', installs) for extra in group.split(",")}
    for extra in labelled:
        if extra in installed:
            continue
        # an extra installed piecewise: each requirement is on the pip line or comes with the base image
        base = re.search(r"^FROM (\S+)", dockerfile, re.M).group(1)
        for requirement in extras[extra]:
            name, _, version = requirement.partition("==")
            on_pip_line = re.search(rf'pip install[^\n]*\b{re.escape(name)}==', installs)
            from_base = name == "vllm" and base == f"vllm/vllm-openai:v{version}"
            assert on_pip_line or from_base, f"{kind}: the {image_for(stage)} image lacks {requirement}"


def test_unavailable_stages_are_exactly_those_without_a_program() -> None:
    documents, _ = render_file(example_resources(), "ml", {})
    comments = [d for d in documents if isinstance(d, str) and "StageNotAvailable" in d]
    unavailable = {kind for kind, stage in STAGES.items() if not stage.available}
    assert {c.split("/")[0] for c in comments} == unavailable
    assert Settings().trainer_image and Settings().serving_image
