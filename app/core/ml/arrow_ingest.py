"""Ingest of a plain CSV file that fits in memory, at the speed of pyarrow's multi-threaded reader and
without pandas: the columns are read typed (numbers as float64, text dictionary-encoded), cleaned
column-wise (text: once per distinct value), hashed from the arrays, de-duplicated and written to
Parquet once, from Arrow.

The result is the one datasets.clean() and chunked_ingest give for the same file (rows, warnings,
report, content hash, the stored frame as pandas reads it back: tests/test_arrow_ingest.py compares
them). Anything this reader does not take on returns None, and the caller reads the file the general
way: another encoding, ';' files (decimal commas), boolean or datetime columns, a cell arrow cannot
read as its column's type, ragged rows, an unclosed quote."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.core.domain.entities import Schema
from app.core.ml import row_hashing
from app.core.ml.cleaning_report import MAX_STORED_CATEGORIES, CleaningReport, ColumnTally, Occurrences
from app.core.ml.file_checks import (
    HEAD_SAMPLE_BYTES,
    MISSING_TOKENS,
    NUMERIC_MISSING_SPELLINGS,
    cell_repr,
    check_header,
    csv_layout,
    delimiter_warning,
)
from app.core.ml.ingested_file import IngestedFile, Progress

if TYPE_CHECKING:
    import pyarrow as pa

FEATURE_KINDS = {"numeric", "categorical"}  # others (boolean, datetime) are read the general way
TARGET_KINDS = {"integer", "float", "string"}
BLOCK_BYTES = 4 << 20  # arrow parses blocks of this size on every core
LARGEST_INTEGER = 2.0 ** 63


class _NotHere(Exception):
    """The file needs the general reader (a cell this reader does not word as the general one does)."""


@dataclass
class _Column:
    """A cleaned column: what is stored, how pandas would type it, its rows' hashes."""

    name: str
    build: Callable[[np.ndarray | None], pa.Array]  # the column as stored in Parquet, of the rows kept (None: all)
    missing: np.ndarray
    dtype: str  # the cleaned frame's dtype (the content hash includes it)
    pandas_type: str  # the Parquet file's pandas metadata, as pandas writes it for the stored frame
    numpy_type: str
    hashes: np.ndarray
    values_at: Callable[[np.ndarray], list]  # the cells at some rows, for an exact comparison


def ingest_csv(path: Path, schema: Schema, destination: Path, id_column: str | None, report: Progress,
               check_cancel: Callable[[], None]) -> IngestedFile | None:
    """path read whole, validated, cleaned, de-duplicated, hashed and written as Parquet to destination;
    None where the general reader must read it."""
    if not _schema_supported(schema):
        return None
    with open(path, "rb") as handle:
        layout = csv_layout(handle.read(HEAD_SAMPLE_BYTES))
    if layout is None or layout[1] == ";":
        return None
    header, delimiter = layout
    check_header(header, path.name)
    found = CleaningReport(path.name, schema, "ingest", id_column=id_column)
    found.check_columns(header)
    report(0.05, f"reading {path.name}")
    table = _read(path, header, delimiter, schema, id_column)
    if table is None or table.num_rows == 0:
        return None
    check_cancel()
    report(0.5, f"cleaning {path.name}")
    try:
        columns = _clean(table, schema, id_column, found)
    except _NotHere:
        return None
    del table
    hashes = row_hashing.combine([c.hashes for c in sorted(columns, key=lambda c: c.name)], found.rows_read)
    keep, kept_hashes = _first_of_each_row(hashes, columns)
    found.duplicates = int((~keep).sum())
    target = next(c for c in columns if c.name == schema.target)
    labelled_rows = int(np.count_nonzero(~target.missing & keep))
    rows = int(keep.sum())
    warnings, summary = found.finish(delimiter_warning(path.name, delimiter), rows, labelled_rows)
    digest = _content_hash(columns, kept_hashes)
    check_cancel()
    report(0.8, f"writing {rows:,} rows")
    _write(columns, keep, destination)
    report(1.0, f"{path.name} read")
    return IngestedFile(path.name, rows, labelled_rows, warnings, summary, digest)


