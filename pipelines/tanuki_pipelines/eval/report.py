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
    """Ratings with their intervals (an unbounded side drawn as an arrow to the edge); a model
    without a rating is written at the edge it stands toward, with its record, and no point."""
    from tanuki_pipelines.eval.ratings import record

    plt = _pyplot()
    rows = list(reversed(board["models"]))  # best at the top
    figure, axis = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.8))
    rated = [(y, row) for y, row in enumerate(rows) if row["bt"]["rating"] is not None]
    finite = [v for _, row in rated for v in (row["bt"]["rating"], row["bt"].get("ci_low"), row["bt"].get("ci_high"))
              if v is not None]
    low, high = (min(finite), max(finite)) if finite else (900.0, 1100.0)
    margin = max(50.0, 0.25 * (high - low))
    left, right = low - margin, high + margin
    for y, row in rated:
        bt = row["bt"]
        ci_low = bt.get("ci_low", bt["rating"])
        ci_high = bt.get("ci_high", bt["rating"])
        axis.errorbar([bt["rating"]], [y], xerr=[[bt["rating"] - (left if ci_low is None else ci_low)],
                                                  [(right if ci_high is None else ci_high) - bt["rating"]]],
                      fmt="o", capsize=4, color="C1" if bt["separation"] else "C0")
        for edge, bound in ((left, ci_low), (right, ci_high)):
            if bound is None:
                axis.annotate("", xy=(edge, y), xytext=(bt["rating"], y), arrowprops={"arrowstyle": "->"})
    for y, row in enumerate(rows):
        if row["bt"]["rating"] is None:
            where = row["bt"]["separation"]
            x, align = {"above": (right, "right"), "below": (left, "left")}.get(where, ((left + right) / 2, "center"))
            axis.text(x, y, f"not estimable: {row['bt']['why']} ({record(row)})", ha=align, va="center",
                      fontsize=8, color="C3")
    axis.set_xlim(left, right)
    axis.set_ylim(-0.7, len(rows) - 0.3)
    axis.set_yticks(range(len(rows)), [row["model"] + (" (few battles)" if row["few_battles"] else "")
                                       for row in rows])
    prior = board["bt_method"]["prior_sd"]
    axis.set_xlabel("Bradley-Terry rating (95% bootstrap interval)"
                    + (f"; Gaussian prior, SD {prior:g}" if prior is not None else "; maximum likelihood"))
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
               harness: dict[str, Any] | None = None, gate: dict[str, Any] | None = None) -> Path:
    """``index.html`` from whatever this evaluation produced (images embedded)."""
    parts = ["<h1>tanuki eval</h1>"]
    if gate:
        against = html.escape(gate["reference"]) if gate.get("reference") else "its absolute bars"
        parts.append(f"<h2>Quality gate: {html.escape(gate['canary'])} against {against}</h2>")
        parts.append(f"<p><b>{html.escape(gate['reason'])}</b>: {html.escape(gate['message'])}</p>")
        rows = [[found["gate"], found["reason"], found["message"],
                 ", ".join(f"{name} {value:.4g}" for name, value in found["figures"].items())] for found in gate["gates"]]
        parts.append(_table(["gate", "verdict", "why", "figures"], rows))
    if board:
        parts.append("<h2>Arena</h2>")
        from tanuki_pipelines.eval.ratings import bt_cells, method_notes

        rows = [[r["model"] + (" †" if r["few_battles"] else ""), *bt_cells(r),
                 f"{r['glicko2']['rating']:.1f} ± {r['glicko2']['rd']:.1f}", r["battles"], r["wins"], r["losses"],
                 r["ties"], f"{r['win_rate']:.1%}"] for r in board["models"]]
        parts.append(_table(["model", "BT rating", "95% CI", "Glicko-2", "battles", "wins", "losses", "ties",
                             "win rate"], rows))
        parts += [f"<p class=\"note\">{html.escape(note)}</p>" for note in method_notes(board)]
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
