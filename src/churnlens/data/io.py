"""Reading input files and writing every output atomically.

Readers turn file-level problems (missing, wrong type, bad encoding, empty) into one clear
error naming the table. Writers go through a temp file in the target folder and
`os.replace`, so a reader never sees half an output and a failed run leaves nothing behind;
the finished file gets the mode the process umask asks for (mkstemp alone makes it 0600).
Every CSV the package writes goes through `write_csv`, the one place that neutralises cells a
spreadsheet would run as a formula.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from churnlens.errors import ChurnlensError

READABLE_SUFFIXES = (".csv", ".parquet", ".pq")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0")
PLAIN_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


def read_table(path: Path, table: str) -> pd.DataFrame:
    """Read a CSV (every column as text, UTF-8) or Parquet file as it is stored."""
    suffix = path.suffix.lower()
    if suffix not in READABLE_SUFFIXES:
        raise ChurnlensError(
            f"table {table}: {path} has file type '{suffix or '(none)'}'; "
            f"expected one of {', '.join(READABLE_SUFFIXES)}"
        )
    if not path.is_file():
        raise ChurnlensError(f"table {table}: file {path} not found")
    if path.stat().st_size == 0:
        raise ChurnlensError(f"table {table}: file {path} is empty")
    try:
        if suffix == ".csv":
            frame = _read_csv_as_text(path)
        else:
            frame = pq.read_table(path).to_pandas()
    except UnicodeDecodeError:
        raise ChurnlensError(f"table {table}: {path} is not UTF-8 encoded text") from None
    except (pa.ArrowInvalid, OSError) as exc:
        message = str(exc).splitlines()[0]
        if "utf8" in message.lower() or "utf-8" in message.lower():
            message = "not UTF-8 encoded text"
        raise ChurnlensError(f"table {table}: cannot read {path}: {message}") from None
    if frame.empty:
        raise ChurnlensError(f"table {table}: {path} has no rows")
    return frame


def _read_csv_as_text(path: Path) -> pd.DataFrame:
    """All columns as strings so that the contract, not a type guesser, decides each type."""
    with pacsv.open_csv(path) as reader:
        names = reader.schema.names
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in names},
        strings_can_be_null=True,
        null_values=[""],
    )
    return pacsv.read_csv(path, convert_options=convert).to_pandas()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~umask())
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    """A file's sha256 (hex), read in blocks: the one hash of model files and output sets."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def umask() -> int:
    """The process umask (reading it means setting it; it is put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Run `write(tmp_path)` and move the finished file to `path`."""
    with atomic_path(path) as tmp:
        write(tmp)
    return path


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_csv(frame: pd.DataFrame, path: Path, encoding: str = "utf-8") -> Path:
    """Write `frame` as CSV with every formula-like text cell and header neutralised.

    Lines end in CRLF (RFC 4180): then the csv writer quotes any cell holding a CR or LF, so
    a stray carriage return cannot start a new row in a spreadsheet.
    """
    safe = _spreadsheet_safe(frame)
    return write_atomic(
        path,
        lambda tmp: safe.to_csv(tmp, index=False, lineterminator="\r\n", encoding=encoding),
    )


def _spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text that a spreadsheet would run as a formula with ' (OWASP CSV injection).

    Text starting with =, +, -, @, TAB, CR or NUL is prefixed, unless it is a plain number
    such as -2 or +1.5e3, which a spreadsheet reads as that number. Numeric columns are
    left as they are, so numbers (negative ones too) stay numbers. Headers get the same rule.
    """
    safe = frame.rename(columns=lambda name: _neutralised(pd.Series([str(name)])).iat[0])
    for position in range(safe.shape[1]):
        values = safe.iloc[:, position]
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype("object")
        if pd.api.types.is_string_dtype(values) or values.dtype == object:
            safe.isetitem(position, _neutralised(values))
    return safe


def _neutralised(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.StringDtype):  # only strings and missing values: no loop
        text = values
    else:
        text = values.where(values.map(lambda v: isinstance(v, str)).astype(bool))  # strings
    risky = text.str.startswith(FORMULA_STARTS, na=False)
    if not risky.any():  # the usual column: nothing to prefix, nothing more to scan
        return values
    risky &= ~text.str.fullmatch(PLAIN_NUMBER, na=False)
    return values.where(~risky, "'" + text)