def _schema_supported(schema: Schema) -> bool:
    return (all(c.kind in FEATURE_KINDS for c in schema.columns) and schema.target_kind in TARGET_KINDS
            and not (schema.task == "classification" and schema.target_kind == "float"))


# --------------------------------------------------------------------------- reading
def _read(path: Path, header: list[str], delimiter: str, schema: Schema, id_column: str | None) -> pa.Table | None:
    import pyarrow as pa
    import pyarrow.csv as arrow_csv

    text = pa.dictionary(pa.int32(), pa.string())
    kinds = {c.name: c.kind for c in schema.columns}
    types = {name: pa.float64() if kind == "numeric" else text for name, kind in kinds.items()}
    if schema.target in header:
        types[schema.target] = text if schema.target_kind == "string" else pa.float64()
    if id_column is not None and id_column in header and id_column not in types:
        types[id_column] = text
    try:
        return arrow_csv.read_csv(
            str(path),
            read_options=arrow_csv.ReadOptions(column_names=header, skip_rows=1, use_threads=True,
                                               block_size=BLOCK_BYTES),
            parse_options=arrow_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=arrow_csv.ConvertOptions(
                column_types=types, include_columns=[c for c in header if c in types],
                null_values=NUMERIC_MISSING_SPELLINGS, strings_can_be_null=False, quoted_strings_can_be_null=False,
                true_values=[], false_values=[]))
    except (pa.ArrowInvalid, UnicodeDecodeError):  # a ragged row, an unclosed quote, text in a number column…
        return None


# Arrays are built from and read through their buffers: pyarrow's pa.array() and to_numpy() import
# pandas (0.3 s) to check whether they were given pandas objects.
def _fixed_width(array: pa.Array, dtype: type) -> np.ndarray:
    """A fixed-width array's values (whatever they are under a null), read-only, without a copy."""
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array) + array.offset)[array.offset:]


def _nulls(array: pa.Array) -> np.ndarray:
    if array.null_count == 0:
        return np.zeros(len(array), dtype=bool)
    bits = np.unpackbits(np.frombuffer(array.buffers()[0], dtype=np.uint8), count=len(array) + array.offset,
                         bitorder="little")
    return bits[array.offset:] == 0


def _float_cells(cells: pa.ChunkedArray) -> np.ndarray:
    """A float64 column as one new array, NaN where a cell is missing."""
    parts = []
    for chunk in cells.chunks:
        values = _fixed_width(chunk, np.float64).copy()
        values[_nulls(chunk)] = np.nan
        parts.append(values)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)


def _bitmap(flags: np.ndarray) -> pa.Buffer:
    import pyarrow as pa

    return pa.py_buffer(np.packbits(flags, bitorder="little"))


def _numbers_array(arrow_type: pa.DataType, values: np.ndarray, missing: np.ndarray) -> pa.Array:
    import pyarrow as pa

    nulls = int(missing.sum())
    return pa.Array.from_buffers(arrow_type, len(values), [_bitmap(~missing) if nulls else None,
                                                           pa.py_buffer(np.ascontiguousarray(values))], null_count=nulls)


# --------------------------------------------------------------------------- cleaning
def _clean(table: pa.Table, schema: Schema, id_column: str | None, found: CleaningReport) -> list[_Column]:
    """The cleaned columns in the order clean() gives them: features, the ID column, the target."""
    rows = table.num_rows
    columns = []
    for column in schema.columns:
        name, tally = column.name, found.columns[column.name]
        if column.kind == "numeric":
            columns.append(_numeric_feature(name, table.column(name), tally))
        else:
            known = set(column.categories or ())
            check_unseen = bool(known) and (column.n_unique or 0) <= MAX_STORED_CATEGORIES
            columns.append(_text_column(name, table.column(name), tally, known if check_unseen else None, tally.unseen))
    if id_column is not None and id_column in table.column_names and id_column not in schema.features:
        columns.append(_text_column(id_column, table.column(id_column)))
    columns.append(_target(table, schema, found, rows))
    found.rows_read = rows
    return columns


