"""Inputs that should be questioned, and readers that must agree (issue 12 weak spots). Each refused file is
left byte-for-byte as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faulthelpers import one_line_error, run_cli

from labelloop.data import load_pool
from labelloop.errors import DataError

pytestmark = pytest.mark.faults


def _refused(path: Path, match: str, **kw) -> None:
    before = path.read_bytes()
    with pytest.raises(DataError, match=match) as err:
        load_pool(path, **kw)
    assert "\n" not in str(err.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("invisible", ["\u200b", "\u200b\u200d\ufeff", "\u00a0\u2060", "\u3164", "\u034f"])
def test_texts_of_only_invisible_characters_are_empty(tmp_path, invisible) -> None:
    p = tmp_path / "pool.csv"
    p.write_text(f"id,text\na,hello\nb,{invisible}\n", encoding="utf-8")
    _refused(p, r"1 empty or missing text\(s\) in column 'text' at data rows 2 \(1 of them only invisible")
    assert load_pool(p, id_column="id", skip_empty=True).ids == ["a"]


def test_a_text_with_a_zero_width_space_inside_is_kept(tmp_path) -> None:
    p = tmp_path / "pool.csv"
    p.write_text("text\nzero\u200bwidth\n", encoding="utf-8")
    assert load_pool(p).texts == ["zero\u200bwidth"]


def test_lists_and_dicts_are_refused_with_their_rows_numbers_are_plain_text(tmp_path) -> None:
    p = tmp_path / "pool.jsonl"
    rows = [{"text": "fine"}, {"text": ["a", "b"]}, {"text": {"k": 1}}, {"text": 42}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _refused(p, r"2 cell\(s\) in column 'text' are not text \(a dict, a list\) at data rows 2, 3")
    q = tmp_path / "numbers.jsonl"
    q.write_text('{"id": 12345678901234567890, "text": 42, "label": true}\n{"id": 2, "text": 1.5, "label": null}\n')
    pool = load_pool(q, id_column="id")
    assert pool.ids == ["12345678901234567890", "2"] and pool.texts == ["42", "1.5"]
    assert pool.labels == ["true", None]  # JSON's spelling, never Python's "True"


def test_ambiguous_duplicate_headers_are_refused(tmp_path) -> None:
    p = tmp_path / "pool.csv"
    p.write_text("id,text,text\na,one,two\n")
    _refused(p, r"duplicate column header\(s\) 'text' \(columns 2, 3\)")
    j = tmp_path / "pool.jsonl"
    j.write_text('{"text": "one", "text": "two"}\n')
    _refused(j, r"line 1 is not valid JSON \(duplicate key\(s\) 'text'")


def test_a_bom_is_accepted_in_jsonl_as_in_csv(tmp_path) -> None:
    c, j = tmp_path / "pool.csv", tmp_path / "pool.jsonl"
    c.write_bytes("\ufeffid,text\na,hello\n".encode())
    j.write_bytes('\ufeff{"id": "a", "text": "hello"}\n'.encode())
    assert load_pool(c, id_column="id") == load_pool(j, id_column="id").__class__(
        ["a"], ["hello"], [None], str(c))
    assert load_pool(j, id_column="id").texts == ["hello"]


def test_jsonl_errors_name_the_line(tmp_path) -> None:
    p = tmp_path / "pool.jsonl"
    p.write_text('{"text": "a"}\n\n{"text": "b"}\n{"text": "c",}\n')
    _refused(p, r"line 4 is not valid JSON")
    q = tmp_path / "arrays.jsonl"
    q.write_text('{"text": "a"}\n["b"]\n')
    _refused(q, r"line 2 is a JSON list, expected an object")


def test_a_broken_link_and_a_loop_are_named(tmp_path) -> None:
    (tmp_path / "loop.csv").symlink_to(tmp_path / "loop.csv")
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "gone.csv")
    with pytest.raises(DataError, match="a symbolic link loop"):
        load_pool(tmp_path / "loop.csv")
    with pytest.raises(DataError, match="a broken symbolic link"):
        load_pool(tmp_path / "dangling.csv")


def test_a_config_that_is_a_symlink_loop_is_named(tmp_path) -> None:
    (tmp_path / "labelloop.toml").symlink_to(tmp_path / "labelloop.toml")
    err = one_line_error(run_cli("status", "--config", "labelloop.toml", cwd=tmp_path))
    assert "symbolic link loop" in err and "not found" not in err
