"""An Arena under ``tanuki local apply``: the Deployment the operator renders runs on the local
kubelet (its votes claim a directory, the tokens the operator issued files of a Secret), and the
page answers at the Service's address only to a voter with a token."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

ARENA = {"apiVersion": "llm.tanuki.dev/v1alpha1", "kind": "Arena", "metadata": {"name": "try-arena"},
         "spec": {"contestants": [{"url": "http://127.0.0.1:9/v1", "model": "a", "name": "alpha"},
                                  {"url": "http://127.0.0.1:9/v1", "model": "b", "name": "beta"}],
                  "identity": {"mode": "tokens", "voters": ["hanako", "taro"]}}}


def test_an_arena_serves_locally_to_the_voters_the_operator_issued_tokens_to(tmp_path: Path) -> None:
    chain = tmp_path / "arena.yaml"
    chain.write_text(yaml.safe_dump(ARENA))
    work = tmp_path / "work"
    runner = subprocess.Popen([sys.executable, "-m", "tanuki_pipelines.cli", "local", "apply", "-f", str(chain),
                               "--workdir", str(work), "--serve-for", "60"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        assert runner.stdout is not None
        url, seen = None, []
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = runner.stdout.readline()
            if not line:
                break
            seen.append(line)
            if found := re.search(r"Arena/try-arena: open (\S+) in a browser", line):
                url = found.group(1)
        assert url is not None, "".join(seen[-20:])
        tokens = dict(line.split(":", 1) for line in
                      (work / "secrets" / "try-arena-voter-tokens" / "tokens").read_text().splitlines())
        assert sorted(tokens) == ["hanako", "taro"]
        assert httpx.get(f"{url}healthz").status_code == 200
        assert httpx.get(url).status_code == 401  # no token, no arena
        page = httpx.get(url, headers={"Authorization": f"Bearer {tokens['hanako']}"})
        assert page.status_code == 200 and "Tanuki アリーナ" in page.text
        assert (work / "try-arena-votes" / "arena.db").is_file()  # SQLite on the votes claim
    finally:
        runner.terminate()
        runner.wait(timeout=60)
