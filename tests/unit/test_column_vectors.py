"""Bring your own embeddings: a Parquet column of vectors, read, checked and normalised."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelloop.column_vectors import read_vectors, vectors_identity
from labelloop.data import load_pool
from labelloop.errors import DataError


def write(path, vectors, kind=None, texts=None, row_group_size=2):
    """A Parquet file with a text column and the vectors (small row groups: batches cross rows)."""
    n = len(vectors)
    column = pa.array(vectors, type=kind or pa.list_(pa.float64()))
    texts = texts or [f"text {i}" for i in range(n)]
    pq.write_table(pa.table({"text": texts, "emb": column}), path, row_group_size=row_group_size)
    return path


def test_fixed_size_and_variable_lists_become_unit_float32_rows(tmp_path):
    rows = [[3.0, 4.0], [0.0, -2.0], [1.0, 1.0]]
    for kind in (pa.list_(pa.float32(), 2), pa.list_(pa.float64()), pa.large_list(pa.float16())):
        V, identity = read_vectors(write(tmp_path / "v.parquet", rows, kind), "emb")
        assert V.dtype == np.float32 and V.shape == (3, 2)
        np.testing.assert_allclose(V, [[0.6, 0.8], [0.0, -1.0], [2**-0.5, 2**-0.5]], atol=1e-3)
        assert identity.startswith("column:emb:2d:")


def test_rows_pick_the_kept_file_rows(tmp_path):
    V, _ = read_vectors(write(tmp_path / "v.parquet", [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), "emb", rows=[2, 0])
    np.testing.assert_allclose(V, [[2**-0.5, 2**-0.5], [1.0, 0.0]], atol=1e-6)


def test_identity_follows_the_first_vector_and_the_column_name(tmp_path):
    a = read_vectors(write(tmp_path / "a.parquet", [[1.0, 2.0], [3.0, 4.0]]), "emb")[1]
    grown = read_vectors(write(tmp_path / "b.parquet", [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), "emb")[1]
    other = read_vectors(write(tmp_path / "c.parquet", [[1.0, 2.5], [3.0, 4.0]]), "emb")[1]
    assert a == grown  # a pool that gains rows keeps its identity
    assert a != other  # vectors from another model do not
    assert vectors_identity("emb", np.array([1.0, 2.0])) == a
    assert vectors_identity("other", np.array([1.0, 2.0])) != a


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        ([[1.0, 0.0], [1.0, 0.0], [1.0, 2.0, 3.0]], "1 vector(s) in column 'emb' do not have the first row's 2 numbers (data rows 3)"),
        ([[1.0, 0.0], [np.nan, 1.0], [1.0, 0.0]], "1 vector(s) in column 'emb' hold NaN or infinite numbers at data rows 2"),
        ([[1.0, 0.0], [1.0, np.inf], [1.0, 0.0]], "hold NaN or infinite numbers at data rows 2"),
        ([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]], "1 zero vector(s) in column 'emb' at data rows 3"),
        ([[1.0, 0.0], None, [1.0, 0.0]], "1 row(s) without a vector in column 'emb' at data rows 2"),
        ([[1.0, 0.0], [1.0, 0.0], [None, 1.0]], "1 vector(s) in column 'emb' hold missing numbers at data rows 3"),
        ([[], [1.0]], "the first vector in column 'emb' is empty"),
    ],
)
def test_bad_vectors_are_one_sentence_naming_the_rows(tmp_path, rows, says):
    path = write(tmp_path / "v.parquet", rows)
    with pytest.raises(DataError) as err:
        read_vectors(path, "emb")
    assert says in str(err.value)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_a_missing_or_non_vector_column_or_a_csv_is_refused(tmp_path):
    path = write(tmp_path / "v.parquet", [[1.0, 0.0]])
    with pytest.raises(DataError, match=r"no embedding column 'vec' \(columns: text, emb\)"):
        read_vectors(path, "vec")
    with pytest.raises(DataError, match="column 'text' is string, not a list of floats"):
        read_vectors(path, "text")
    (tmp_path / "v.csv").write_text("text,emb\na,1\n")
    with pytest.raises(DataError, match="Parquet files only"):
        read_vectors(tmp_path / "v.csv", "emb")


def test_a_pool_that_skips_empty_texts_says_which_file_rows_it_kept(tmp_path):
    path = write(tmp_path / "v.parquet", [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], texts=["a", " ", "c"])
    with pytest.warns(UserWarning):
        pool = load_pool(path, label_column=None, skip_empty=True)
    assert pool.file_rows == (0, 2)
    V, _ = read_vectors(path, "emb", pool.file_rows)
    np.testing.assert_allclose(V[1], [2**-0.5, 2**-0.5], atol=1e-6)
    full = write(tmp_path / "full.parquet", [[1.0, 0.0], [0.0, 1.0]])
    assert load_pool(full, label_column=None).file_rows is None  # every row, in order


def test_identical_texts_collapsed_into_one_item_take_the_first_copy_s_vector(tmp_path):
    rows = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.01], [1.0, 1.0]]
    path = write(tmp_path / "v.parquet", rows, texts=["a", "b", "a", "c"])
    pool = load_pool(path, label_column=None)
    assert (pool.texts, pool.file_rows) == (["a", "b", "c"], (0, 1, 3))
    V, _ = read_vectors(path, "emb", pool.file_rows)
    np.testing.assert_allclose(V, [[1, 0], [0, 1], [2**-0.5, 2**-0.5]], atol=1e-6)


def test_a_parquet_pool_still_names_every_column_when_one_is_missing(tmp_path):
    path = write(tmp_path / "v.parquet", [[1.0, 0.0]])
    with pytest.raises(DataError, match=r"no text column 'body' \(columns: text, emb\)"):
        load_pool(path, text_column="body")


def test_a_campaign_config_takes_its_vectors_from_the_data_embedding_column(tmp_path):
    from labelloop.campaign import load_campaign
    from labelloop.config import load_config

    rows = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 0.0]]
    write(tmp_path / "pool.parquet", rows)
    write(tmp_path / "test.parquet", rows[:2], texts=["a", "b"])
    (tmp_path / "labelloop.toml").write_text(
        'labels = ["a", "b"]\n[data]\npath = "pool.parquet"\nembedding_column = "emb"\ntest = "test.parquet"\n'
        'test_label_column = "text"\n[labelstudio]\nproject = "p"\n[model]\nneighbours = 0\n'
    )
    config = load_config(tmp_path / "labelloop.toml")
    campaign = load_campaign(config)
    np.testing.assert_allclose(campaign.X, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [2**-0.5, 2**-0.5, 0]], atol=1e-6)
    assert campaign.X_test is not None and campaign.X_test.shape == (2, 3)
    identity = read_vectors(tmp_path / "pool.parquet", "emb")[1]
    assert campaign.encoder_identity == identity
    assert load_campaign(config, embed_texts=False).encoder_identity == identity  # from the first row alone
