"""Writing files without losing any: checksums, atomic writes, output-path checks.

Everything the package writes goes through here, so that a failure half-way
never leaves a truncated file under the final name and never removes a file
the package did not write.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["sha256_file", "md5_file", "tree_digests", "atomic_write_text", "check_writable_file",
           "check_writable_dir"]


def sha256_file(path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (never whole into memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def md5_file(path) -> str:
    """Hex md5 of a file, read in 1 MiB blocks: only to compare with a digest a publisher gives."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_digests(root: Path, entries) -> dict:
    """``{relative posix path: {"sha256", "size"}}`` of every file under ``entries`` of ``root``.

    ``entries`` are names of files or folders directly under ``root``; folders
    are walked recursively (sorted, so the manifest is deterministic).
    """
    out = {}
    for name in entries:
        p = root / name
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
        for f in files:
            out[f.relative_to(root).as_posix()] = {"sha256": sha256_file(f), "size": f.stat().st_size}
    return out


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary sibling and a rename.

    A reader (or a crash) never sees a half-written file under ``path``; on
    failure the temporary file is removed and any old ``path`` is kept.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _first_existing_parent(path: Path) -> Path:
    p = path.absolute().parent
    while not p.exists():
        p = p.parent
    return p


def check_writable_file(path, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` unless ``path`` can be written as a file.

    Checked before long work starts, so that a bad output path fails in a
    second, not after the fits.  Missing parent folders are fine (they are
    created) as long as none of them is a file and the first existing one is
    writable.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a directory; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{what} {path} exists and is not writable")
    parent = _first_existing_parent(path)
    if not parent.is_dir():
        raise ValueError(f"{what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: folder {parent} is not writable")


def check_writable_dir(path, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` unless ``path`` is, or can become, a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{what} {path} is not writable")
        return
    parent = _first_existing_parent(path)
    if not parent.is_dir():
        raise ValueError(f"{what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: folder {parent} is not writable")
