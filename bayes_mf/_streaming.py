"""Streaming parsers for large ratings files: MovieLens ``::`` and CSV layouts, Netflix prize.

Files are read in blocks of whole lines (``block_bytes``, 32 MB by default);
each block is rewritten with byte-level replacements (``::`` to ``,``; the
Netflix ``MovieID:`` headers and ``YYYY-MM-DD`` dates to plain integer
fields) and parsed by pandas' C reader.  Everything after that is NumPy on
whole blocks: there is no Python loop per rating or per line.  The columns
are kept as ``int32`` ids, ``float32`` ratings and ``int32`` Unix seconds,
so the parsed arrays take 16 bytes per rating.

Every block is checked as it is parsed: a line with too many or too few
fields, a non-numeric field, a rating outside the scale or off its step
(whole or half stars), or Netflix rows before the first ``MovieID:`` header
raise :class:`DataIntegrityError` naming the file and line.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .data import Ratings

__all__ = ["DataNotFoundError", "DataIntegrityError", "RatingArrays", "read_ratings", "to_ratings",
           "LAYOUTS"]

#: the file layouts :func:`read_ratings` knows
LAYOUTS = ("movielens-dat", "movielens-csv", "netflix")

_CSV_HEADER = b"userId,movieId,rating,timestamp"
_INT32_MAX = np.iinfo(np.int32).max


class DataNotFoundError(FileNotFoundError):
    """A data set's files are neither local, cached, nor downloadable."""


class DataIntegrityError(DataNotFoundError):
    """A data file is present but truncated, edited or not the official release."""


@dataclass(frozen=True)
class RatingArrays:
    """Ratings as parsed from the files, in file order, 16 bytes per rating.

    Attributes
    ----------
    user, item : ndarray of int32
        The data set's own ids (not codes).
    rating : ndarray of float32
    timestamp : ndarray of int32
        Unix seconds (Netflix: midnight UTC of the rating's date).
    """

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int:
        return int(self.rating.shape[0])


# ---------------------------------------------------------------- blocks of whole lines
@dataclass
class _Block:
    data: bytes
    starts: list  # (line index in the block where a file's part starts, path, line number in file)

    def where(self, line: int) -> str:
        """``'path, line N'`` of a (0-based) line of the block."""
        k = max(i for i, (s, _, _) in enumerate(self.starts) if s <= line)
        s, path, first = self.starts[k]
        return f"{path}, line {first + line - s}"


def _blocks(paths: Sequence[Path], block_bytes: int, skip_header: bool) -> Iterator[_Block]:
    """Whole lines of ``paths`` (in order) in blocks of about ``block_bytes``.

    Small files are packed into one block; a large file is cut at line ends.
    With ``skip_header`` the first line of each file is checked to be the
    MovieLens CSV header and dropped.
    """
    parts: list[bytes] = []
    starts: list = []
    size = 0
    n_lines = 0
    for path in paths:
        with open(path, "rb") as fh:
            line_no = 1
            if skip_header:
                head = fh.readline().rstrip(b"\r\n")
                if head != _CSV_HEADER:
                    raise DataIntegrityError(f"{path}, line 1: expected the header {_CSV_HEADER.decode()!r}, "
                                             f"found {head[:60].decode('latin-1')!r}")
                line_no = 2
            rest = b""
            while True:
                chunk = fh.read(block_bytes)
                if not chunk:
                    if rest:  # a last line without its newline
                        chunk, rest = rest + b"\n", b""
                    else:
                        break
                else:
                    chunk = rest + chunk
                    cut = chunk.rfind(b"\n") + 1
                    chunk, rest = chunk[:cut], chunk[cut:]
                    if not chunk:
                        continue
                starts.append((n_lines, path, line_no))
                parts.append(chunk)
                lines = chunk.count(b"\n")
                n_lines += lines
                line_no += lines
                size += len(chunk)
                if size >= block_bytes:
                    yield _Block(b"".join(parts), starts)
                    parts, starts, size, n_lines = [], [], 0, 0
    if parts:
        yield _Block(b"".join(parts), starts)


def _fail(block: _Block, line: int, what: str):
    raise DataIntegrityError(f"{block.where(int(line))}: {what}; the file is truncated, edited or not in "
                             "the expected layout")


