"""Loading a pool: what is accepted, and the one-line errors for what is not."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from labelloop.data import LabelConflictWarning, check_test_labels, content_id, demo_paths, load_pool
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


def test_identical_texts_without_id_column_are_one_item_covering_every_copy(tmp_path):
    path = write_csv(tmp_path / "a.csv", ["refund please,", "card lost,lost", "refund please,refund", "refund please,"])
    pool = load_pool(path)
    assert pool.texts == ["refund please", "card lost"]  # first appearance order
    assert pool.ids == [content_id("refund please"), content_id("card lost")]
    assert pool.labels == ["refund", "lost"]  # a label on one copy labels them all
    assert pool.rows == ((1, 3, 4), (2,)) and pool.copies.tolist() == [3, 1]
    assert len(pool) == 2 and pool.n_rows == 4
    assert pool.rows_covered([content_id("refund please")]) == 3
    assert pool.conflicts == ()


def test_texts_differing_only_in_spacing_or_case_are_not_copies(tmp_path):
    pool = load_pool(write_csv(tmp_path / "a.csv", ["Refund please,", "refund please,", '"refund please ",']))
    assert len(pool) == 3 and pool.rows is None and pool.copies.tolist() == [1, 1, 1]


def test_copies_with_different_labels_keep_the_majority_and_warn_naming_text_and_counts(tmp_path):
    rows = ["refund please,billing", "refund please,refund", "hi,greet", "refund please,refund", "hi,bye"]
    with pytest.warns(LabelConflictWarning) as caught:
        pool = load_pool(write_csv(tmp_path / "a.csv", rows))
    message = str(caught[0].message)
    assert "2 text(s) appear several times with different labels" in message
    assert "'refund please' (refund ×2, billing ×1; kept refund)" in message
    assert "'hi' (greet ×1, bye ×1; kept greet)" in message  # a tie keeps the first row's label
    assert pool.labels == ["refund", "greet"]
    by_text = {c.text: c for c in pool.conflicts}
    assert by_text["refund please"].counts == (("refund", 2), ("billing", 1))
    assert by_text["hi"].kept == "greet"


def test_a_subset_keeps_each_items_copies_and_conflicts(tmp_path):
    with pytest.warns(LabelConflictWarning):
        pool = load_pool(write_csv(tmp_path / "a.csv", ["a,x", "b,y", "a,z", "a,x"]))
    part = pool.subset([0])
    assert part.texts == ["a"] and part.rows == ((1, 3, 4),) and len(part.conflicts) == 1
    assert pool.subset([1]).conflicts == ()


def test_duplicate_ids_in_an_id_column_stay_an_error_but_duplicate_texts_under_distinct_ids_are_fine(tmp_path):
    with pytest.raises(DataError, match=r"1 duplicate id\(s\) in column 'id'.*ids must be unique"):
        load_pool(write_csv(tmp_path / "a.csv", ["1,same,x", "1,same,x"], "id,text,label"), id_column="id")
    pool = load_pool(write_csv(tmp_path / "b.csv", ["1,same,x", "2,same,y"], "id,text,label"), id_column="id")
    assert pool.ids == ["1", "2"] and pool.labels == ["x", "y"] and pool.rows is None


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
    pool = load_pool(write_csv(tmp_path / "a.csv", ["same,x", "same,y"]), unique_ids=False)
    assert len(pool) == 2 and pool.labels == ["x", "y"]  # every row kept as it is: scored per row


def test_nul_characters_and_huge_cells_load_with_a_warning_naming_their_rows(tmp_path):
    from labelloop.data import LONG_TEXT
    from labelloop.errors import LabelloopWarning

    path = tmp_path / "odd.jsonl"
    rows = [{"text": "fine"}, {"text": "bad\x00byte"}, {"text": "x" * (LONG_TEXT + 1)}, {"text": "also fine"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    with pytest.warns(LabelloopWarning) as caught:
        pool = load_pool(path)
    messages = [str(w.message) for w in caught]
    assert any("NUL" in m and "data rows 2" in m for m in messages)
    assert any(f"longer than {LONG_TEXT:,}" in m and "data rows 3" in m for m in messages)
    assert len(pool) == 4 and pool.texts[1] == "bad\x00byte"  # kept as given: nothing lost
