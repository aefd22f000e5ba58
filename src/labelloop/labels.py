"""The label set of a campaign: one value type, one set of rules, used by the config, the CLI and Label Studio.

A label set is what annotators see as choices, so its rules are about people: at least two
labels (a one-label project is a mistake, not a classifier), no empty or duplicate labels,
no invisible or control characters, surrounding spaces removed. Order is kept: it is the
order of the choices on screen and of the head's classes.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from .errors import LabelloopError

__all__ = ["LabelSet", "LabelSetError", "DEFAULT_DELIMITER", "join_labels", "split_labels"]

DEFAULT_DELIMITER = "|"
"""How a multi-label cell (and the state file) writes a set of labels: ``"bug|refund"``."""


class LabelSetError(LabelloopError):
    """The labels given cannot form a label set (exit 2)."""


def _visible(label: str) -> bool:
    return any(unicodedata.category(ch)[0] not in ("Z", "C") for ch in label)


class LabelSet(Sequence[str]):
    """An ordered, validated, immutable set of class names.

    >>> LabelSet([" billing", "bug ", "other"]).names
    ('billing', 'bug', 'other')
    >>> LabelSet.parse("billing, bug,other").index("bug")
    1
    """

    __slots__ = ("_index", "_names")

    def __init__(self, labels: Iterable[str]) -> None:
        raw = list(labels)
        bad_type = [x for x in raw if not isinstance(x, str)]
        if bad_type:
            raise LabelSetError(f"labels must be strings, got {bad_type[:3]!r}")
        names = tuple(s.strip() for s in raw)
        if any(not _visible(s) for s in names):
            raise LabelSetError("labels must not be empty or made only of invisible characters")
        ctrl = [s for s in names if any(unicodedata.category(ch) == "Cc" for ch in s)]
        if ctrl:
            raise LabelSetError(f"labels must not hold control characters (tabs, newlines): {ctrl[:3]!r}")
        dups = sorted(s for s, n in Counter(names).items() if n > 1)
        if dups:
            raise LabelSetError(f"duplicate labels: {dups[:10]!r}")
        if len(names) < 2:
            raise LabelSetError(f"a label set needs at least two labels, got {list(names)!r}")
        self._names = names
        self._index = {s: k for k, s in enumerate(names)}

    @classmethod
    def parse(cls, text: str) -> LabelSet:
        """From a comma-separated string, as typed on the command line."""
        return cls(s for s in text.split(",") if s.strip())

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def index(self, label: object, start: int = 0, stop: int | None = None) -> int:
        """The class index of ``label`` (the head's column)."""
        try:
            return self._index[label]  # type: ignore[index]
        except (KeyError, TypeError):
            raise ValueError(f"{label!r} is not in the label set") from None

    def unknown(self, labels: Iterable[str | None]) -> list[str]:
        """Labels (sorted, distinct) that are not in the set; None is ignored."""
        return sorted({lab for lab in labels if lab is not None and lab not in self._index})

    def same_labels(self, other: Iterable[str]) -> bool:
        """True when ``other`` holds exactly these labels, in any order."""
        return set(other) == set(self._names)

    def difference(self, other: Iterable[str], ours: str = "ours", theirs: str = "theirs") -> str:
        """A short line naming only what differs (never both whole lists)."""
        o = set(other)
        only_theirs, only_ours = sorted(o - set(self._names)), sorted(set(self._names) - o)
        parts = []
        if only_theirs:
            parts.append(f"only in {theirs}: {_short(only_theirs)}")
        if only_ours:
            parts.append(f"only in {ours}: {_short(only_ours)}")
        return "; ".join(parts) or "same labels"

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[str, ...]: ...
    def __getitem__(self, i: int | slice) -> str | tuple[str, ...]:
        return self._names[i]

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LabelSet):
            return self._names == other._names
        if isinstance(other, (list, tuple)):
            return list(self._names) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._names)

    def __repr__(self) -> str:
        return f"LabelSet({list(self._names)!r})"


def join_labels(labels: Iterable[str], delimiter: str = DEFAULT_DELIMITER) -> str:
    """A label set as one canonical string (sorted, joined): the state file stores a multi-label answer as
    one label, so the same set is always the same string and votes on it count together."""
    return delimiter.join(sorted(set(labels)))


def split_labels(text: str, delimiter: str = DEFAULT_DELIMITER) -> frozenset[str]:
    """The set a :func:`join_labels` string (or a data cell) stands for; empty pieces are dropped."""
    return frozenset(p.strip() for p in text.split(delimiter) if p.strip())


def _short(items: Sequence[str], n: int = 8) -> str:
    shown = ", ".join(repr(s) for s in items[:n])
    return f"[{shown}{', …' if len(items) > n else ''}] ({len(items)})" if len(items) > n else f"[{shown}]"