def _numeric_feature(name: str, cells: pa.ChunkedArray, tally: ColumnTally) -> _Column:
    values = _float_cells(cells)
    infinite = np.isinf(values)
    if infinite.any():
        tally.infinite.add_found(int(infinite.sum()), int(np.flatnonzero(infinite)[0]))
        values[infinite] = np.nan
    missing = np.isnan(values)
    tally.missing += int(missing.sum())
    return _float_column(name, values, missing, "float64", "float64")


def _float_column(name: str, values: np.ndarray, missing: np.ndarray, dtype: str, numpy_type: str) -> _Column:
    import pyarrow as pa

    hashes = (row_hashing.float_hashes(values) if dtype == "float64"
              else row_hashing.nullable_hashes(values, missing))
    return _Column(name, lambda keep: _numbers_array(pa.float64(), _kept(values, keep), _kept(missing, keep)),
                   missing, dtype, "float64", numpy_type, hashes,
                   lambda rows: [None if m else v for v, m in zip(values[rows].tolist(), missing[rows].tolist(), strict=True)])


def _text_column(name: str, cells: pa.ChunkedArray, tally: ColumnTally | None = None, known: set | None = None,
                 unseen: Occurrences | None = None) -> _Column:
    """A text column cleaned as datasets._as_text does, once per distinct value: stripped (pandas'
    arrow-backed strings trim what str.strip() does: tests/test_arrow_ingest.py checks every
    character), a missing token in any case is missing. tally counts a feature's missing cells;
    unseen, the values not in known (where known is given)."""
    as_read, codes = _dictionary_array(cells)
    distinct = as_read.to_pylist()
    stripped = [value.strip() for value in distinct]
    cleaned: list[str | None] = [None if value.lower() in MISSING_TOKENS else value for value in stripped]
    missing_value = np.array([value is None for value in cleaned], dtype=bool)
    missing = missing_value[codes]
    if tally is not None:
        tally.missing += int(missing.sum())
    if known is not None and unseen is not None:
        unseen_rows = np.array([v is not None and v not in known for v in cleaned], dtype=bool)[codes]
        if unseen_rows.any():
            first = int(np.flatnonzero(unseen_rows)[0])
            unseen.add_found(int(unseen_rows.sum()), first, repr(cleaned[codes[first]]))
    unchanged = all(value is read for value, read in zip(cleaned, distinct, strict=True))  # strip() gives itself
    stored = _large_strings(as_read) if unchanged else _distinct_array(cleaned)
    return _Column(name, lambda keep: _taken(stored, _kept(codes, keep)), missing, "object", "object", "string",
                   row_hashing.text_hashes(cleaned, codes), lambda rows: [cleaned[code] for code in codes[rows].tolist()])


def _large_strings(values: pa.Array) -> pa.Array:
    import pyarrow as pa

    return values.cast(pa.large_string())


def _taken(values: pa.Array, codes: np.ndarray) -> pa.Array:
    """values[code] for each code (arrow's take: 10 ms a million rows)."""
    import pyarrow as pa

    return values.take(pa.Array.from_buffers(pa.int64(), len(codes), [None, pa.py_buffer(np.ascontiguousarray(codes))]))


def _distinct_array(values: list[str | None]) -> pa.Array:
    """A large_string array of values (None: missing), built from its buffers."""
    import pyarrow as pa

    encoded = [b"" if value is None else value.encode("utf-8") for value in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(value) for value in encoded], out=offsets[1:])
    missing = np.array([value is None for value in values], dtype=bool)
    nulls = int(missing.sum())
    distinct = pa.Array.from_buffers(pa.large_string(), len(values),
                                     [_bitmap(~missing) if nulls else None, pa.py_buffer(offsets),
                                      pa.py_buffer(b"".join(encoded))], null_count=nulls)
    return distinct


