"""Loading a CSV or Parquet file of the workspace for analysis.

Only files inside the workspace (or the export folder named by
``SWITCHYARD_EXPORT``) are read: the Analysis page takes paths typed by an
operator, and it must not become a way to read any file of the machine.

CSV files are parsed by pyarrow (multi-threaded, ISO timestamps recognised),
which reads a million rows in well under a second. Plots draw a random sample
of at most ``sample_rows`` rows; :meth:`LoadedData.sample` says so in a note.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from switchyard import workspace
from switchyard.exceptions import AnalysisError, SwitchyardError  # noqa: F401 (AnalysisError: re-exported)

EXPORT_FILE = "export.csv"
DEFAULT_SAMPLE_ROWS = 20_000
MIN_SAMPLE_ROWS = 100
CSV_SUFFIXES = (".csv", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
DELIMITERS = (",", ";", "\t", "|")
# a text column with at most this many distinct values (in the sample) is a category
CATEGORY_MAX_VALUES = 50
KINDS = ("numeric", "datetime", "category", "text")



@dataclass
class LoadedData:
    """A table loaded for analysis, with what the page says about it.

    Attributes:
        path: The file read.
        frame: All its rows.
        kinds: Column name -> ``numeric``, ``datetime``, ``category`` or ``text``.
        sample_rows: Plots draw at most this many rows.
        file_bytes: Size of the file on disk.
    """

    path: Path
    frame: pd.DataFrame
    kinds: dict[str, str]
    sample_rows: int = DEFAULT_SAMPLE_ROWS
    file_bytes: int = 0
    delimiter: str | None = None
    notes: list[str] = field(default_factory=list)

    def with_sample_rows(self, sample_rows: int) -> "LoadedData":
        """The same table with another plot sample size (kept, so its sample is drawn once)."""
        sample_rows = check_sample_rows(sample_rows)
        if sample_rows == self.sample_rows:
            return self
        variants = self.__dict__.setdefault("_variants", {})
        if sample_rows not in variants:
            variants[sample_rows] = replace(self, sample_rows=sample_rows)
        return variants[sample_rows]

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def columns_of(self, *kinds: str) -> list[str]:
        """Columns whose kind is one of ``kinds`` (all columns when none given), in file order."""
        return [c for c in self.columns if not kinds or self.kinds[c] in kinds]

    @cached_property
    def plot_frame(self) -> pd.DataFrame:
        """The rows plots draw: all of them, or a random sample (same seed, same sample)."""
        if self.rows <= self.sample_rows:
            return self.frame
        return self.frame.sample(n=self.sample_rows, random_state=0).sort_index()

    @property
    def sample_note(self) -> str | None:
        """What the plots show when they show a sample, else None."""
        if self.rows <= self.sample_rows:
            return None
        return f"random sample of {self.sample_rows:,} of {self.rows:,} rows"

    def dtypes(self) -> pd.DataFrame:
        """One row per column: name, kind, dtype, non-null count."""
        return pd.DataFrame({
            "column": self.columns,
            "kind": [self.kinds[c] for c in self.columns],
            "dtype": [str(t) for t in self.frame.dtypes],
            "non-null": [int(n) for n in self.frame.notna().sum()],
        })


def allowed_roots(home: Path | None = None) -> list[Path]:
    """Folders whose files may be analysed: the workspace and, when set, SWITCHYARD_EXPORT."""
    roots = [(home or workspace.home()).resolve()]
    export = os.environ.get("SWITCHYARD_EXPORT")
    if export:
        roots.append(Path(export).expanduser().resolve())
    return roots


def resolve_path(path: Path | str, home: Path | None = None) -> Path:
    """``path`` (relative paths are relative to the workspace) resolved, if it is inside it.

    Raises:
        AnalysisError: the path leads outside the workspace (symlinks included).
    """
    text = str(path).strip()
    if not text or "\x00" in text:
        raise AnalysisError("no file given: type a path inside the workspace, e.g. export/flight/export.csv")
    roots = allowed_roots(home)
    given = Path(text).expanduser()
    resolved = (given if given.is_absolute() else roots[0] / given).resolve()
    if not any(resolved == r or resolved.is_relative_to(r) for r in roots):
        raise AnalysisError(
            f"{text} is outside the workspace {roots[0]}: only files inside it can be analysed; "
            f"copy the file under {roots[0]} (e.g. into export/<app>/) and load it from there"
        )
    return resolved


def export_file(app: str, home: Path | None = None) -> Path:
    """Where the app's ``export.csv`` is (``SWITCHYARD_EXPORT`` overrides the workspace)."""
    return workspace.export_dir(app, home) / EXPORT_FILE


