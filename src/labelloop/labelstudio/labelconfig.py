"""The labeling config labelloop works with: one ``<Choices>`` over one text, single-choice, or
``choice="multiple"`` for a multi-label campaign (an answer is then a set of labels).

Built and read through label-studio-sdk's own :class:`~label_studio_sdk.label_interface.LabelInterface`,
so we parse configs the way Label Studio does (aliases, escaping, object tags). The SDK is imported
inside the functions: this module stays importable where only the core of labelloop is installed.
The label-set rules are :class:`labelloop.labels.LabelSet`'s, nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..labels import DEFAULT_DELIMITER, LabelSet
from .errors import LabelSetMismatchError, LabelStudioInputError

__all__ = ["ChoicesConfig", "check_label_set", "check_mode", "labeling_config", "parse_config"]


@dataclass(frozen=True)
class ChoicesConfig:
    """What we need from a text-classification labeling config."""

    labels: tuple[str, ...]
    from_name: str = "label"
    to_name: str = "text"
    text_key: str = "text"
    multiple: bool = False  # choice="multiple": an answer is a set, stored as one joined string
    delimiter: str = DEFAULT_DELIMITER  # how labelloop joins a set into one label (not part of the XML)


def labeling_config(
    labels: Sequence[str],
    *,
    from_name: str = "label",
    to_name: str = "text",
    text_key: str = "text",
    multiple: bool = False,
) -> str:
    """A single-choice (or ``multiple``: multi-label) text-classification config; the labels must form a
    :class:`LabelSet`."""
    from label_studio_sdk.label_interface import LabelInterface
    from label_studio_sdk.label_interface.create import choices

    names = list(LabelSet(labels))
    tags = {
        to_name: ("Text", {"value": f"${text_key}"}, ()),
        from_name: choices(
            names, toName=to_name, choice="multiple" if multiple else "single", showInline="false"
        ),
    }
    return str(LabelInterface.create(tags)).rstrip("\n") + "\n"


def _interface(xml: str, where: str) -> Any:
    from label_studio_sdk.label_interface import LabelInterface

    if not xml or not xml.strip():
        raise LabelStudioInputError(f"{where} has an empty labeling config")
    try:
        return LabelInterface(xml)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200]
        raise LabelStudioInputError(f"{where} is not valid XML: {reason}") from None


def parse_config(
    xml: str, where: str = "the labeling config", delimiter: str = DEFAULT_DELIMITER
) -> ChoicesConfig:
    """Read the one ``<Choices>`` tag (single or multiple) and the text it labels; anything else is an input
    error. ``delimiter`` joins a multiple-choice answer into one label."""
    li = _interface(xml, where)
    tags = [c for c in li.controls if c.tag == "Choices"]
    if len(tags) != 1:
        raise LabelStudioInputError(
            f"{where} has {len(tags)} <Choices> tags; labelloop needs exactly one (text classification)"
        )
    tag = tags[0]
    choice = tag.attr.get("choice", "single")
    if choice not in ("single", "multiple"):
        raise LabelStudioInputError(
            f'{where}: <Choices choice={choice!r}>; labelloop needs choice="single" or "multiple"'
        )
    to_name = tag.attr.get("toName", "")
    target = next((o for o in li.objects if o.name == to_name), None)
    value = str(getattr(target, "value", "") or "")
    if not value.startswith("$"):
        raise LabelStudioInputError(
            f'{where}: <Choices toName={to_name!r}> does not point at a tag with value="$field"'
        )
    return ChoicesConfig(
        labels=tuple(tag.labels),
        from_name=tag.name,
        to_name=to_name,
        text_key=value[1:],
        multiple=choice == "multiple",
        delimiter=delimiter,
    )


def check_label_set(config: ChoicesConfig, labels: Sequence[str], where: str) -> None:
    """Fail naming only what differs when the project's choices are not exactly ``labels`` (order is free)."""
    ours = labels if isinstance(labels, LabelSet) else LabelSet(labels)
    if not ours.same_labels(config.labels):
        raise LabelSetMismatchError(
            f"{where} has a different label set ({ours.difference(config.labels, theirs='Label Studio')}); "
            f"fix the labels or use another project (labelloop never relabels a project)"
        )


def check_mode(config: ChoicesConfig, multiple: bool, where: str) -> None:
    """Fail when the project's choices are single and the campaign multi-label, or the other way round."""
    if config.multiple != multiple:
        mode = {True: 'multi-label (choice="multiple")', False: 'single-label (choice="single")'}
        raise LabelSetMismatchError(
            f"{where} is {mode[config.multiple]} but the campaign is {mode[multiple]}; set multi_label to "
            f"match or use another project (labelloop never changes a project's labeling config)"
        )
