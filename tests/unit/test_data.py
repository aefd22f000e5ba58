"""Loading a pool: what is accepted, and the one-line errors for what is not."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from labelloop.data import check_test_labels, content_id, demo_paths, load_pool
from labelloop.errors import DataError


def write_csv(path, rows, header="text,label"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_reads_csv_with_labels_and_derives_stable_ids(tmp_path):
    pool = load_pool(write_csv(tmp_path / "a.csv", ["my card is lost,lost_card", '"refund, please",refund']))
    assert pool.texts == ["my card is lost", "refund, please"]
    assert pool.labels == ["lost_card", "refund"]
    assert pool.ids == [content_id("my card is lost"), content_id("refund, please")]


def test_ids_do_not_depend_on_row_order(tmp_path):
    a = load_pool(write_csv(tmp_path / "a.csv", ["one,x", "two,y"]))
    b = load_pool(write_csv(tmp_path / "b.csv", ["two,y", "one,x"]))
    assert dict(zip(a.texts, a.ids)) == dict(zip(b.texts, b.ids))


def test_id_column_is_kept_as_text(tmp_path):
    pool = load_pool(write_csv(tmp_path / "a.csv", ["007,hello,x", "010,bye,y"], "id,text,label"), id_column="id")
    assert pool.ids == ["007", "010"]


def test_reads_jsonl_and_parquet(tmp_path):
    rows = [{"body": "hello there", "intent": "greet"}, {"body": "bye now", "intent": "leave"}]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pd.DataFrame(rows).to_parquet(tmp_path / "p.parquet")
    for name in ("p.jsonl", "p.parquet"):
        pool = load_pool(tmp_path / name, text_column="body", label_column="intent")
        assert pool.texts == ["hello there", "bye now"] and pool.labels == ["greet", "leave"]


def test_a_file_without_the_label_column_is_an_unlabeled_pool(tmp_path):
    pool = load_pool(write_csv(tmp_path / "u.csv", ["a", "b"], "text"))
    assert pool.labels == [None, None]


def test_missing_labels_are_none(tmp_path):
    pool = load_pool(write_csv(tmp_path / "a.csv", ["a,x", "b,"]))
    assert pool.labels == ["x", None]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_pool(tmp_path / "nope.csv")


def test_unknown_extension(tmp_path):
    (tmp_path / "a.xlsx").write_text("x")
    with pytest.raises(DataError, match="unknown file type"):
        load_pool(tmp_path / "a.xlsx")


def test_missing_text_column_lists_the_columns(tmp_path):
    with pytest.raises(DataError, match=r"no text column 'text' \(columns: body, label\)"):
        load_pool(write_csv(tmp_path / "a.csv", ["hi,x"], "body,label"))


def test_missing_required_label_column(tmp_path):
    with pytest.raises(DataError, match="no label column 'category'"):
        load_pool(write_csv(tmp_path / "a.csv", ["hi,x"]), label_column="category", require_labels=True)


def test_empty_texts_are_reported_with_count_and_rows(tmp_path):
    path = write_csv(tmp_path / "a.csv", ["fine,x", ",x", '"   ",y', "also fine,y", ",z"])
    with pytest.raises(DataError, match=r"3 empty or missing text\(s\).*rows 2, 3, 5; fix them or pass --skip-empty"):
        load_pool(path)


def test_skip_empty_drops_them_with_a_warning(tmp_path):
    path = write_csv(tmp_path / "a.csv", ["fine,x", ",x", "also fine,y"])
    with pytest.warns(UserWarning, match="skipped 1 empty text"):
        pool = load_pool(path, skip_empty=True)
    assert pool.texts == ["fine", "also fine"] and pool.labels == ["x", "y"]


def test_rows_without_label_are_an_error_when_labels_are_required(tmp_path):
    with pytest.raises(DataError, match=r"1 row\(s\) without a label .* rows 2"):
        load_pool(write_csv(tmp_path / "a.csv", ["a,x", "b,"]), require_labels=True)


def test_duplicate_ids_name_both_rows(tmp_path):
    path = write_csv(tmp_path / "a.csv", ["1,a,x", "2,b,x", "1,c,y"], "id,text,label")
    with pytest.raises(DataError, match=r"1 duplicate id\(s\) in column 'id': 1 \(rows 1 and 3\)"):
        load_pool(path, id_column="id")


def test_duplicate_texts_without_id_column_are_duplicate_ids(tmp_path):
    with pytest.raises(DataError, match="exact duplicates"):
        load_pool(write_csv(tmp_path / "a.csv", ["same,x", "same,x"]))


def test_non_utf8_file_says_where(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\nok,x\ncaf\xe9,y\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 \(byte \d+, line 3\)"):
        load_pool(path)


def test_empty_file(tmp_path):
    (tmp_path / "e.csv").write_text("text,label\n")
    with pytest.raises(DataError, match="no rows"):
        load_pool(tmp_path / "e.csv")


def test_test_labels_unseen_in_training_are_refused(tmp_path):
    train = load_pool(write_csv(tmp_path / "tr.csv", ["a,x", "b,y"]))
    test = load_pool(write_csv(tmp_path / "te.csv", ["c,x", "d,z"]))
    with pytest.raises(DataError, match=r"1 test label\(s\) never seen .*: z"):
        check_test_labels(train, test)


def test_label_array_refuses_labels_outside_the_label_set(tmp_path):
    pool = load_pool(write_csv(tmp_path / "a.csv", ["a,x", "b,w"]))
    with pytest.raises(DataError, match="labels not in the label set: w"):
        pool.label_array(["x", "y"])


def test_bundled_demo_is_a_labeled_multi_intent_dataset():
    train, test = (load_pool(p, id_column="id", require_labels=True) for p in demo_paths())
    assert 300 <= len(train) + len(test) <= 1200
    assert 10 <= len(train.label_set) <= 20
    assert set(test.label_set) == set(train.label_set)
    assert not set(train.ids) & set(test.ids)


def test_whole_number_labels_stay_whole_in_jsonl_with_nulls(tmp_path):
    rows = [{"text": "a", "label": 1}, {"text": "b", "label": None}, {"text": "c", "label": 2}]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert load_pool(tmp_path / "p.jsonl").labels == ["1", None, "2"]


def test_duplicate_ids_can_be_allowed_for_test_sets(tmp_path):
    pool = load_pool(write_csv(tmp_path / "a.csv", ["same,x", "same,x"]), unique_ids=False)
    assert len(pool) == 2
