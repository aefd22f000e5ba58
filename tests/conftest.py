"""Shared fixtures: the real bundled encoder and the demo data, embedded once per session."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.data import Pool, demo_paths, load_pool
from labelloop.embeddings import Encoder, embed
from lsfixtures import Server, connector, ls_server, make_items, pytest_collection_modifyitems, sdk, title  # noqa: F401


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    # The reference PyTorch fp32 path: pinned fixtures were written with its vectors. The default backend
    # (ONNX fp32) is what the CLI, the notebook and predict use: see ``default_encoder``.
    return Encoder(backend="torch")


@pytest.fixture(scope="session")
def default_encoder() -> Encoder:
    """The encoder a user gets (no backend given): the demo vectors are made with it, so the notebook,
    the CLI and the tests share one cache."""
    return Encoder()


@pytest.fixture(scope="session")
def demo() -> tuple[Pool, Pool]:
    train, test = demo_paths()
    return load_pool(train, id_column="id"), load_pool(test, id_column="id")


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory):
    """One cache directory for the session, so the demo texts are embedded once."""
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(scope="session")
def demo_embedded(demo, default_encoder, embedding_cache) -> tuple[np.ndarray, np.ndarray]:
    cache = embedding_cache
    train, test = demo
    return embed(train.texts, default_encoder, cache), embed(test.texts, default_encoder, cache)
