"""``tanuki report --workdir D``: one self-contained page of what a local chain did.

``D/report/index.html`` holds, from the statuses ``tanuki local apply`` stored and the files each
stage wrote: the lineage graph (which stage fed which), every stage's phase and wall time, the
loss curves (pretraining with its data mix, MoE continued pretraining with expert load, SFT, DPO
reward margins), synthetic-data statistics, DPO pair statistics, the evaluation results and the
endpoints to try. Charts are inline SVG drawn here, so the page needs nothing beside it; links
point only at files that exist.
"""

from __future__ import annotations

import argparse
import html
import json
import time
from pathlib import Path
from typing import Any

from tanuki_operator.local import summary, wall_seconds
from tanuki_serving.rollout import RolloutState

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")


# ---- pure pieces ----------------------------------------------------------------------------

def line_chart(series: dict[str, list[tuple[float, float]]], title: str, width: int = 480, height: int = 220) -> str:
    """An SVG line chart of named (x, y) series."""
    points = [point for values in series.values() for point in values]
    if not points:
        return ""
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    left, right, top, bottom = 48, 10, 24, 28

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="{left}" y="16" font-size="13">{html.escape(title)}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#888"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>',
             f'<text x="4" y="{sy(y1) + 4:.1f}" font-size="10">{y1:.3g}</text>',
             f'<text x="4" y="{sy(y0) + 4:.1f}" font-size="10">{y0:.3g}</text>',
             f'<text x="{left}" y="{height - 8}" font-size="10">{x0:g}</text>',
             f'<text x="{width - right - 30}" y="{height - 8}" font-size="10">{x1:g}</text>']
    for index, (name, values) in enumerate(series.items()):
        color = COLORS[index % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>')
        parts.append(f'<text x="{width - right - 150}" y="{top + 12 * index + 10}" font-size="11" fill="{color}">'
                     f'{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def heatmap(rows: list[list[float]], title: str, cell: int = 26) -> str:
    """An SVG heat map of a (layers × experts) share table (darker: more tokens)."""
    if not rows:
        return ""
    top = max(max(row) for row in rows) or 1.0
    width, height = 60 + cell * len(rows[0]), 30 + cell * len(rows)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="0" y="14" font-size="13">{html.escape(title)}</text>']
    for layer, row in enumerate(rows):
        parts.append(f'<text x="0" y="{30 + cell * layer + cell / 2 + 4}" font-size="10">layer {layer}</text>')
        for expert, share in enumerate(row):
            shade = int(255 - 200 * share / top)
            parts.append(f'<rect x="{60 + cell * expert}" y="{22 + cell * layer}" width="{cell - 2}" height="{cell - 2}" '
                         f'fill="rgb({shade},{shade},255)"><title>expert {expert}: {share:.1%}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def depths(statuses: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Each resource's distance from the chain's start (0: reads from no other resource)."""
    depth: dict[str, int] = {}

    def depth_of(key: str, seen: frozenset[str]) -> int:
        if key not in depth:
            ups = [u for u in (statuses.get(key) or {}).get("upstream", []) if u in statuses and u not in seen]
            depth[key] = 1 + max((depth_of(u, seen | {key}) for u in ups), default=-1)
        return depth[key]

    for key in statuses:
        depth_of(key, frozenset())
    return depth


def in_lineage_order(statuses: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    depth = depths(statuses)
    return dict(sorted(statuses.items(), key=lambda item: depth[item[0]]))


def lineage_graph(statuses: dict[str, dict[str, Any]]) -> str:
    """An SVG of the resources in columns by depth, an arrow from each upstream to what it fed."""
    depth = depths(statuses)
    columns: dict[int, list[str]] = {}
    for key in statuses:
        columns.setdefault(depth[key], []).append(key)
    box_w, box_h, gap_x, gap_y = 170, 34, 40, 14
    position = {key: (10 + level * (box_w + gap_x), 10 + row * (box_h + gap_y))
                for level, keys in columns.items() for row, key in enumerate(keys)}
    width = 20 + (max(columns) + 1) * (box_w + gap_x) if columns else 20
    height = 20 + max((len(keys) for keys in columns.values()), default=0) * (box_h + gap_y)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" orient="auto">'
             '<path d="M0,0 L8,4 L0,8 z" fill="#666"/></marker></defs>']
    for key, status in statuses.items():
        for upstream in status.get("upstream", []):
            if upstream in position:
                (ux, uy), (dx, dy) = position[upstream], position[key]
                parts.append(f'<line x1="{ux + box_w}" y1="{uy + box_h / 2}" x2="{dx}" y2="{dy + box_h / 2}" '
                             'stroke="#666" marker-end="url(#arrow)"/>')
    for key, (x, y) in position.items():
        phase = statuses[key].get("phase", "")
        fill = {"Succeeded": "#e6f4ea", "Running": "#e8f0fe", "Failed": "#fce8e6"}.get(phase, "#f1f3f4")
        kind, _, name = key.partition("/")
        parts.append(f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="5" fill="{fill}" stroke="#999"/>'
                     f'<text x="{x + 6}" y="{y + 14}" font-size="11">{html.escape(kind)}</text>'
                     f'<text x="{x + 6}" y="{y + 28}" font-size="12" font-weight="bold">{html.escape(name)} '
                     f'<tspan font-weight="normal" font-size="10">({html.escape(phase)})</tspan></text>')
    parts.append("</svg>")
    return "".join(parts)


def table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell if isinstance(cell, Markup) else html.escape(str(cell))}</td>"
                                    for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class Markup(str):
    """Already-escaped HTML (a link) for a table cell."""


def link(path: str | None, label: str | None = None) -> str:
    """A link to ``path`` when it exists, else its name as text."""
    if not path or not Path(path).exists():
        return Markup(html.escape(label or str(path or "")))
    return Markup(f'<a href="file://{html.escape(str(Path(path).resolve()))}">{html.escape(label or Path(path).name)}</a>')


# ---- reading a workdir ----------------------------------------------------------------------

def read_json(path: str | Path | None) -> Any:
    try:
        return json.loads(Path(path).read_text()) if path else None
    except (OSError, json.JSONDecodeError):
        return None


def read_records(path: str | Path | None) -> list[dict[str, Any]]:
    if not path or not Path(path).is_file():
        return []
    found = []
    for line in Path(path).read_text().splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return found


def stage_sections(key: str, status: dict[str, Any]) -> list[str]:
    """HTML of what one stage produced."""
    kind, _, name = key.partition("/")
    outputs = status.get("outputs") or {}
    parts: list[str] = []
    steps = read_records(outputs.get("metrics"))
    if kind == "PretrainJob" and steps:
        parts.append(line_chart({"loss": [(s["step"], s["loss"]) for s in steps]}, f"{name}: training loss"))
        sources = list(steps[0].get("mix", {}))
        if len(sources) > 1:
            shares = {source: [(s["step"], s["mix"][source] / max(sum(s["mix"].values()), 1)) for s in steps]
                      for source in sources}
            parts.append(line_chart(shares, f"{name}: share of each source in the batch"))
        if "expert_load" in steps[-1]:
            parts.append(line_chart({"aux loss": [(s["step"], s["aux_loss"]) for s in steps]}, f"{name}: router aux loss"))
            parts.append(heatmap(steps[-1]["expert_load"], f"{name}: expert load at step {steps[-1]['step']}"))
    if kind == "SFTJob" and steps:
        parts.append(line_chart({"loss": [(s["step"], s["loss"]) for s in steps if "loss" in s]}, f"{name}: SFT loss"))
    if kind == "DPOJob":
        if steps:
            parts.append(line_chart({key_: [(s["step"], s[f"rewards/{key_}"]) for s in steps if f"rewards/{key_}" in s]
                                     for key_ in ("margins", "chosen", "rejected")}, f"{name}: DPO rewards"))
        pairs = read_json(outputs.get("pairs_stats"))
        if pairs:
            counted = [k for k in ("prompts", "kept", "tie", "inconsistent", "unparseable", "identical", "no_answers")
                       if k in pairs]
            parts.append(table(counted, [[pairs[k] for k in counted]]))
    if kind == "SynthJob":
        stats = read_json(outputs.get("stats"))
        if stats:
            by_style = stats.get("filter", {}).get("by_style", {})
            parts.append(table(["style", "kept", "dropped"], [[style, counts.get("kept", 0), counts.get("dropped", 0)]
                                                              for style, counts in sorted(by_style.items())]))
            dropped = stats.get("filter", {}).get("dropped", {})
            parts.append(table(["dropped because", "records"], sorted(dropped.items())))
    if kind == "QuantizeJob":
        quality = read_json(outputs.get("quality"))
        if quality and outputs.get("source_size_bytes"):
            parts.append(table(["scheme", "size", "of the source", "next-token agreement", "threshold",
                                "mean |Δlogprob|", "max |Δlogprob|", "perplexity (source → quantized)"],
                               [[outputs.get("gguf_type") or outputs.get("scheme"), f"{outputs['size_bytes'] / 1e6:.1f} MB",
                                 f"{outputs['size_bytes'] / outputs['source_size_bytes']:.0%}", quality["agreement"],
                                 quality["threshold"], quality["mean_abs_dlogprob"], quality["max_abs_dlogprob"],
                                 f"{quality['source_perplexity']:.2f} → {quality['quantized_perplexity']:.2f}"]]))
    if kind == "ModelServer":
        history = RolloutState.of(status).history
        if history:
            parts.append(table(["rollout", "checkpoint", "result", "reason", "time"],
                               [[record.revision, link(record.model, "/".join(Path(record.model).parts[-3:])),
                                 record.result, record.reason, record.time or ""]
                                for record in history]))
    if kind == "EvalJob":
        board = read_json(Path(outputs["report"]).parent / "leaderboard.json") if outputs.get("report") else None
        if board and isinstance(board.get("models"), list) and "bt_method" in board:
            from tanuki_pipelines.eval.ratings import bt_cells, method_notes

            parts.append(table(["model", "Bradley-Terry", "95% interval", "Glicko-2", "RD", "battles", "wins", "losses",
                                "ties"],
                               [[row["model"] + (" †" if row["few_battles"] else ""), *bt_cells(row),
                                 row["glicko2"]["rating"], row["glicko2"]["rd"],
                                 row["battles"], row["wins"], row["losses"], row["ties"]]
                                for row in board["models"]]))
            parts += [f"<p>{html.escape(note)}</p>" for note in method_notes(board)]
        grades = read_json(outputs.get("grades"))
        if grades and grades.get("models"):
            parts.append(table(["model", "overall", "graded", "unparseable"],
                               [[model, row.get("overall"), row.get("graded"), row.get("unparseable")]
                                for model, row in grades["models"].items()]))
        if outputs.get("report"):
            parts.append(f"<p>full evaluation page: {link(outputs['report'])}</p>")
    return parts


def render_page(workdir: Path, statuses: dict[str, dict[str, Any]], now: float) -> str:
    statuses = in_lineage_order(statuses)
    rows = []
    for key, status in statuses.items():
        outputs = status.get("outputs") or {}
        main = next((outputs[k] for k in ("url", "checkpoint", "dataset", "report") if k in outputs), None)
        wall, shown = wall_seconds(status, now), summary(status)
        rows.append([key, shown["phase"], shown["reason"], "" if wall is None else f"{wall:.0f} s",
                     link(main) if main and not str(main).startswith("http") else (main or "")])
    endpoints = []
    for key, status in statuses.items():
        outputs = status.get("outputs") or {}
        if key.startswith("ModelServer/") and outputs.get("url"):
            serving = "serving" if status.get("phase") == "Running" else "start it again with `tanuki local apply`"
            endpoints.append(f"<li><code>{html.escape(key)}</code>: <code>{html.escape(outputs['url'])}</code>, model "
                             f"<code>{html.escape(str(outputs.get('model')))}</code> ({serving})<pre>curl "
                             f"{html.escape(outputs['url'])}/chat/completions -H \"Authorization: Bearer $(cat "
                             f"{html.escape(str(workdir / 'secrets' / 'tanuki-api-key' / 'api-key'))})\" -H "
                             f"'Content-Type: application/json' -d '{{\"model\": \"{html.escape(str(outputs.get('model')))}"
                             f"\", \"messages\": [{{\"role\": \"user\", \"content\": \"こんにちは\"}}]}}'</pre></li>")
    sections = []
    for key, status in statuses.items():
        parts = stage_sections(key, status)
        if parts:
            sections.append(f"<h3>{html.escape(key)}</h3>" + "".join(parts))
    generated = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>tanuki chain report</title><style>"
            "body{font-family:sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse;margin:8px 0}"
            "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}svg{margin:6px 12px 6px 0}"
            "pre{background:#f6f6f6;padding:6px;white-space:pre-wrap}</style></head><body>"
            f"<h1>tanuki chain report</h1><p>workdir <code>{html.escape(str(workdir))}</code>, {generated}</p>"
            f"<h2>Endpoints</h2><ul>{''.join(endpoints) or '<li>none served</li>'}</ul>"
            f"<h2>Lineage</h2>{lineage_graph(statuses)}"
            f"<h2>Stages</h2>{table(['resource', 'phase', 'reason', 'wall time', 'output'], rows)}"
            f"<h2>What each stage did</h2>{''.join(sections)}</body></html>")


def write_report(workdir: Path) -> Path:
    from tanuki_common.errors import BadInputError
    from tanuki_operator.local import statuses as stored_statuses

    statuses = stored_statuses(workdir)
    if not statuses:
        raise BadInputError(f"--workdir: no resources in {workdir / '.tanuki'} (run `tanuki local apply` there first)")
    page = workdir / "report" / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render_page(workdir.resolve(), statuses, time.time()), encoding="utf-8")
    return page


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--workdir", type=Path, default=Path("tanuki-local"), help="a `tanuki local apply` workdir")
    return parser


def main(args: argparse.Namespace) -> int:
    print(write_report(args.workdir))
    return 0
