"""``tanuki arena serve --config R --output-dir D [--host H] [--port P]``: the blind side-by-side
arena where people vote (see ``tanuki_pipelines.arena.app``); its SQLite database, when it uses
one, lives in ``D``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ACTIONS = ("serve",)


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("action", choices=ACTIONS, help="`serve`: run the arena's web app")
    parser.add_argument("--config", type=Path, required=True, help="recipe YAML")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/arena"))
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (a pod: 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8080)
    return parser


def results_beside(directory: Path | None) -> dict[str, Any]:
    """An EvalJob's judged arena leaderboard and MT-Bench grades, where present."""
    found: dict[str, Any] = {}
    if directory is None:
        return found
    for key, name in (("arena", "leaderboard.json"), ("grades", "grades.json")):
        try:
            data = json.loads((directory / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("models"):
            found[key] = data
    return found


def main(args: argparse.Namespace) -> int:
    import uvicorn

    from tanuki_pipelines.arena.app import create_app
    from tanuki_pipelines.arena.config import ArenaServeConfig
    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.votes.database import database_url, open_database

    config = load_recipe(ArenaServeConfig, args.config, args.set)
    out = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    engine = open_database(database_url(config.database_url, out))
    app = create_app(config, engine, lambda: results_beside(config.results))
    print(f"[tanuki arena] http://{args.host}:{args.port}/ with {len(config.contestants)} models, "
          f"database {engine.url.render_as_string()}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=True,
                forwarded_allow_ips="*")
    return 0
