"""The pull file: the JSONL of annotation records ``labelloop pull`` appends to, which is also its cursor.

Written whole or not at all (one write and fsync per pull); a torn last line from a crash is
recognised and cut, anything that is not a pull file is refused untouched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import DataError
from ..labelstudio.annotations import AnnotationRecord

RECORD_START = b'{"event": '
"""How every line of a pull file starts (``json.dumps`` of :meth:`AnnotationRecord.to_dict`)."""


def read_records(path: Path, *, repair: bool = False, option: str = "--out") -> list[AnnotationRecord]:
    """Records of a pulled JSONL file; a torn last line (crash mid-write) is ignored, cut if ``repair``.

    Every complete line must be a record, and a torn tail must start like one, before anything
    is cut: a file that is not a pull file is refused untouched.
    """
    what = f"{option} {path}"
    if os.path.lexists(path) and not path.exists():
        raise DataError(f"{what}: a broken or looping symbolic link")
    if not path.exists():
        return []
    if path.is_dir():
        raise DataError(f"{what} is a directory; give a file")
    if not path.is_file():  # a device or a pipe would be read forever (/dev/zero) or replaced (/dev/null)
        raise DataError(f"{what} is not a regular file")
    raw = path.read_bytes()
    cut = raw.rfind(b"\n") + 1
    complete, tail = raw[:cut], raw[cut:]
    out = []
    for n, line in enumerate(complete.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            out.append(AnnotationRecord.from_dict(json.loads(line)))
        except (ValueError, TypeError, AttributeError) as exc:
            raise DataError(f"{path}:{n}: not a labelloop pull record ({exc}); use a new --out") from None
    if tail:
        n = complete.count(b"\n") + 1
        if not (tail.startswith(RECORD_START) or RECORD_START.startswith(tail)):
            raise DataError(
                f"{path}:{n}: not a labelloop pull record (and no final newline); use a new --out"
            )
        if repair:
            with open(path, "r+b") as fh:
                fh.truncate(cut)
    return out


def append_records(path: Path, records: list[AnnotationRecord]) -> None:
    """Append in one write and fsync: the records are the cursor, so a pull lands whole or not at all."""
    if not records:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    with open(path, "ab") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def scan_mark_path(out: Path) -> Path:
    """Beside OUT: when the last scan started. Only saves work; losing it refetches, never loses labels."""
    return out.with_name(out.name + ".scan.json")


def read_scan_mark(out: Path, project: int) -> str | None:
    try:
        mark = json.loads(scan_mark_path(out).read_text())
    except (OSError, ValueError):
        return None
    return mark.get("scanned_at") if isinstance(mark, dict) and mark.get("project") == project else None


def write_scan_mark(out: Path, project: int, scanned_at: str | None) -> None:
    """Written after the records, atomically: a mark never runs ahead of the records it covers."""
    path = scan_mark_path(out)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"project": project, "scanned_at": scanned_at}) + "\n")
    os.replace(tmp, path)
