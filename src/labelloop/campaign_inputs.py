"""A campaign's inputs: the config's pool and test set, loaded and checked before anything is written,
with their features computed once, when a step first needs them.

The data side of :mod:`labelloop.campaign`, which re-exports :class:`Campaign` and :func:`load_campaign`;
nothing here reads or writes the state file.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from .config import Config
from .copies import LabelConflictWarning
from .data import Pool, load_pool
from .errors import DataError
from .labels import LabelSet, split_labels
from .learner import ActiveLearner

if TYPE_CHECKING:
    from .embeddings import Encoder
    from .featurize import Featurized

__all__ = ["Campaign", "Features", "load_campaign", "config_encoder", "text_hash"]


Features = tuple[np.ndarray, "np.ndarray | None"]


@dataclass(frozen=True, eq=False)
class Campaign:
    """The inputs of a campaign, loaded and checked before anything is written.

    ``pool_features`` are the head's features of the pool (smoothed over it): fixed arrays, or the
    pool and test set featurized (:class:`~labelloop.featurize.Featurized`, then :meth:`at_labels`
    gives the features of a head trained on so many labels), or a function giving them when first
    needed: a sync with nothing to train, score or send then reads no vector at all, so its cost
    follows what changed, not the pool.
    """

    config: Config
    pool: Pool
    pool_features: np.ndarray | Featurized | Callable[[], Featurized]
    encoder_identity: str
    test: Pool | None = None
    test_features: np.ndarray | None = None

    @cached_property
    def _featurized(self) -> Featurized | None:
        if isinstance(self.pool_features, np.ndarray):
            return None
        return self.pool_features() if callable(self.pool_features) else self.pool_features

    @cached_property
    def _features(self) -> Features:
        f = self._featurized
        if f is None:
            return self.pool_features, self.test_features  # type: ignore[return-value]
        return f.pool, f.others[0] if self.test is not None else None

    def at_labels(self, labeled: int) -> Campaign:
        """The campaign as a head trained on ``labeled`` labels sees it: the neighbour weight fades once half
        the pool is labeled (:meth:`labelloop.features.NeighbourSmoothing.at`). Fixed features: itself."""
        f = self._featurized
        if f is None:
            return self
        g = f.at(labeled)
        return self if g is f else replace(self, pool_features=g)

    @property
    def X(self) -> np.ndarray:
        """The head's features of the pool, computed (from the embedding cache) on first use."""
        return self._features[0]

    @property
    def X_test(self) -> np.ndarray | None:
        return self._features[1]

    @cached_property
    def keys(self) -> np.ndarray:
        """The pool texts' cache keys (:func:`~labelloop.vectors.text_keys`): each text hashed once a run."""
        from .vectors import text_keys

        return text_keys(self.pool.texts)

    @cached_property
    def classes(self) -> LabelSet:
        return LabelSet(self.config.labels)

    @property
    def features(self) -> str:
        """The config's recipe for features (the campaign's identity: a change refuses to mix models)."""
        return str(self.config.model.smoothing)

    @property
    def smoothing_used(self) -> str:
        """What these features were made with (a head's recipe): the weight of :meth:`at_labels`."""
        f = self._featurized
        return self.features if f is None else str(f.smoothing)

    @cached_property
    def learner(self) -> ActiveLearner:
        m, loop = self.config.model, self.config.loop
        return ActiveLearner(
            self.pool.ids,
            self.pool.texts,
            self.X,
            self.classes,
            strategy=loop.strategy,
            C=m.C,
            seed=loop.seed,
            encoder_identity=self.encoder_identity,
            features=self.smoothing_used,
            multi_label=self.config.multi_label,
            delimiter=self.config.label_delimiter,
        )

    @cached_property
    def index(self) -> dict[str, int]:
        """Our id → pool row (the learner's own index, without building the learner and its features)."""
        return {i: r for r, i in enumerate(self.pool.ids)}


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _check_labels(pool: Pool, classes: Sequence[str], what: str, delimiter: str | None = None) -> None:
    given = set(pool.label_set)
    if delimiter is not None:
        given = {lab for cell in given for lab in split_labels(cell, delimiter)}
    unknown = sorted(given - set(classes))
    if unknown:
        raise DataError(f"{pool.source}: {what} labels not in the config's label set: {unknown[:10]}")


def config_encoder(config: Config) -> Encoder:
    """The encoder the config's ``[model]`` names (model, backend, precision, threads): one rule for all."""
    from .embeddings import Encoder

    m = config.model
    return Encoder(m.encoder, threads=m.threads, backend=m.backend, precision=m.precision)


def load_campaign(config: Config, *, progress: bool = False, embed_texts: bool = True) -> Campaign:
    """Read the data (and test file) named by the config, embed them through the cache, smooth them."""
    from .featurize import featurize

    d = config.data
    delimiter = config.label_delimiter if config.multi_label else None  # multi-label: cells are sets
    with warnings.catch_warnings():  # the campaign reports them itself: in sync (once) and status
        warnings.simplefilter("ignore", LabelConflictWarning)
        pool = load_pool(
            d.path,
            d.text_column,
            d.label_column,
            d.id_column,
            skip_empty=d.skip_empty,
            label_delimiter=delimiter,
        )
    _check_labels(pool, config.labels, "pool", delimiter)
    test = None
    if d.test is not None:
        test = load_pool(
            d.test,
            d.text_column,
            d.test_label_column,
            None,
            require_labels=True,
            unique_ids=False,
            label_delimiter=delimiter,
        )
        _check_labels(test, config.labels, "test", delimiter)
    if d.embedding_column is not None:
        from .column_vectors import column_identity, read_vectors
        from .featurize import featurize_vectors

        if not embed_texts:
            return Campaign(config, pool, np.empty((0, 0)), column_identity(d.path, d.embedding_column), test)
        V, identity = read_vectors(d.path, d.embedding_column, pool.file_rows)
        others = []
        if test is not None:
            Vt, _ = read_vectors(test.source, d.embedding_column, test.file_rows)
            if Vt.shape[1] != V.shape[1]:
                raise DataError(
                    f"{test.source}: vectors in column {d.embedding_column!r} have {Vt.shape[1]} numbers, "
                    f"those of {d.path} {V.shape[1]}"
                )
            others.append(Vt)
        f = featurize_vectors(
            V, *others, identity=identity, smoothing=config.model.smoothing, progress=progress
        )
        return Campaign(config, pool, f, f.encoder_identity, test)
    encoder = config_encoder(config)
    if not embed_texts:
        return Campaign(config, pool, np.empty((0, 0)), encoder.identity, test)

    def features() -> Featurized:  # run when a step first needs the features (see Campaign)
        return featurize(
            pool.texts,
            *([test.texts] if test else []),
            encoder=encoder,
            cache_dir=config.model.cache_dir,
            smoothing=config.model.smoothing,
            progress=progress,
            pool_keys=campaign.keys,
        )

    campaign = Campaign(config, pool, features, encoder.identity, test)
    return campaign
