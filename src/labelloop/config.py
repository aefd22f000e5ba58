"""``labelloop.toml``: everything a scheduled sync needs, validated before anything runs.

Relative paths are resolved against the config file's folder, so cron can call
``labelloop sync --config /srv/tickets/labelloop.toml`` from anywhere. Secrets are
never read from the file: the API key comes from ``LABEL_STUDIO_API_KEY`` only.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .encoders import DEFAULT_BACKEND, Backend, Precision
from .errors import LabelloopError
from .features import DEFAULT_SMOOTHING, NeighbourSmoothing
from .labels import LabelSet, LabelSetError
from .strategies import DEFAULT_STRATEGY, STRATEGIES, StrategyName, check_strategy

__all__ = ["Config", "ConfigError", "load_config", "EXAMPLE", "STOP_CRITERIA"]

STOP_CRITERIA = ("budget", "stabilizing", "plateau")


class ConfigError(LabelloopError):
    """The config file is missing, unreadable or invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSection(_Section):
    path: Path
    text_column: str = "text"
    id_column: str | None = None
    label_column: str | None = None  # labels already known (they train the model, never go to Label Studio)
    test: Path | None = None         # an optional labeled test file, for metrics beside the audit sample
    test_label_column: str = "label"
    skip_empty: bool = False


class ModelSection(_Section):
    encoder: Path | None = None      # a local transformer directory; default: the bundled all-MiniLM-L6-v2
    cache_dir: Path | None = None    # embedding cache; default $LABELLOOP_CACHE_DIR or ~/.cache/labelloop
    backend: Backend = DEFAULT_BACKEND  # onnx or torch: part of the campaign's encoder identity
    precision: Precision | None = None  # fp32 (default) or, onnx only, int8
    threads: Annotated[int, Field(ge=1)] | None = None  # default: every core this process may use
    C: Annotated[float, Field(gt=0)] = 10.0
    neighbours: Annotated[int, Field(ge=0, le=1000)] = DEFAULT_SMOOTHING.k  # 0: train on raw embeddings
    neighbour_weight: Annotated[float, Field(ge=0, le=10)] = DEFAULT_SMOOTHING.weight

    @property
    def smoothing(self) -> NeighbourSmoothing:
        return NeighbourSmoothing(self.neighbours, self.neighbour_weight)


class LoopSection(_Section):
    strategy: StrategyName = DEFAULT_STRATEGY
    queue_target: Annotated[int, Field(ge=1, le=100_000)] = 50
    budget: Annotated[int, Field(ge=1)] = 2000
    retrain_every: Annotated[int, Field(ge=1)] = 20
    audit_fraction: Annotated[float, Field(ge=0.0, le=0.5)] = 0.05
    seed: int = 0

    @field_validator("strategy", mode="before")
    @classmethod
    def _known_strategy(cls, v: object) -> object:
        return check_strategy(v) if isinstance(v, str) else v


class StopSection(_Section):
    on: list[Literal["budget", "stabilizing", "plateau"]] = ["budget", "stabilizing"]
    stop_set_size: Annotated[int, Field(ge=10)] = 1000
    stabilizing_kappa: Annotated[float, Field(gt=0, le=1)] = 0.99
    stabilizing_rounds: Annotated[int, Field(ge=1)] = 3
    plateau_rounds: Annotated[int, Field(ge=1)] = 3
    plateau_delta: Annotated[float, Field(ge=0)] = 0.005
    min_audit: Annotated[int, Field(ge=1)] = 30


class LabelStudioSection(_Section):
    project: str | int
    url: str | None = None  # default: $LABEL_STUDIO_URL
    batch_size: Annotated[int, Field(ge=1, le=5000)] = 250

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in data:
                if any(word in str(key).lower() for word in ("key", "token", "password", "secret")):
                    raise ValueError(f"{key!r} does not belong in the file: the API key comes from the "
                                     f"LABEL_STUDIO_API_KEY environment variable only")
        return data


class StateSection(_Section):
    path: Path = Path("labelloop.db")