def _kept(values: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    return values if keep is None else values[keep]


def _dictionary(cells: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """A dictionary-encoded column as (its distinct values, each row's index into them)."""
    distinct, codes = _dictionary_array(cells)
    return distinct.to_pylist(), codes


def _dictionary_array(cells: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """A dictionary-encoded column as (its distinct values as read, each row's index into them)."""
    cells = cells.unify_dictionaries()
    codes = np.concatenate([_fixed_width(chunk.indices, np.int32) for chunk in cells.chunks])
    return cells.chunk(0).dictionary, codes.astype(np.int64)


def _target(table: pa.Table, schema: Schema, found: CleaningReport, rows: int) -> _Column:
    name, kind = schema.target, schema.target_kind
    found.target_present = name in table.column_names
    if kind == "string":
        return _text_target(table, schema, found, rows)
    if not found.target_present:
        return _missing_number_target(name, kind, rows)
    raw = _float_cells(table.column(name))
    found.first_target_cell = cell_repr(float(raw[0]))
    if np.isnan(raw).all():
        return _missing_number_target(name, kind, rows)
    found.target_raw_values = True
    numbers = raw.copy()
    bad = np.isinf(numbers)
    numbers[bad] = np.nan
    if kind == "integer":
        filled = np.nan_to_num(numbers, nan=0.0)
        fractional = ~np.isnan(numbers) & ~np.isclose(filled, np.round(filled))
        bad |= fractional
        numbers[fractional] = np.nan
        if (np.abs(np.nan_to_num(numbers)) >= LARGEST_INTEGER).any():
            raise _NotHere()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        found.target_unreadable.add_found(int(bad.sum()), first, cell_repr(float(raw[first])))
    missing = np.isnan(numbers)
    found.target_read_values |= bool((~missing).any())
    if kind == "float":
        return _float_column(name, numbers, missing, "Float64", "Float64")
    return _integer_target(name, numbers, missing, schema, found)


def _integer_target(name: str, numbers: np.ndarray, missing: np.ndarray, schema: Schema,
                    found: CleaningReport) -> _Column:
    import pyarrow as pa

    integers = np.round(np.nan_to_num(numbers)).astype(np.int64)
    column = _Column(name, lambda keep: _numbers_array(pa.int64(), _kept(integers, keep), _kept(missing, keep)),
                     missing, "Int64", "int64", "Int64",
                     row_hashing.nullable_hashes(integers, missing),
                     lambda rows: [None if m else v for v, m in zip(integers[rows].tolist(), missing[rows].tolist(), strict=True)])
    known = _known_classes(schema, lambda k: type(k) is int)
    if known is not None:
        unseen = ~missing & ~np.isin(integers, np.array(known, dtype=np.int64))
        if unseen.any():
            first = int(np.flatnonzero(unseen)[0])
            found.unseen_classes.add_found(int(unseen.sum()), first, repr(int(integers[first])))
    return column


def _text_target(table: pa.Table, schema: Schema, found: CleaningReport, rows: int) -> _Column:
    name = schema.target
    if not found.target_present:
        return _missing_text_target(name, rows)
    cells = table.column(name)
    distinct, codes = _dictionary(cells)
    found.first_target_cell = cell_repr(distinct[codes[0]])
    known = _known_classes(schema, lambda k: isinstance(k, str))
    column = _text_column(name, cells, known=set(known) if known is not None else None, unseen=found.unseen_classes)
    if column.missing.all():
        return _missing_text_target(name, rows)
    found.target_raw_values = found.target_read_values = True
    return column


def _known_classes(schema: Schema, comparable: Callable[[Any], bool]) -> list | None:
    """A classifier's known classes (None: nothing to check); values of another type than the target's
    are left to the general reader, which compares them as pandas does."""
    known = schema.classes
    if schema.task != "classification" or not known:
        return None
    if not all(comparable(k) for k in known):
        raise _NotHere()
    return list(known)


def _missing_number_target(name: str, kind: str, rows: int) -> _Column:
    import pyarrow as pa

    values, missing = np.zeros(rows, dtype=np.float64), np.ones(rows, dtype=bool)
    if kind == "float":
        return _float_column(name, values, missing, "Float64", "Float64")
    integers = values.astype(np.int64)
    return _Column(name, lambda keep: pa.nulls(rows if keep is None else int(keep.sum()), pa.int64()),
                   missing, "Int64", "int64", "Int64",
                   row_hashing.nullable_hashes(integers, missing), lambda positions: [None] * len(positions))


def _missing_text_target(name: str, rows: int) -> _Column:
    import pyarrow as pa

    return _Column(name, lambda keep: pa.nulls(rows if keep is None else int(keep.sum()), pa.large_string()),
                   np.ones(rows, dtype=bool), "object", "object", "string",
                   row_hashing.text_hashes([None], np.zeros(rows, dtype=np.int64)),
                   lambda positions: [None] * len(positions))


# --------------------------------------------------------------------------- duplicates, hash, Parquet
def _first_of_each_row(hashes: np.ndarray, columns: list[_Column]) -> tuple[np.ndarray, np.ndarray]:
    """(which rows to keep: all but exact repeats of an earlier row, the kept rows' hashes sorted).
    Rows sharing a hash are compared cell by cell (as datasets.drop_duplicate_rows does)."""
    keep = np.ones(len(hashes), dtype=bool)
    ordered = np.sort(hashes)
    same_as_next = ordered[1:] == ordered[:-1]
    if not same_as_next.any():
        return keep, ordered
    shared_hashes = np.unique(ordered[1:][same_as_next])
    positions = np.flatnonzero(np.isin(hashes, shared_hashes))
    seen: set[tuple] = set()
    for position, row in zip(positions.tolist(), zip(*(c.values_at(positions) for c in columns), strict=True),
                             strict=True):
        if row in seen:
            keep[position] = False
        else:
            seen.add(row)
    return keep, np.sort(hashes[keep])


def _content_hash(columns: list[_Column], sorted_hashes: np.ndarray) -> str:
    """datasets.content_hash of the cleaned frame: its dtypes by column name, then its sorted row hashes."""
    digest = hashlib.sha256()
    digest.update(json.dumps([[c.name, c.dtype] for c in sorted(columns, key=lambda c: c.name)]).encode())
    digest.update(sorted_hashes.tobytes())
    return digest.hexdigest()


def _write(columns: list[_Column], keep: np.ndarray, destination: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [c.build(None if keep.all() else keep) for c in columns]
    table = pa.Table.from_arrays(arrays, names=[c.name for c in columns],
                                 metadata={b"pandas": json.dumps(_pandas_metadata(columns)).encode()})
    dictionary = [c.name for c, array in zip(columns, arrays, strict=True) if not pa.types.is_floating(array.type)]
    pq.write_table(table, destination, use_dictionary=dictionary)
    with open(destination, "rb+") as handle:
        os.fsync(handle.fileno())


def _pandas_metadata(columns: list[_Column]) -> dict:
    """The pandas metadata pyarrow writes for the stored frame (pandas reads the columns back with
    these dtypes: Int64, Float64, string)."""
    import pyarrow as pa

    return {"index_columns": [], "column_indexes": [],
            "columns": [{"name": c.name, "field_name": c.name, "pandas_type": c.pandas_type,
                         "numpy_type": c.numpy_type, "metadata": None} for c in columns],
            "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__},
            "pandas_version": _pandas_version()}


def _pandas_version() -> str:
    """The installed pandas' version, without importing pandas (its distribution's folder name)."""
    if "pandas" in sys.modules:
        return str(sys.modules["pandas"].__version__)
    from importlib.util import find_spec

    spec = find_spec("pandas")
    if spec is not None and spec.origin is not None:
        for info in Path(spec.origin).parents[1].glob("pandas-*.dist-info"):
            return info.name[len("pandas-"):-len(".dist-info")]
    from importlib import metadata

    return metadata.version("pandas")
