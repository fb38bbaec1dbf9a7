"""Reading input files and writing every output atomically.

Readers turn file-level problems (missing, wrong type, bad encoding, empty) into one clear
error naming the table, and hand the contract a `Source` for DuckDB: a Parquet file stays on
disk for DuckDB to scan (its footer gives columns and rows); text tables are read as exports
come: `.csv`, `.tsv` or `.txt`, also gzip-compressed (`.csv.gz`), with the separator,
missing-value markers and header a table's config declares, by DuckDB into Arrow (every cell
as text: the contract, not a type guesser, decides types); runs of blanks as the separator
(`sep: whitespace`, as in fixed-width exports) go through pandas, which DuckDB's
single-character separators cannot express.
Writers go through a temp file in the target folder and `os.replace`, so a reader never sees
half an output and a failed run leaves nothing behind; the finished file gets the mode the
process umask asks for (mkstemp alone makes it 0600).
Every CSV the package writes goes through `write_csv`, the one place that neutralises cells a
spreadsheet would run as a formula.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnlens.errors import ChurnlensError

TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")
READABLE_SUFFIXES = (*TEXT_SUFFIXES, ".parquet", ".pq")
WHITESPACE = "whitespace"  # sep: runs of blanks or tabs
DEFAULT_SEPS = {".csv": ",", ".tsv": "\t"}  # .txt: DuckDB detects the separator
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0")
PLAIN_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"


@dataclass(frozen=True)
class Source:
    """One input table before the contract: its column names as the input has them (perhaps
    repeated: the contract reports that) and its data, a Parquet file DuckDB scans, or an Arrow
    table or DataFrame already in memory (a text file is read into Arrow, every cell text)."""

    names: list
    data: Path | pa.Table | pd.DataFrame

    def register(self, con: duckdb.DuckDBPyConnection, view: str, names: list[str]) -> None:
        """Create the DuckDB view `view`: the columns under `names` and `_row`, the 1-based
        data row (Parquet's own row number, or the position in memory)."""
        if isinstance(self.data, Path):
            columns = ", ".join(
                f"{quote(old)} AS {quote(new)}" for old, new in zip(self.names, names, strict=True)
            )
            path = str(self.data).replace("'", "''")
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT file_row_number + 1 AS _row, "
                f"{columns} FROM read_parquet('{path}', file_row_number = true)"
            )
            return
        table = self.data
        if isinstance(table, pd.DataFrame):  # object columns: their text, as the contract reads it
            frame = table.set_axis([f"c{i}" for i in range(table.shape[1])], axis=1)
            for column in frame.columns:
                if frame[column].dtype == object:
                    frame[column] = frame[column].astype("str")
            table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.rename_columns(names).append_column(
            "_row", pa.array(range(1, table.num_rows + 1), pa.int64())
        )
        con.register(f"{view}_arrow", table)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {view}_arrow")


def quote(name: str) -> str:
    """A SQL identifier for any column name."""
    return '"' + str(name).replace('"', '""') + '"'


