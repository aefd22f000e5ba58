"""Identical texts as one item: a label asked once covers every copy, and copies labeled differently
keep the majority label with a warning that names them.

Pure functions over the rows :func:`labelloop.data.load_pool` read; the pool, the sync and the status
report all say conflicts in the one sentence of :func:`conflicts_message`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import LabelloopWarning

__all__ = ["LabelConflict", "LabelConflictWarning", "collapse_copies", "conflicts_message"]


class LabelConflictWarning(LabelloopWarning):
    """Copies of one text carry different labels in the data: the majority label is kept."""


@dataclass(frozen=True)
class LabelConflict:
    """Copies of one text whose given labels differ. ``counts`` is most common first; ``kept`` is the
    majority label (on a tie, the label of the first row among the tied ones)."""

    id: str
    text: str
    counts: tuple[tuple[str, int], ...]
    kept: str

    def describe(self, chars: int = 60) -> str:
        shown = self.text if len(self.text) <= chars else self.text[: chars - 1] + "…"
        votes = ", ".join(f"{lab} ×{n}" for lab, n in self.counts)
        return f"{shown!r} ({votes}; kept {self.kept})"


def conflicts_message(n: int, shown: Sequence[str]) -> str:
    """One sentence for ``n`` label conflicts, naming the first ones (:meth:`LabelConflict.describe`)."""
    more = f"; … ({n} in all)" if n > len(shown) else ""
    return (
        f"{n} text(s) appear several times with different labels; the majority label is kept: "
        f"{'; '.join(shown)}{more}"
    )


def collapse_copies(
    ids: Sequence[str], texts: Sequence[str], labels: Sequence[str | None], data_rows: Sequence[int]
) -> tuple[list[int], tuple[tuple[int, ...], ...], list[str | None], tuple[LabelConflict, ...]]:
    """Group rows with the same id (here: the same text) into one item, in order of first appearance.

    Returns the first row index of each item (into the inputs), the data rows each item covers, each
    item's label and the conflicts. A label on any copy applies to all; copies labeled differently keep
    the majority label (on a tie, the first row's among the tied), so nothing is dropped silently.
    """
    groups: dict[str, list[int]] = {}
    for j, i in enumerate(ids):
        groups.setdefault(i, []).append(j)
    first, covered, kept_labels, conflicts = [], [], [], []
    for item_id, members in groups.items():
        first.append(members[0])
        covered.append(tuple(data_rows[j] for j in members))
        given = [lab for lab in (labels[j] for j in members) if lab is not None]
        counts = Counter(given)
        if len(counts) <= 1:
            kept_labels.append(given[0] if given else None)
            continue
        top = max(counts.values())
        kept = next(lab for lab in given if counts[lab] == top)  # first row among the tied
        order = sorted(counts.items(), key=lambda kv: (-kv[1], given.index(kv[0])))
        kept_labels.append(kept)
        conflicts.append(LabelConflict(item_id, texts[members[0]], tuple(order), kept))
    return first, tuple(covered), kept_labels, tuple(conflicts)
