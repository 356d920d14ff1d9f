"""Reading JSONL records as the stages and the arena write them."""

from __future__ import annotations

import json
from pathlib import Path

from tanuki_pipelines.eval.records import read_jsonl


def test_records_holding_unicode_line_breaks_are_read_whole_and_a_cut_line_is_counted(tmp_path: Path) -> None:
    answer = "一行目\u2028二行目\x85三行目\u2029おわり"  # raw in JSON written with ensure_ascii=False
    path = tmp_path / "votes.jsonl"
    path.write_text(json.dumps({"answer_1": answer}, ensure_ascii=False) + "\r\n"  # a line ended on Windows
                    + json.dumps({"answer_1": "東京"}, ensure_ascii=False) + "\n\n"
                    + '{"answer_1": "途中で', encoding="utf-8")  # cut by a crash
    records, broken = read_jsonl(path)
    assert records == [{"answer_1": answer}, {"answer_1": "東京"}]
    assert broken == 1