def scan_table(
    path: Path,
    table: str,
    sep: str | None = None,
    missing: tuple[str, ...] = (),
    header: bool = True,
) -> Source:
    """Open a text table (every column as text, UTF-8; blank cells and the `missing` markers
    are missing) or a Parquet file as it is stored (DuckDB scans it when the checks run).
    Without a header row the columns are named column0, column1, ..."""
    name = path.name.lower()
    suffix = next((s for s in READABLE_SUFFIXES if name.endswith(s)), path.suffix.lower())
    if suffix not in READABLE_SUFFIXES:
        raise ChurnlensError(
            f"table {table}: {path} has file type '{suffix or '(none)'}'; "
            f"expected one of {', '.join(READABLE_SUFFIXES)}"
        )
    if not path.is_file():
        raise ChurnlensError(f"table {table}: file {path} not found")
    if path.stat().st_size == 0:
        raise ChurnlensError(f"table {table}: file {path} is empty")
    text = suffix in TEXT_SUFFIXES
    sep = sep or DEFAULT_SEPS.get(suffix.removesuffix(".gz"))
    # a file written with another separator is the usual reason a text table cannot be read
    other = f"set data.{table}.sep if the file uses another"
    hint = f" (read as {sep!r}-separated, every line a row: {other})" if sep else ""
    try:
        if text:
            source = _read_text(path, sep, ("", *missing), header)
            rows = source.data.num_rows
        else:
            source, rows = _parquet(path)
    except UnicodeDecodeError:
        raise ChurnlensError(f"table {table}: {path} is not UTF-8 encoded text") from None
    except (pa.ArrowInvalid, OSError, duckdb.Error, pd.errors.ParserError) as exc:
        lines = str(exc).splitlines()
        # DuckDB: "CSV Error on Line: N", the line itself, then why
        why = [line for line in lines[1:4] if line and not line.startswith("Original Line")]
        message = "; ".join(lines[:1] + why[:1])
        if any(word in message.lower() for word in ("utf8", "utf-8", "unicode")):
            message = "not UTF-8 encoded text"
        elif text:
            message += hint
        raise ChurnlensError(f"table {table}: cannot read {path}: {message}") from None
    if text and header and len(source.names) == 1 and re.search(r"[,;\t|]", source.names[0]):
        raise ChurnlensError(
            f"table {table}: {path} reads as one column named {source.names[0]!r}{hint}"
        )
    if not rows:
        raise ChurnlensError(f"table {table}: {path} has no rows")
    return source


def _parquet(path: Path) -> tuple[Source, int]:
    """A Parquet file's columns (less the index pandas stored as columns) and row count,
    from its footer: the data stay on disk."""
    schema = pq.read_schema(path)
    index = (schema.pandas_metadata or {}).get("index_columns", [])
    names = [name for name in schema.names if name not in index]
    return Source(names, path), pq.read_metadata(path).num_rows


def _read_text(path: Path, sep: str | None, nulls: tuple[str, ...], header: bool) -> Source:
    """Every cell as text or missing. The header row is read as data and taken here, so a
    repeated column name stays visible to the contract (DuckDB would rename it)."""
    if sep == WHITESPACE:
        options = {"sep": r"\s+", "na_values": list(nulls), "keep_default_na": False}
        frame = pd.read_csv(path, header=None, dtype="str", encoding="utf-8", **options)
        cells = pa.Table.from_pandas(frame, preserve_index=False)
    else:
        # skiprows=0: DuckDB's sniffer would otherwise drop leading lines that do not fit the
        # dialect it guessed (a header and data rows, silently); the contract sees every line
        options = {"all_varchar": True, "header": False, "na_values": list(nulls), "skiprows": 0}
        if sep is not None:
            options["sep"] = sep
        with duckdb.connect() as con:
            cells = con.read_csv(str(path), **options).to_arrow_table()
    if header:
        first = cells.slice(0, 1).to_pylist()[0].values() if cells.num_rows else []
        names = [str(v).removeprefix("\ufeff") if v is not None else "" for v in first]
        return Source(names, cells.slice(1))
    return Source([f"column{i}" for i in range(cells.num_columns)], cells)


@contextlib.contextmanager
def writing(path: Path, what: str = "") -> Iterator[None]:
    """An OS error while writing `path` (a full disk, a read-only or vanished folder) is the
    ground the output stands on, not a bug: one ChurnlensError naming the path (exit 2)."""
    try:
        yield
    except (OSError, duckdb.IOException) as error:
        errno = getattr(error, "errno", None)  # pyarrow wraps the OS's words in its own
        why = os.strerror(errno) if errno else (str(error).splitlines() or [""])[0]
        raise ChurnlensError(f"cannot write {what}{path}: {why}") from None