class Config(_Section):
    """A validated ``labelloop.toml`` (paths already absolute)."""

    labels: list[str]
    data: DataSection
    labelstudio: LabelStudioSection
    model: ModelSection = ModelSection()
    loop: LoopSection = LoopSection()
    stop: StopSection = StopSection()
    state: StateSection = StateSection()

    @field_validator("labels")
    @classmethod
    def _label_set(cls, v: list[str]) -> list[str]:
        try:
            return list(LabelSet(v))
        except LabelSetError as exc:
            raise ValueError(str(exc)) from None

    def resolved(self, base: Path) -> Config:
        """The same config with every relative path made absolute against ``base``."""
        def fix(p: Path | None) -> Path | None:
            return None if p is None else (p.expanduser() if p.expanduser().is_absolute() else base / p)
        return self.model_copy(update={
            "data": self.data.model_copy(update={"path": fix(self.data.path), "test": fix(self.data.test)}),
            "model": self.model.model_copy(update={"encoder": fix(self.model.encoder),
                                                   "cache_dir": fix(self.model.cache_dir)}),
            "state": self.state.model_copy(update={"path": fix(self.state.path)}),
        })


def _one_line(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown setting (misspelt?)"
        elif e["type"] == "missing":
            msg = "required setting is missing"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def load_config(path: str | Path) -> Config:
    """Read and validate ``path``; every problem is one :class:`ConfigError` line naming the setting."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"{path}: config file not found; `labelloop init` writes an example")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_one_line(exc)}") from None
    return config.resolved(path.resolve().parent)


EXAMPLE = """\
# labelloop.toml: one active-learning campaign, run by `labelloop sync` (e.g. every 5 minutes from cron).
# Relative paths are relative to this file. The Label Studio API key is NOT set here:
# export LABEL_STUDIO_API_KEY=... (and LABEL_STUDIO_URL, unless labelstudio.url is set).

# The label set, exactly as annotators will see it in Label Studio.
labels = {labels}

[data]
path = "{data}"              # CSV, TSV, JSONL or Parquet: the texts to label
text_column = "text"
# id_column = "id"           # stable ids; without it ids are derived from the text
# label_column = "label"     # labels you already have: they train the model, nobody labels them again
# test = "test.csv"          # optional labeled test file, reported beside the audit sample
# test_label_column = "label"
# skip_empty = false         # true: drop empty texts with a warning instead of failing

[labelstudio]
project = "{project}"        # project title (created with the label set if missing) or numeric id
# url = "http://127.0.0.1:18080"   # default: $LABEL_STUDIO_URL
# batch_size = 250           # tasks per import request

[loop]
strategy = "{strategy}"      # {strategies}
queue_target = 50            # tasks waiting for annotators after each sync: what they label between runs
budget = 2000                # texts sent for labeling, in all (audit sample included)
retrain_every = 20           # new labels needed before the model is retrained
audit_fraction = 0.05        # share of the budget drawn at random, never trained on: unbiased accuracy
seed = 0

[stop]
on = ["budget", "stabilizing"]   # criteria that stop pushing: budget, stabilizing, plateau
stop_set_size = 1000         # unlabeled texts whose predictions are compared between models
stabilizing_kappa = 0.99     # Bloodgood & Vijay-Shanker (2009): successive models agree this much...
stabilizing_rounds = 3       # ...this many times in a row
plateau_rounds = 3           # audit accuracy gained less than plateau_delta over this many rounds
plateau_delta = 0.005
min_audit = 30               # audit labels needed before the plateau rule may fire

[model]
# encoder = "/path/to/local/model"   # default: the bundled all-MiniLM-L6-v2
# cache_dir = "~/.cache/labelloop"
# backend = "onnx"           # or "torch"; a campaign keeps the backend it started with
# precision = "fp32"         # or "int8" (onnx only: ~2x faster, measured to cost some labels)
# threads = 2                # default: every core this process may use
C = 10.0                     # inverse regularisation of the logistic-regression head
neighbours = 6               # blend each embedding with its 6 nearest pool texts (0 = off)
neighbour_weight = 0.5

[state]
path = "labelloop.db"        # SQLite: labels, rounds, pushes, the whole audit ledger
"""
