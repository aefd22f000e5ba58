"""``labelloop.toml``: everything a scheduled sync needs, validated before anything runs.

Relative paths are resolved against the config file's folder, so cron can call
``labelloop sync --config /srv/tickets/labelloop.toml`` from anywhere. Secrets are
never read from the file: the API key comes from ``LABEL_STUDIO_API_KEY`` only.

(Over 400 lines formatted: one section class per table of the file plus the commented example that
`init` writes; splitting them would separate each setting from its documentation.)
"""

from __future__ import annotations

import errno
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .encoders import DEFAULT_BACKEND, Backend, Precision
from .errors import LabelloopError
from .features import DEFAULT_SMOOTHING, NeighbourSmoothing
from .labels import DEFAULT_DELIMITER, LabelSet, LabelSetError
from .strategies import DEFAULT_STRATEGY, STRATEGIES, StrategyName, check_strategy

__all__ = [
    "Config",
    "ConfigError",
    "load_config",
    "parse_config",
    "example_config",
    "EXAMPLE",
    "STOP_CRITERIA",
]

STOP_CRITERIA = ("budget", "stabilizing", "plateau")


class ConfigError(LabelloopError):
    """The config file is missing, unreadable or invalid."""


class _Section(BaseModel):
    # Strict: a TOML ``true`` is not the number 1, ``"10"`` is not 10, ``1`` is not a path. A value coerced
    # into another type could point the campaign somewhere else (issue 12: ``project = true`` became project 1).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _path_text(value: object) -> object:
    """Paths come from TOML strings only, never empty (``Path("")`` would silently mean the current folder)."""
    if isinstance(value, Path):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a path as a string, got {type(value).__name__} {value!r}")
    if not value.strip():
        raise ValueError("an empty path")
    if "\x00" in value:
        raise ValueError("a path with a NUL character")
    return Path(value)


