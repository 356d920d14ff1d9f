"""``tanuki eval [grade|arena|ratings|harness|gate] --config R --output-dir D``: judge-graded scores,
arena ratings, lm-evaluation-harness scores and a canary's quality gates.

- ``grade``: MT-Bench-style two-turn questions, each answer scored 1–10 by the judge → ``grades.json``.
- ``arena``: battles between the targets judged in both orders → ``battles.jsonl`` → ratings.
- ``ratings --battles FILE... [--votes F|URL]``: ratings from any battle logs in FastChat's format
  and ``tanuki arena``'s votes (its export or its database).
- ``harness``: EleutherAI's lm-evaluation-harness tasks per target → ``harness.json``, and the
  ``harness`` key of ``leaderboard.json``.
- ``gate``: is the first target (a canary) not worse than the second (its reference)? The configured
  gates (held-out perplexity, judged battles, grades, harness) → ``gate.json`` and the outputs'
  ``verdict``; a regression is a verdict, not a failure of the program.

Without a mode, the recipe's ``mode`` decides (what the operator's pod and ``tanuki local apply``
run). Outputs: ``leaderboard.json``/``.png``, ``winrate.png``, ``grades.json``, ``index.html``
(one self-contained page showing every result in the directory) and ``outputs.json``. Unusable records are counted by reason and
reported; the exit status is 2 only when nothing at all can be graded or rated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

MODES = ("grade", "arena", "ratings", "harness", "gate")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_leaderboard(out: Path, board: dict[str, Any]) -> None:
    """``leaderboard.json`` = arena rows (``models``), harness scores (``harness``) and a gate's
    verdict (``gate``); a run of one mode keeps what a run of the other wrote into the same directory."""
    from tanuki_pipelines.publish import write_durable

    earlier = _read_json(out / "leaderboard.json") or {}
    merged = {"models": [], **{k: v for k, v in earlier.items() if k == "harness"}, **board}
    write_durable(out / "leaderboard.json", json.dumps(merged, indent=2, ensure_ascii=False) + "\n")


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("mode", nargs="?", choices=MODES, help="what to run (default: the recipe's `mode`)")
    parser.add_argument("--config", type=Path, default=None, help="recipe YAML (optional for `ratings`)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/eval"))
    parser.add_argument("--battles", type=Path, action="append", default=[],
                        help="`ratings`: a battle log in FastChat's format (repeatable)")
    parser.add_argument("--votes", default=None,
                        help="`ratings`: `tanuki arena` votes: its export (JSONL) or its database URL")
    return parser


def rate(records: list[dict[str, Any]], config: Any, out: Path, dropped: dict[str, int] | None = None) -> dict[str, Any]:
    """Ratings, plots and the leaderboard from battle records (raises BadInputError when unratable)."""
    from tanuki_common.errors import BadInputError
    from tanuki_pipelines.eval.ratings import clean, leaderboard, models_of
    from tanuki_pipelines.eval.report import plot_leaderboard, plot_win_rates
    from tanuki_pipelines.publish import publish_file

    log = clean(records)
    log.dropped.update(dropped or {})
    models = models_of(log.battles)
    if len(models) < 2:
        reasons = ", ".join(f"{count} × {reason}" for reason, count in log.dropped.items()) or "no battles"
        raise BadInputError(f"nothing can be rated: {len(log.battles)} usable battles between {len(models)} "
                            f"model(s) (left out: {reasons})")
    anchor = (config.anchor_model, config.anchor_rating) if config.anchor_model else None
    board = leaderboard(log.battles, config.bootstrap_rounds, config.seed, anchor, config.glicko_period,
                        config.glicko_tau, config.prior_sd, config.min_battles)
    board["dropped"] = dict(log.dropped)
    write_leaderboard(out, board)
    for name, plot in (("leaderboard.png", plot_leaderboard), ("winrate.png", plot_win_rates)):
        publish_file(plot(board, out / f".tmp-{name}"), out / name)
    return board


def _arena_of(board: dict[str, Any] | None) -> dict[str, Any] | None:
    return board if board and board.get("models") else None


def main(args: argparse.Namespace) -> int:
    from tanuki_common.errors import BadInputError
    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.eval.config import EvalConfig
    from tanuki_pipelines.eval.report import index_page
    from tanuki_pipelines.outputs import publish_outputs, retract_outputs
    from tanuki_pipelines.preflights import run_preflight
    from tanuki_pipelines.publish import write_durable

    config = load_recipe(EvalConfig, args.config, args.set) if args.config else EvalConfig()
    if getattr(args, "votes", None):
        votes = {"votes_database": args.votes} if "://" in args.votes else {"votes": Path(args.votes).resolve()}
        config = config.model_copy(update={"arena": config.arena.model_copy(update=votes)})
    mode = args.mode or config.mode
    run_preflight(config.model_copy(update={"mode": mode}))
    out = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    retract_outputs(out)
    board = grades = harness = verdict = None
    if mode in ("grade", "arena", "harness", "gate") and not config.targets:
        raise BadInputError("targets: no model to evaluate")
    if mode == "grade":
        from tanuki_pipelines.eval.grade import grade

        grades = grade(config, out)
        write_durable(out / "grades.json", json.dumps(grades, indent=2, ensure_ascii=False) + "\n")
        if not any(scores["graded"] for scores in grades["models"].values()):
            raise BadInputError(f"nothing could be graded: {grades['questions']} questions "
                                f"(left out: {grades['dropped_questions'] or 'none'}), verdicts unreadable: "
                                f"{ {m: s['unparseable'] for m, s in grades['models'].items()} }")
    elif mode == "arena":
        from tanuki_pipelines.eval.arena import all_battles, battles

        log = battles(config, out)
        records, dropped = all_battles(config, list(log.records.values()))
        board = rate(records, config.ratings, out, dropped)
    elif mode == "gate":
        from tanuki_pipelines.eval.gate import evaluate_gates

        verdict = evaluate_gates(config, out)
        write_durable(out / "gate.json", json.dumps(verdict, indent=2, ensure_ascii=False) + "\n")
        write_leaderboard(out, {"gate": verdict})  # what this evaluation ranked: two revisions, one verdict
    elif mode == "harness":
        from tanuki_pipelines.eval.harness import run_harness

        harness = run_harness(config.targets, config.harness, out)
        write_durable(out / "harness.json", json.dumps(harness, indent=2, ensure_ascii=False) + "\n")
        if not harness["models"]:
            raise BadInputError("the harness scored no target: " + "; ".join(
                f"{model}: {error}" for model, error in harness["errors"].items()))
        write_leaderboard(out, {"harness": harness["models"]})
    else:
        from tanuki_pipelines.eval.arena import all_battles
        from tanuki_pipelines.eval.records import read_jsonl

        if not args.battles and not config.arena.battles and config.arena.votes is None \
                and not config.arena.votes_database:
            raise BadInputError("--battles: give at least one battle log (or --votes)")
        records = []
        not_json: dict[str, int] = {}
        for path in args.battles:
            if not path.is_file():
                raise BadInputError(f"--battles: no such file: {path}")
            found, broken = read_jsonl(path)
            records += found
            if broken:
                not_json[f"{path.name}: not JSON"] = broken
        more, more_dropped = all_battles(config, [])
        board = rate(records + more, config.ratings, out, {**not_json, **more_dropped})
    page = index_page(out, board or _arena_of(_read_json(out / "leaderboard.json")),
                      grades or _read_json(out / "grades.json"), harness or _read_json(out / "harness.json"),
                      verdict or _read_json(out / "gate.json"))
    outputs: dict[str, Any] = {"report": str(page), "mode": mode}
    if board:
        from tanuki_pipelines.eval.ratings import record

        top = board["models"][0]
        score = f"BT {top['bt']['rating']:.0f}" if top["bt"]["rating"] is not None else \
            f"BT not estimable ({record(top)})"
        outputs.update(leaderboard=str(out / "leaderboard.json"), top_model=top["model"], top_score=score)
    if grades:
        graded = {m: s["overall"] for m, s in grades["models"].items() if s["overall"] is not None}
        best = max(graded, key=lambda model: graded[model])
        outputs.update(grades=str(out / "grades.json"), top_model=best, top_score=f"{graded[best]:.2f}/10")
    if harness:
        from tanuki_pipelines.eval.harness import best_of

        outputs.update(harness=str(out / "harness.json"), leaderboard=str(out / "leaderboard.json"))
        best = best_of(harness)
        if best:
            outputs.update(top_model=best[0], top_score=best[1])
    if verdict:
        from tanuki_pipelines.eval.gate import compact

        outputs.update(gate=str(out / "gate.json"), leaderboard=str(out / "leaderboard.json"), verdict=compact(verdict))
    publish_outputs(outputs, out)
    print(json.dumps(outputs, ensure_ascii=False))
    return 0
