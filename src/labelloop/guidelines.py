"""Annotation guidelines: one Markdown file per campaign, shown to annotators before they label.

Labels are only as consistent as the rules people follow, so the rules live in a file the
team edits (definitions, examples, counter-examples, edge cases per label). ``sync`` renders it
to the Label Studio project's instructions whenever its content changes and records each
version in the ledger, so every label can be traced to the guidelines it was given under.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

__all__ = ["Guidelines", "read_guidelines", "starter_guidelines", "render_html"]

MAX_BYTES = 512 * 1024


@dataclass(frozen=True)
class Guidelines:
    """The guidelines' Markdown text and its version (a hash of the text: same text, same version)."""

    markdown: str
    source: str

    @property
    def version(self) -> str:
        return "g-" + hashlib.sha256(self.markdown.encode("utf-8")).hexdigest()[:10]

    @property
    def html(self) -> str:
        return render_html(self.markdown)


def render_html(markdown: str) -> str:
    """Markdown to the HTML Label Studio shows as instructions; raw HTML in the file is escaped."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)


def read_guidelines(path: Path) -> Guidelines:
    """Read a guidelines file; one-line errors for what a person can fix."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"guidelines {path}: file not found (`labelloop init` writes a starter file)"
        ) from None
    except IsADirectoryError:
        raise DataError(f"guidelines {path}: is a directory; give a Markdown file") from None
    except OSError as exc:
        raise DataError(f"guidelines {path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise DataError(
            f"guidelines {path}: {len(raw) // 1024} KB is too long for instructions "
            f"(at most {MAX_BYTES // 1024} KB); link to longer material instead"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"guidelines {path}: not UTF-8 text") from None
    if not text.strip():
        raise DataError(f"guidelines {path}: the file is empty")
    return Guidelines(text.replace("\r\n", "\n"), str(path))


def starter_guidelines(
    labels: Sequence[str], examples: Mapping[str, Sequence[str]] | None = None, *, multi_label: bool = False
) -> str:
    """A starter file for the team to fill in: one section per label, with example texts where known.

    A multi-label campaign asks for every label that applies, so its rule must not say "one label"."""
    examples = examples or {}
    rule = (
        "Read these before you start. Tick every label that applies to the text, and only those; "
        "if none applies or the text is unreadable, press **Skip** rather than guess.\n"
        if multi_label
        else "Read these before you start. Pick the **one** label that fits the text best. If two fit, follow the "
        "edge-case rules below; if none fits or the text is unreadable, press **Skip** rather than guess.\n"
    )
    parts = [
        "# Labeling guidelines\n",
        rule,
        "The model's guess may be pre-selected when it is confident: check it, never accept it blindly.\n",
    ]
    for label in labels:
        parts.append(f"## {label}\n")
        parts.append("**Definition:** _what belongs here, in one or two sentences._\n")
        shown = [e for e in examples.get(label, [])][:3]
        if shown:
            parts.append("**Examples:**\n")
            parts += [f"- {_one_line(e)}" for e in shown]
            parts.append("")
        else:
            parts.append("**Examples:** _two or three typical texts._\n")
        parts.append(
            "**Not this label:** _texts that look similar but belong elsewhere, and where they go._\n"
        )
    parts.append("## Edge cases\n")
    first = (
        "- _When a label applies only in part, …_" if multi_label else "- _When a text fits two labels, …_"
    )
    parts.append(f"{first}\n- _When a text is in another language, …_\n")
    return "\n".join(parts)


def _one_line(text: str, width: int = 160) -> str:
    flat = " ".join(str(text).split())
    flat = flat.replace("*", "\\*").replace("_", "\\_")
    return flat if len(flat) <= width else flat[: width - 1] + "…"