def _parse(block: _Block, data: bytes, names: list[str]) -> pd.DataFrame:
    """Parse rewritten block ``data`` with the C reader; one row per line, blank lines kept.

    A sentinel column past ``names`` catches a line with one field too many
    (pandas would otherwise turn extra leading fields into an index).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.BytesIO(data), header=None, names=[*names, "_extra"], engine="c",
                                index_col=False, skip_blank_lines=False)
    except pd.errors.ParserWarning:
        _fail(block, 0, f"more than {len(names)} fields")
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+), saw (\d+)", str(exc))
        if m is None:
            raise DataIntegrityError(f"{block.where(0)}: unreadable block ({exc})") from None
        _fail(block, int(m.group(1)) - 1, f"{m.group(2)} fields where {len(names)} were expected")
    extra = frame.pop("_extra").notna().to_numpy()
    if extra.any():
        _fail(block, int(np.flatnonzero(extra)[0]), f"more than {len(names)} fields")
    return frame


def _numeric(block: _Block, frame: pd.DataFrame, col: str, rows=None) -> np.ndarray:
    """Column ``col`` as finite numbers (on ``rows`` only, if given), failing at the first bad line."""
    values = frame[col]
    if values.dtype.kind not in "iuf":  # text (object or pandas' string dtype): a bad field
        values = pd.to_numeric(values, errors="coerce").astype(np.float64)
    arr = values.to_numpy()
    sub = arr if rows is None else arr[rows]
    if sub.dtype.kind == "f":
        bad = ~np.isfinite(sub)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            line = pos if rows is None else int(np.flatnonzero(rows)[pos])
            _fail(block, line, f"field {col!r} is missing or not a number")
    return sub


def _ids(block: _Block, values: np.ndarray, col: str, lines: np.ndarray | None = None) -> np.ndarray:
    bad = (values < 0) | (values > _INT32_MAX) | (values != np.floor(values))
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        _fail(block, pos if lines is None else lines[pos],
              f"{col} {values[pos].item()!r} is not an integer id")
    return values.astype(np.int32)


def _check_ratings(block: _Block, rating: np.ndarray, scale, step, lines=None) -> None:
    lo, hi = scale
    bad = (rating < lo) | (rating > hi)
    if step:
        bad |= np.round(rating / step) * step != rating
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        _fail(block, pos if lines is None else lines[pos],
              f"rating {float(rating[pos]):g} is outside [{lo:g}, {hi:g}] or not a multiple of {step:g}")


# ---------------------------------------------------------------- the layouts
def _movielens_block(block: _Block, csv: bool, scale, step) -> tuple:
    data = block.data if csv else block.data.replace(b"::", b",")
    frame = _parse(block, data, ["user", "item", "rating", "timestamp"])
    user = _ids(block, _numeric(block, frame, "user"), "user id")
    item = _ids(block, _numeric(block, frame, "item"), "item id")
    rating = _numeric(block, frame, "rating").astype(np.float64)
    _check_ratings(block, rating, scale, step)
    ts = _ids(block, _numeric(block, frame, "timestamp"), "timestamp")
    return user, item, rating.astype(np.float32), ts


def _days_since_epoch(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    months = (y - 1970).astype("datetime64[Y]").astype("datetime64[M]") + (m - 1).astype("timedelta64[M]")
    return (months.astype("datetime64[D]") + (d - 1).astype("timedelta64[D]")).astype(np.int64)


def _netflix_block(block: _Block, movie: int, scale, step) -> tuple:
    """Rows of one block of Netflix text; ``movie`` is the id the previous block ended in (-1: none)."""
    raw = np.frombuffer(block.data, dtype=np.uint8)
    newlines = np.flatnonzero(raw == 10)
    header = np.zeros(newlines.size, dtype=bool)
    header[np.searchsorted(newlines, np.flatnonzero(raw == 58))] = True  # lines holding ':'
    data = block.data.replace(b":", b"").replace(b"-", b",")
    frame = _parse(block, data, ["a", "rating", "y", "m", "d"])
    if len(frame) != newlines.size:  # cannot happen with skip_blank_lines=False; never trust silently
        raise DataIntegrityError(f"{block.where(0)}: {len(frame)} rows parsed from {newlines.size} lines")
    a = _numeric(block, frame, "a")
    hdr_rest = frame.loc[header, ["rating", "y", "m", "d"]].notna().to_numpy().any(axis=1)
    if hdr_rest.any():
        _fail(block, np.flatnonzero(header)[np.flatnonzero(hdr_rest)[0]],
              "a 'MovieID:' line with more fields")
    rows = ~header
    lines = np.flatnonzero(rows)
    # forward-fill: each rating takes the id of the last 'MovieID:' line above it (or the carried one)
    hdr_lines = np.flatnonzero(header)
    movies = _ids(block, a[header], "movie id", hdr_lines)
    k = np.searchsorted(hdr_lines, lines, side="right") - 1
    fill = np.where(k >= 0, movies[np.maximum(k, 0)] if movies.size else movie, movie)
    if fill.size and fill.min() < 0:
        _fail(block, lines[int(np.argmin(fill))], "a rating before the first 'MovieID:' line")
    next_movie = int(movies[-1]) if movies.size else movie
    user = _ids(block, a[rows], "customer id", lines)
    rating = _numeric(block, frame, "rating", rows)
    _check_ratings(block, rating, scale, step, lines)
    y, m, d = (_numeric(block, frame, c, rows).astype(np.int64) for c in ("y", "m", "d"))
    bad = (m < 1) | (m > 12) | (d < 1) | (d > 31) | (y < 1970) | (y > 2037)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        _fail(block, lines[pos], f"date {y[pos]}-{m[pos]}-{d[pos]} is not a YYYY-MM-DD date")
    ts = (_days_since_epoch(y, m, d) * 86400).astype(np.int32)
    return (user, fill.astype(np.int32), rating.astype(np.float32), ts), next_movie


def read_ratings(paths, layout: str, *, scale=(1.0, 5.0), step: float | None = 1.0,
                 n_rows: int | None = None, block_bytes: int = 32 << 20) -> RatingArrays:
    """Stream one or more ratings files of a known layout into compact arrays.

    Parameters
    ----------
    paths : path or sequence of paths
        Read in the order given (Netflix: ``mv_*.txt`` or ``combined_data_*.txt``).
    layout : {"movielens-dat", "movielens-csv", "netflix"}
        ``"movielens-dat"``: ``UserID::MovieID::Rating::Timestamp`` (ML-1M, ML-10M).
        ``"movielens-csv"``: a ``userId,movieId,rating,timestamp`` header, then rows
        (ML-20M, 25M, 32M).  ``"netflix"``: blocks that start with a ``MovieID:``
        line followed by ``CustomerID,Rating,YYYY-MM-DD`` lines.
    scale : (low, high)
        Ratings outside it are an error.
    step : float or None
        Ratings must be multiples of it (1: whole stars, 0.5: half stars).
    n_rows : int, optional
        The number of ratings the files must hold (a release's published count).
    block_bytes : int
        Bytes parsed at once; memory beyond the result is a few times this.

    Returns
    -------
    RatingArrays
        ``int32`` ids, ``float32`` ratings, ``int32`` Unix-second timestamps, in file order.

    Raises
    ------
    DataIntegrityError
        A malformed line (named by file and line number), or a row count other than ``n_rows``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not paths:
        raise DataNotFoundError("no ratings files given")
    for p in paths:
        if not p.is_file():
            raise DataIntegrityError(f"{p} is missing")
    cols: list[list] = [[], [], [], []]
    movie = -1
    for block in _blocks(paths, block_bytes, skip_header=layout == "movielens-csv"):
        if layout == "netflix":
            parts, movie = _netflix_block(block, movie, scale, step)
        else:
            parts = _movielens_block(block, layout == "movielens-csv", scale, step)
        for col, part in zip(cols, parts, strict=True):
            col.append(part)
    if not cols[0]:
        raise DataIntegrityError(f"{paths[0]}: no ratings in {len(paths)} file(s)")
    arrays = []
    for k in range(4):  # one column at a time: the blocks of a column are freed once joined
        arrays.append(np.concatenate(cols[k]))
        cols[k] = None
    out = RatingArrays(*arrays)
    if n_rows is not None and len(out) != n_rows:
        where = str(paths[0]) if len(paths) == 1 else f"{len(paths)} files under {paths[0].parent}"
        raise DataIntegrityError(f"{where} hold {len(out):,} ratings, expected {n_rows:,}: truncated, "
                                 "edited or not the official release. Restore the files (or delete them "
                                 "to download again).")
    return out


def _encode(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, uniques)``: ``int32`` codes into the sorted distinct ids, in O(n).

    Ids are non-negative ``int32`` here: a presence table over ``0..max`` and its
    running count give the codes without sorting (a sort is the fallback for sparse
    ids spread far beyond the number of ratings).
    """
    top = int(ids.max())
    if top >= 8 * ids.size + (1 << 24):
        uniques, codes = np.unique(ids, return_inverse=True)
        return codes.astype(np.int32), uniques
    present = np.zeros(top + 1, dtype=bool)
    present[ids] = True
    lookup = np.cumsum(present, dtype=np.int32) - 1
    return lookup[ids], np.flatnonzero(present)


def to_ratings(arrays: RatingArrays, scale, *, check_duplicates: bool = True, where: str = "the file",
               names=("user", "item", "rating")) -> Ratings:
    """:class:`~bayes_mf.data.Ratings` from parsed arrays: ids encoded, pairs checked, ``float64`` ratings.

    Parameters
    ----------
    arrays : RatingArrays
    scale : (low, high)
    check_duplicates : bool
        Refuse a repeated (user, item) pair: one sort of the ``int64`` pair codes.
    where : str
        Named in error messages.
    names : (str, str, str)
        The id and rating names of the result.

    Raises
    ------
    DataIntegrityError
        A repeated pair (both ids named).
    """
    user, users = _encode(arrays.user)
    item, items = _encode(arrays.item)
    if check_duplicates:
        key = user.astype(np.int64) * items.size + item
        key.sort()
        same = np.flatnonzero(key[1:] == key[:-1])
        if same.size:
            k = int(key[same[0]])
            raise DataIntegrityError(
                f"{where}: {same.size:,} repeated ({names[0]}, {names[1]}) pair(s), first "
                f"({int(users[k // items.size])}, {int(items[k % items.size])}); the official releases "
                "have none: the file is edited or not the official release")
        del key
    return Ratings(user=user, item=item, rating=arrays.rating.astype(np.float64),
                   users=pd.Index(users.astype(np.int64), name=names[0]),
                   items=pd.Index(items.astype(np.int64), name=names[1]),
                   scale=(float(scale[0]), float(scale[1])), names=tuple(names),
                   meta={"timestamp": arrays.timestamp})