def refuse_special(path: Path, what: str) -> None:
    """An output replaces what is at its path: a device, pipe or socket there (/dev/null,
    /dev/stdout when run as root) would be removed and become a regular file."""
    if path.exists() and not path.is_file() and not path.is_dir():
        raise ChurnlensError(f"{what} {path} is a device, pipe or socket, not a file")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and rename it into place. On a
    write error nothing is left: neither the temp file nor a changed `path`."""
    refuse_special(path, "output")
    with writing(path):
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
            with contextlib.suppress(OSError):  # its folder may be gone: nothing to remove
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

    DuckDB writes the rows (a quarter of the CPU pandas' `to_csv` needs for a million-row
    risk list); the header is written here, so names DuckDB would rename (same but for case)
    stay as they are. Lines end in CRLF (RFC 4180) and any cell holding a CR, LF, comma or
    quote is quoted, so a stray carriage return cannot start a new row in a spreadsheet.
    `encoding` is utf-8, or utf-8-sig to lead with a byte-order mark, which tells
    spreadsheets the text is UTF-8.
    """
    if encoding not in ("utf-8", "utf-8-sig"):
        raise ChurnlensError(f"write_csv: encoding must be utf-8 or utf-8-sig, not {encoding}")
    safe = _spreadsheet_safe(frame)
    header = io.StringIO()
    csv.writer(header, lineterminator="\r\n").writerow(safe.columns)
    lead = (codecs.BOM_UTF8 if encoding == "utf-8-sig" else b"") + header.getvalue().encode()

    def write(tmp: Path) -> None:
        with tmp.open("wb") as out:
            out.write(lead)
            if safe.shape[1]:
                _append_rows(safe, out)

    return write_atomic(path, write)


def _append_rows(frame: pd.DataFrame, out) -> None:
    """The rows of `frame` as CSV (no header), written by DuckDB and appended to `out`."""
    positional = frame.set_axis([f"c{i}" for i in range(frame.shape[1])], axis=1)
    for name, dtype in positional.dtypes.items():  # pandas types DuckDB has none for: as text
        if isinstance(dtype, pd.PeriodDtype | pd.IntervalDtype):
            positional[name] = positional[name].astype("str").where(positional[name].notna())
    with tempfile.TemporaryDirectory() as folder, duckdb.connect() as con:
        rows = Path(folder) / "rows.csv"
        con.register("frame", positional)
        target = str(rows).replace("'", "''")
        con.execute(f"COPY frame TO '{target}' (FORMAT csv, HEADER false, NEW_LINE '\r\n')")
        with rows.open("rb") as written:
            shutil.copyfileobj(written, out)


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
            if _safe_levels(values.cat.categories):  # DuckDB writes their text as it is
                continue
            values = values.astype("object")
        if pd.api.types.is_string_dtype(values) or values.dtype == object:
            safe.isetitem(position, _neutralised(values))
    return safe


def _safe_levels(levels: pd.Index) -> bool:
    """Whether every level of a categorical is text no spreadsheet runs: then none of its
    values needs a prefix, and a million values need not be looked at one by one."""
    text = pd.Series(levels, dtype="object")
    return pd.api.types.infer_dtype(text, skipna=False) == "string" and not _risky(text).any()


def _neutralised(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.StringDtype):  # only strings and missing values: no loop
        text = values
    else:
        text = values.where(values.map(lambda v: isinstance(v, str)).astype(bool))  # strings
    risky = _risky(text)
    return values.where(~risky, "'" + text) if risky.any() else values


def _risky(text: pd.Series) -> pd.Series:
    """Per cell of `text` (strings or missing), whether a spreadsheet would run it."""
    risky = text.str.startswith(FORMULA_STARTS, na=False)
    if risky.any():  # the usual column has none: then no second scan
        risky &= ~text.str.fullmatch(PLAIN_NUMBER, na=False)  # -5 or +1.5 is a number
    return risky
