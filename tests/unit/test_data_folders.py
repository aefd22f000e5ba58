"""Folders as input: a saved Hugging Face dataset and a Parquet folder load like the same rows in a CSV."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelloop.data import columns_of, load_pool
from labelloop.errors import DataError

TEXTS = ["refund please", "card declined", "where is my parcel", "change my address", "cancel the order"]
LABELS = ["billing", "billing", "shipping", "account", None]


def save_to_disk_by_hand(folder, table: pa.Table, shards: list[slice], features: dict) -> None:
    """The layout ``Dataset.save_to_disk`` writes (checked against datasets 5.2): Arrow *stream* shards
    named in state.json, features in dataset_info.json."""
    folder.mkdir()
    names = [f"data-{i:05d}-of-{len(shards):05d}.arrow" for i in range(len(shards))]
    for name, part in zip(names, shards):
        with pa.OSFile(str(folder / name), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table.slice(part.start, part.stop - part.start))
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": n} for n in names],
                                                   "_fingerprint": "0", "_split": None}))
    (folder / "dataset_info.json").write_text(json.dumps({"features": features}))


def test_a_saved_dataset_reads_every_shard_in_order_with_class_labels_as_names(tmp_path):
    classes = ["account", "billing", "shipping"]
    codes = [-1 if lab is None else classes.index(lab) for lab in LABELS]
    table = pa.table({"text": TEXTS, "label": pa.array(codes, pa.int64()), "n": list(range(5))})
    save_to_disk_by_hand(tmp_path / "saved", table, [slice(0, 2), slice(2, 5)],
                         {"text": {"dtype": "string", "_type": "Value"},
                          "label": {"names": classes, "_type": "ClassLabel"},
                          "n": {"dtype": "int64", "_type": "Value"}})
    pool = load_pool(tmp_path / "saved", id_column="n")
    assert pool.texts == TEXTS  # shard 0 before shard 1, as state.json lists them
    assert pool.labels == LABELS  # names, not codes; -1 is unlabeled
    assert pool.ids == ["0", "1", "2", "3", "4"]
    assert columns_of(tmp_path / "saved") == ["text", "label", "n"]


def test_a_dataset_saved_by_the_datasets_package_loads_like_its_csv(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["account", "billing", "shipping"])})
    codes = [-1 if lab is None else features["label"].str2int(lab) for lab in LABELS]
    ds = datasets.Dataset.from_dict({"text": TEXTS, "label": codes}, features=features)
    ds.save_to_disk(str(tmp_path / "saved"), num_shards=2)
    pd.DataFrame({"text": TEXTS, "label": LABELS}).to_csv(tmp_path / "same.csv", index=False)
    saved, csv = load_pool(tmp_path / "saved"), load_pool(tmp_path / "same.csv")
    assert (saved.ids, saved.texts, saved.labels) == (csv.ids, csv.texts, csv.labels)


def test_a_saved_dataset_dict_names_its_splits(tmp_path):
    (tmp_path / "dd" / "train").mkdir(parents=True)
    (tmp_path / "dd" / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    with pytest.raises(DataError, match=r"DatasetDict with splits train, test; pass one split's folder"):
        load_pool(tmp_path / "dd")


def test_a_state_json_naming_a_missing_shard_is_one_clear_error(tmp_path):
    table = pa.table({"text": TEXTS})
    save_to_disk_by_hand(tmp_path / "saved", table, [slice(0, 2), slice(2, 5)], {})
    (tmp_path / "saved" / "data-00001-of-00002.arrow").unlink()
    with pytest.raises(DataError, match=r"data-00001-of-00002\.arrow listed in state\.json is missing"):
        load_pool(tmp_path / "saved")


def test_a_parquet_folder_reads_its_files_in_path_order_with_hive_partitions_as_columns(tmp_path):
    folder = tmp_path / "pq"
    (folder / "region=eu").mkdir(parents=True)
    (folder / "region=us").mkdir()
    pq.write_table(pa.table({"text": TEXTS[3:], "label": LABELS[3:]}), folder / "region=us" / "part-0.parquet")
    pq.write_table(pa.table({"text": TEXTS[:2], "label": LABELS[:2]}), folder / "region=eu" / "part-0.parquet")
    pq.write_table(pa.table({"text": TEXTS[2:3], "label": LABELS[2:3]}), folder / "region=eu" / "part-1.parquet")
    (folder / "_SUCCESS").write_text("")  # Spark's marker and hidden files are not data
    (folder / ".part-9.parquet.crc").write_text("x")
    pool = load_pool(folder)
    assert pool.texts == TEXTS and pool.labels == LABELS
    assert columns_of(folder) == ["text", "label", "region"]
    region = load_pool(folder, label_column="region").labels
    assert region == ["eu", "eu", "eu", "us", "us"]


def test_a_folder_without_data_says_what_it_expected(tmp_path):
    (tmp_path / "notes.csv").write_text("text\nhello\n")
    with pytest.raises(DataError, match="is a directory without Parquet files or a saved Hugging Face dataset"):
        load_pool(tmp_path)


def test_a_single_arrow_shard_is_a_file_input(tmp_path):
    table = pa.table({"text": TEXTS})
    save_to_disk_by_hand(tmp_path / "saved", table, [slice(0, 5)], {})
    assert load_pool(tmp_path / "saved" / "data-00000-of-00001.arrow").texts == TEXTS
    (tmp_path / "bad.arrow").write_bytes(b"not arrow at all")
    with pytest.raises(DataError, match="not an Arrow IPC file"):
        load_pool(tmp_path / "bad.arrow")