def _column_name(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        raise ValueError("an empty column name")
    return value


FilePath = Annotated[Path, BeforeValidator(_path_text), Field(strict=False)]
Column = Annotated[str, BeforeValidator(_column_name)]


class DataSection(_Section):
    path: FilePath
    text_column: Column = "text"
    id_column: Column | None = None
    label_column: Column | None = (
        None  # labels already known (they train the model, never go to Label Studio)
    )
    test: FilePath | None = None  # an optional labeled test file, for metrics beside the audit sample
    test_label_column: Column = "label"
    skip_empty: bool = False
    # Vectors from this Parquet column (a list of floats per row) instead of the encoder: both data files need
    # it; the campaign's encoder identity is then the column's (labelloop.column_vectors).
    embedding_column: Column | None = None


class ModelSection(_Section):
    encoder: FilePath | None = None  # a local transformer directory; default: the bundled all-MiniLM-L6-v2
    cache_dir: FilePath | None = None  # embedding cache; default $LABELLOOP_CACHE_DIR or ~/.cache/labelloop
    backend: Backend = DEFAULT_BACKEND  # onnx or torch: part of the campaign's encoder identity
    precision: Precision | None = None  # fp32 (default) or, onnx only, int8
    threads: Annotated[int, Field(ge=1)] | None = None  # default: every core this process may use
    C: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 10.0
    neighbours: Annotated[int, Field(ge=0, le=1000)] = DEFAULT_SMOOTHING.k  # 0: train on raw embeddings
    neighbour_weight: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)] = DEFAULT_SMOOTHING.weight
    neighbour_weight_shrinks: bool = DEFAULT_SMOOTHING.shrink  # fades to 0 over the second half of the pool

    @property
    def smoothing(self) -> NeighbourSmoothing:
        return NeighbourSmoothing(self.neighbours, self.neighbour_weight, self.neighbour_weight_shrinks)


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
    project: str | int  # a title, or an id: a positive integer or a string of ASCII digits
    url: str | None = None  # default: $LABEL_STUDIO_URL
    batch_size: Annotated[int, Field(ge=1, le=5000)] = 250

    @field_validator("project", mode="before")
    @classmethod
    def _project(cls, v: object) -> object:
        # bool is an int in Python: checked first, or ``project = true`` would mean project 1.
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise ValueError(
                f"expected a project title (a string) or id (a positive integer), got "
                f"{type(v).__name__} {v!r}"
            )
        if isinstance(v, int):
            if v < 1:
                raise ValueError(f"a project id is a positive integer, got {v}")
            return v
        if not v.strip():
            raise ValueError("an empty project title")
        if v != v.strip():
            raise ValueError(f"the project title {v!r} has leading or trailing spaces")
        if any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise ValueError("the project title contains a control character (a newline?)")
        if v.isdigit() and not (v.isascii() and int(v) > 0):  # "²" or "０" are digits to str, not ids
            raise ValueError(f"{v!r} is neither a project id (ASCII digits, > 0) nor a usable title")
        return v

    @field_validator("url", mode="before")
    @classmethod
    def _url(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip():
            raise ValueError("an empty URL; remove the line to use $LABEL_STUDIO_URL")
        return v

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in data:
                if any(word in str(key).lower() for word in ("key", "token", "password", "secret")):
                    raise ValueError(
                        f"{key!r} does not belong in the file: the API key comes from the "
                        f"LABEL_STUDIO_API_KEY environment variable only"
                    )
        return data


class StateSection(_Section):
    path: FilePath = Path("labelloop.db")


class GuidelinesSection(_Section):
    path: FilePath | None = None  # Markdown shown to annotators before they label; edits reach the project


class QualitySection(_Section):
    """The human side: overlap, escalation, second opinions, what annotators see pre-selected."""

    overlap_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1  # active tasks labeled by several people
    annotators_per_task: Annotated[int, Field(ge=2, le=10)] = 2
    max_annotators: Annotated[int, Field(ge=2, le=20)] = 3  # a tie gets one more annotator up to this many
    # People who label each audit text, blind. 1 keeps the audit cheap; with 2 an annotator's slip is a tie
    # (escalated like any other) instead of a model error in the audit accuracy.
    audit_annotators: Annotated[int, Field(ge=1, le=10)] = 1
    suspects_share: Annotated[float, Field(ge=0.0, le=0.5)] = 0.05  # queue share for second opinions
    # "auto": the lowest confidence at which the campaign's own blind answers show the guess right at least
    # prefill_precision of the time (review.prefill_threshold); a number fixes it; 1.01 never pre-selects.
    prefill_confidence: Annotated[float, Field(ge=0.0, le=1.01)] | Literal["auto"] = "auto"
    prefill_precision: Annotated[float, Field(gt=0.5, le=1.0)] = 0.9
    max_delete_share: Annotated[float, Field(gt=0.0, le=1.0)] = 0.2  # refuse a pull deleting more than this

    @model_validator(mode="after")
    def _caps(self) -> QualitySection:
        if self.max_annotators < max(self.annotators_per_task, self.audit_annotators):
            raise ValueError(
                f"max_annotators ({self.max_annotators}) is below annotators_per_task "
                f"({self.annotators_per_task}) or audit_annotators ({self.audit_annotators})"
            )
        return self


class Config(_Section):
    """A validated ``labelloop.toml`` (paths already absolute)."""

    labels: list[str]
    data: DataSection
    labelstudio: LabelStudioSection
    model: ModelSection = ModelSection()
    loop: LoopSection = LoopSection()
    stop: StopSection = StopSection()
    state: StateSection = StateSection()
    guidelines: GuidelinesSection = GuidelinesSection()
    quality: QualitySection = QualitySection()
    # Each text may carry several labels: a one-vs-rest head, Label Studio choice="multiple", micro-F1. The
    # data's label cells are sets written with label_delimiter ("bug|refund"); the state file stores each set
    # as one string joined by it (labels.join_labels). Fixed at the campaign's first sync.
    multi_label: bool = False
    label_delimiter: str = DEFAULT_DELIMITER

    @field_validator("labels")
    @classmethod
    def _label_set(cls, v: list[str]) -> list[str]:
        try:
            return list(LabelSet(v))
        except LabelSetError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("label_delimiter")
    @classmethod
    def _delimiter(cls, v: str) -> str:
        if not v.strip():
            raise ValueError('the label delimiter must be a visible character or string (default "|")')
        return v

    @model_validator(mode="after")
    def _multi_label(self) -> Config:
        if not self.multi_label:
            return self
        clash = [lab for lab in self.labels if self.label_delimiter in lab]
        if clash:
            raise ValueError(
                f"label(s) {clash[:3]!r} contain the label delimiter {self.label_delimiter!r}; set "
                f"label_delimiter to a string no label contains"
            )
        from .multilabel import MULTILABEL_STRATEGIES

        if self.loop.strategy not in MULTILABEL_STRATEGIES:
            raise ValueError(
                f"loop.strategy {self.loop.strategy!r} is single-label only; a multi-label campaign uses "
                f'"margin-kmeans" (default) or "random"'
            )
        return self

    def resolved(self, base: Path) -> Config:
        """The same config with every relative path made absolute against ``base``."""

        def fix(p: Path | None) -> Path | None:
            return None if p is None else (p.expanduser() if p.expanduser().is_absolute() else base / p)

        return self.model_copy(
            update={
                "data": self.data.model_copy(
                    update={"path": fix(self.data.path), "test": fix(self.data.test)}
                ),
                "model": self.model.model_copy(
                    update={"encoder": fix(self.model.encoder), "cache_dir": fix(self.model.cache_dir)}
                ),
                "state": self.state.model_copy(update={"path": fix(self.state.path)}),
                "guidelines": self.guidelines.model_copy(update={"path": fix(self.guidelines.path)}),
            }
        )


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown setting (misspelt?)"
        elif e["type"] == "missing":
            msg = "required setting is missing"
        elif e["type"].endswith(("_type", "_parsing")):  # say what was given: `true` is not a number
            msg += f" (got {type(e['input']).__name__} {_short(e['input'])})"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def parse_config(text: str, source: str | Path) -> Config:
    """Validate TOML ``text`` (paths left relative); every problem is one :class:`ConfigError` line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_one_line(exc)}") from None


def load_config(path: str | Path) -> Config:
    """Read and validate ``path``; every problem is one :class:`ConfigError` line naming the setting."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if os.path.lexists(path):
            raise ConfigError(f"{path}: a broken or looping symbolic link") from None
        raise ConfigError(f"{path}: config file not found; `labelloop init` writes an example") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{path}: a symbolic link loop") from None
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse_config(text.removeprefix("\ufeff"), path).resolved(path.resolve().parent)


def example_config(
    *,
    labels: Sequence[str],
    data: str,
    project: str | int,
    text_column: str = "text",
    id_column: str | None = None,
    label_column: str | None = None,
    guidelines: str | None = None,
    multi_label: bool = False,
) -> str:
    """The commented example ``labelloop.toml`` with these values, each rendered by tomlkit (quotes,
    backslashes and newlines escaped: a value can never add a setting). Not validated here."""
    import tomlkit

    def val(v: object) -> str:
        return tomlkit.item(v).as_string()

    def opt(key: str, v: str | None, default: str, comment: str) -> str:
        line = f"{key} = {val(v if v is not None else default)}"
        return f"{'' if v is not None else '# '}{line:<26} # {comment}"

    return EXAMPLE.format(
        labels=val(list(labels)),
        multi_label=(
            'multi_label = true           # each text may carry several labels (choice="multiple")'
            if multi_label
            else '# multi_label = true         # each text may carry several labels (choice="multiple")'
        ),
        data=val(data),
        project=val(project),
        text_column=val(text_column),
        id_line=opt("id_column", id_column, "id", "stable ids; without it ids are derived from the text"),
        label_line=opt(
            "label_column",
            label_column,
            "label",
            "labels you already have: they train the model, nobody labels them again",
        ),
        strategy=val(DEFAULT_STRATEGY),
        strategies=", ".join(_multilabel_strategies() if multi_label else STRATEGIES),
        guidelines_line=opt(
            "path",
            guidelines,
            "guidelines.md",
            "Markdown shown to annotators; edits reach the project at the next sync",
        ),
        suspects_note=(
            "not used: multi-label campaigns send no suspects back"
            if multi_label
            else "share of each batch that may re-ask labels the model suspects are wrong"
        ),
    )


def _multilabel_strategies() -> list[str]:
    """The strategies a multi-label campaign accepts (``binary-margin-kmeans`` is for simulate's comparisons
    only), imported late: multilabel imports numpy and the head."""
    from .multilabel import MULTILABEL_STRATEGIES

    return [s for s in MULTILABEL_STRATEGIES if s in STRATEGIES]


EXAMPLE = """\
# labelloop.toml: one active-learning campaign, run by `labelloop sync` (e.g. every 5 minutes from cron).
# Relative paths are relative to this file. The Label Studio API key is NOT set here:
# export LABEL_STUDIO_API_KEY=... (and LABEL_STUDIO_URL, unless labelstudio.url is set).

# The label set, exactly as annotators will see it in Label Studio.
labels = {labels}
{multi_label}
# label_delimiter = "|"      # how a multi-label cell of the data writes a set: "bug|refund"

[data]
path = {data}              # CSV, TSV, JSONL or Parquet: the texts to label
text_column = {text_column}
{id_line}
{label_line}
# test = "test.csv"          # optional labeled test file, reported beside the audit sample
# test_label_column = "label"
# skip_empty = false         # true: drop empty texts with a warning instead of failing
# embedding_column = "embedding"  # Parquet only: your own vectors (a list of floats per row), no encoder

[labelstudio]
project = {project}        # project title (created with the label set if missing) or numeric id
# url = "http://127.0.0.1:18080"   # default: $LABEL_STUDIO_URL
# batch_size = 250           # tasks per import request

[loop]
strategy = {strategy}      # {strategies}
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
# backend = "onnx"           # or "torch" (same vectors); sync refuses a change mid-campaign
# precision = "fp32"         # or "int8" (onnx only: ~2x faster, measured to cost some labels)
# threads = 2                # default: every core this process may use
C = 10.0                     # inverse regularisation of the logistic-regression head
neighbours = 6               # blend each embedding with its 6 nearest pool texts (0 = off)
neighbour_weight = 0.5        # until half the pool is labeled, then it fades to 0 on a fully labeled pool
# neighbour_weight_shrinks = true   # false: one weight all along (what campaigns begun before it used)

[state]
path = "labelloop.db"        # SQLite: labels, rounds, pushes, the whole audit ledger

[guidelines]
{guidelines_line}

[quality]
overlap_share = 0.1          # share of model-chosen tasks labeled by several people, without the model's guess
annotators_per_task = 2      # ...by this many people: agreement (kappa) is measured on them
# audit_annotators = 2       # each audit text labeled by two people, blind: an annotator's slip becomes a
                             # tie to settle, not a model error in the audit accuracy (default 1)
max_annotators = 3           # a tie gets one more annotator, up to this many; then it waits for a reviewer
suspects_share = 0.05        # {suspects_note}
prefill_confidence = "auto"  # pre-select the model's guess only where blind answers show it right...
prefill_precision = 0.9      # ...at least this often (or give a fixed confidence, e.g. 0.8)
max_delete_share = 0.2       # a pull that would delete more than this share of the campaign's tasks is refused
"""