def load_table(path: Path | str, *, home: Path | None = None, sample_rows: int = DEFAULT_SAMPLE_ROWS,
               encoding: str = "utf-8") -> LoadedData:
    """Load a CSV or Parquet file (or a folder of Parquet files) of the workspace.

    Args:
        path: Absolute, or relative to the workspace.
        home: The workspace (default: ``SWITCHYARD_HOME``).
        sample_rows: Plots draw at most this many rows.
        encoding: Text encoding of a CSV file.

    Raises:
        AnalysisError: outside the workspace, missing, empty, not UTF-8 (or ``encoding``),
            malformed, of an unknown type, or without rows; the message names the file
            and the fix.
    """
    resolved = resolve_path(path, home)
    sample_rows = check_sample_rows(sample_rows)
    if not resolved.exists():
        raise AnalysisError(f"{resolved} does not exist: check the path, or RUN the app and export "
                            "its output first (Orchestrate page)")
    if resolved.is_dir():
        frame, size, delimiter = _read_parquet(resolved), _folder_bytes(resolved), None
    else:
        size = resolved.stat().st_size
        if size == 0:
            raise AnalysisError(f"{resolved} is empty (0 bytes): export the data again, or pick "
                                "another file")
        suffix = resolved.suffix.lower()
        if suffix in PARQUET_SUFFIXES:
            frame, delimiter = _read_parquet(resolved), None
        elif suffix in CSV_SUFFIXES:
            frame, delimiter = _read_csv(resolved, encoding)
        else:
            raise AnalysisError(f"{resolved}: cannot read '{suffix or resolved.name}' files: pick a "
                                ".csv or .parquet file")
    frame.columns = [str(c) for c in frame.columns]
    if len(frame.columns) == 0:
        raise AnalysisError(f"{resolved} has no columns: export the data again with at least one column")
    if len(frame) == 0:
        raise AnalysisError(f"{resolved} has a header ({', '.join(frame.columns[:8])}) but no rows: "
                            "nothing to analyse; export a run that produced data")
    data = LoadedData(path=resolved, frame=frame, kinds=column_kinds(frame), sample_rows=sample_rows,
                      file_bytes=size, delimiter=delimiter)
    if len(frame.columns) == 1:
        data.notes.append(f"{resolved.name} has one column ('{frame.columns[0]}'): views that need "
                          "two columns (scatter, correlation, map) cannot be drawn from it")
    return data


def check_sample_rows(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_SAMPLE_ROWS:
        raise AnalysisError(f"sample_rows {value!r} is not a whole number >= {MIN_SAMPLE_ROWS}: "
                            "write e.g. sample_rows = 20000 in [analysis]")
    return value


def sniff_delimiter(first_line: str) -> str:
    """The delimiter most used in the header line (a comma when none is)."""
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _first_line(path: Path, encoding: str) -> str:
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    return head.split(b"\n", 1)[0].decode(encoding, errors="replace")


def _read_csv(path: Path, encoding: str) -> tuple[pd.DataFrame, str]:
    try:
        "".encode(encoding)
    except LookupError:
        raise AnalysisError(f"unknown encoding '{encoding}': use e.g. utf-8 or latin-1") from None
    delimiter = sniff_delimiter(_first_line(path, encoding))
    read = pacsv.ReadOptions(encoding=encoding, block_size=8 << 20)
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False)
    try:
        table = pacsv.read_csv(path, read_options=read, parse_options=parse)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        problem = str(e).splitlines()[0]
        if "UTF8" in problem or "utf-8" in problem.lower():
            raise AnalysisError(_encoding_problem(path, encoding)) from e
        raise AnalysisError(f"{path} cannot be read as CSV ({problem}): fix the file or export it "
                            "again") from e
    except OSError as e:
        raise AnalysisError(f"{path} cannot be read ({e.strerror or e}): check its permissions") from e
    # Bytes that are not valid text make pyarrow fall back to a binary column.
    if any(pa.types.is_binary(t) or pa.types.is_large_binary(t) for t in table.schema.types):
        raise AnalysisError(_encoding_problem(path, encoding))
    return table.to_pandas(), delimiter


def _encoding_problem(path: Path, encoding: str) -> str:
    where = ""
    if encoding.replace("-", "").lower() == "utf8":
        data = path.read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            where = f" (byte 0x{data[e.start]:02X} on line {line})"
    return (f"{path} is not {encoding} text{where}: save it as UTF-8 (e.g. iconv -f latin1 -t utf-8), "
            "or choose its encoding (e.g. latin-1)")


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as e:
        raise AnalysisError(f"{path} cannot be read as Parquet ({str(e).splitlines()[0]}): write it "
                            "again, or pick another file") from e


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def column_kinds(frame: pd.DataFrame, probe_rows: int = 10_000) -> dict[str, str]:
    """Column -> ``numeric``, ``datetime``, ``category`` (few distinct values, or booleans) or ``text``."""
    probe = frame.head(probe_rows)
    kinds = {}
    for name in frame.columns:
        s = frame[name]
        if pd.api.types.is_bool_dtype(s):
            kind = "category"
        elif pd.api.types.is_numeric_dtype(s):
            kind = "numeric"
        elif pd.api.types.is_datetime64_any_dtype(s):
            kind = "datetime"
        else:
            distinct = probe[name].nunique(dropna=True)
            kind = "category" if distinct <= CATEGORY_MAX_VALUES else "text"
        kinds[str(name)] = kind
    return kinds


def file_stamp(path: Path) -> tuple[str, int, int]:
    """(path, mtime ns, size): changes whenever the file is rewritten; a cache key."""
    try:
        st = path.stat()
        return str(path), st.st_mtime_ns, st.st_size
    except OSError:
        return str(path), 0, -1
