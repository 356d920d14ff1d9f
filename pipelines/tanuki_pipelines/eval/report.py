"""The evaluation's pages: ``leaderboard.png`` (ratings with confidence intervals), ``winrate.png``
(pairwise win rates) and ``index.html``, one self-contained page (images inlined) with the
leaderboard table, the grading scores and the harness scores when present."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_leaderboard(board: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    rows = list(reversed(board["models"]))  # best at the top
    figure, axis = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
    ratings = [row["bt"]["rating"] for row in rows]
    errors = [[row["bt"]["rating"] - row["bt"]["ci_low"] for row in rows],
              [row["bt"]["ci_high"] - row["bt"]["rating"] for row in rows]]
    axis.errorbar(ratings, range(len(rows)), xerr=errors, fmt="o", capsize=4)
    axis.set_yticks(range(len(rows)), [row["model"] for row in rows])
    axis.set_xlabel("Bradley-Terry rating (95% bootstrap interval)")
    axis.set_title("tanuki eval: arena leaderboard")
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_win_rates(board: dict[str, Any], path: Path) -> Path:
    import numpy as np

    plt = _pyplot()
    models = [row["model"] for row in board["models"]]
    matrix = board["win_rate_matrix"]
    values = np.array([[np.nan if a == b or matrix[a].get(b) is None else matrix[a][b] for b in models]
                       for a in models], dtype=float)
    figure, axis = plt.subplots(figsize=(1.1 * len(models) + 2.5, 0.9 * len(models) + 1.8))
    image = axis.imshow(values, vmin=0, vmax=1, cmap="RdYlGn")
    axis.set_xticks(range(len(models)), models, rotation=30, ha="right")
    axis.set_yticks(range(len(models)), models)
    for i in range(len(models)):
        for j in range(len(models)):
            if not np.isnan(values[i, j]):
                axis.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=9)
    axis.set_xlabel("opponent")
    axis.set_ylabel("model (share of its battles won)")
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def index_page(output_dir: Path, board: dict[str, Any] | None, grades: dict[str, Any] | None,
               harness: dict[str, Any] | None = None) -> Path:
    """``index.html`` from whatever this evaluation produced (images embedded)."""
    parts = ["<h1>tanuki eval</h1>"]
    if board:
        parts.append("<h2>Arena</h2>")
        rows = [[r["model"], f"{r['bt']['rating']:.1f}", f"{r['bt']['ci_low']:.1f} – {r['bt']['ci_high']:.1f}",
                 f"{r['glicko2']['rating']:.1f} ± {r['glicko2']['rd']:.1f}", r["battles"], r["wins"], r["losses"],
                 r["ties"], f"{r['win_rate']:.1%}"] for r in board["models"]]
        parts.append(_table(["model", "BT rating", "95% CI", "Glicko-2", "battles", "wins", "losses", "ties",
                             "win rate"], rows))
        for name in ("leaderboard.png", "winrate.png"):
            if (output_dir / name).is_file():
                parts.append(_image(output_dir / name))
        if board.get("dropped"):
            parts.append("<p>Battles left out: " + html.escape(", ".join(
                f"{count} × {reason}" for reason, count in board["dropped"].items())) + "</p>")
    if grades:
        parts.append("<h2>Grading (MT-Bench style, 1–10)</h2>")
        categories = sorted({c for scores in grades["models"].values() for c in scores["categories"]})
        rows = [[model, f"{scores['overall']:.2f}" if scores["overall"] is not None else "–",
                 *[f"{scores['categories'][c]:.2f}" if scores["categories"].get(c) is not None else "–"
                   for c in categories], scores["graded"], scores["unparseable"]]
                for model, scores in grades["models"].items()]
        parts.append(_table(["model", "overall", *categories, "graded turns", "unparseable verdicts"], rows))
    if harness:
        parts.append("<h2>lm-evaluation-harness</h2>")
        rows = [[model, task, metric, f"{value:.4f}"] for model, tasks in harness["models"].items()
                for task, metrics in tasks.items() for metric, value in metrics.items()]
        parts.append(_table(["model", "task", "metric", "value"], rows))
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child{text-align:left}"
             "img{max-width:100%;display:block;margin:1em 0}")
    page = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tanuki eval</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
    path = output_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
