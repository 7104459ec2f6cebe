"""Reading, schema inference, validation, cleaning and content hashing of tabular data.

Every refusal is a ValidationError whose one-line message names the file and, where
it applies, the column, a row (1-based data row, the header excluded) and what is wrong.
"""

import codecs
import csv
import gzip
import hashlib
import io
import json
import os
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from app.core.domain.data_files import PARQUET_SUFFIXES as PARQUET_SUFFIXES
from app.core.domain.entities import Column, Schema
from app.core.domain.errors import ValidationError
from app.core.ml.cleaning_report import MAX_STORED_CATEGORIES as MAX_STORED_CATEGORIES
from app.core.ml.cleaning_report import CleaningReport, ColumnTally
from app.core.ml.cleaning_report import Occurrences as Occurrences
from app.core.ml.file_checks import DEFAULT_MAX_FILE_MB as DEFAULT_MAX_FILE_MB
from app.core.ml.file_checks import DEFAULT_MAX_IN_MEMORY_MB as DEFAULT_MAX_IN_MEMORY_MB
from app.core.ml.file_checks import HEAD_SAMPLE_BYTES as HEAD_SAMPLE_BYTES
from app.core.ml.file_checks import MISSING_TOKENS as MISSING_TOKENS
from app.core.ml.file_checks import NUMERIC_MISSING_SPELLINGS as NUMERIC_MISSING_SPELLINGS
from app.core.ml.file_checks import TYPED_READ_ATTEMPTS as TYPED_READ_ATTEMPTS
from app.core.ml.file_checks import cell_repr as cell_repr
from app.core.ml.file_checks import check_header as check_header
from app.core.ml.file_checks import check_readable_file as check_readable_file
from app.core.ml.file_checks import csv_layout as csv_layout
from app.core.ml.file_checks import failed_column as failed_column
from app.core.ml.file_checks import file_kind as file_kind
from app.core.ml.file_checks import limit_setting as limit_setting
from app.core.ml.file_checks import looks_binary as looks_binary
from app.core.ml.file_checks import max_file_bytes as max_file_bytes
from app.core.ml.file_checks import max_in_memory_bytes as max_in_memory_bytes
from app.core.ml.file_checks import megabytes_setting
from app.core.ml.file_checks import sniff_delimiter as sniff_delimiter

if TYPE_CHECKING:
    import pyarrow
    import pyarrow.parquet

TRUE_TOKENS = {"true", "yes", "t", "y"}
FALSE_TOKENS = {"false", "no", "f", "n"}
# How a boolean column reads a (lower-cased, stripped) cell; anything else is unreadable.
BOOLEAN_VALUES = {**{t: 1.0 for t in TRUE_TOKENS | {"1", "1.0"}}, **{t: 0.0 for t in FALSE_TOKENS | {"0", "0.0"}}}
MIN_TRAINING_ROWS = 20
TYPE_AGREEMENT = 0.95  # share of non-missing cells that must parse for a column to get a kind


DEFAULT_TRAIN_MEMORY_MB = 2048
# A training holds its rows about this many times over at 8 bytes a cell (as read, the train/hold-out
# split, the model's view of them, the pipeline's and the fit's arrays, the reference rows):
# bench/train_memory.py measured 670-890 bytes a row for 10 cells (logreg and hgb, numbers alone or
# with categories, 1M rows unsampled and 2.4M sampled from 10M), 2.1-2.8x the four copies estimated
# before; twelve (960 bytes) keep the 10M-row hgb training inside the budget.
TRAINING_COPIES = 12


def train_memory_bytes() -> int:
    """The memory a training's rows may take; over it, a training samples its rows. $KEEL_TRAIN_MEMORY_MB."""
    return megabytes_setting("KEEL_TRAIN_MEMORY_MB", DEFAULT_TRAIN_MEMORY_MB)


def training_bytes_per_row(schema: Schema) -> int:
    """The estimated memory one training row takes (the features and the target, every copy)."""
    return 8 * (len(schema.columns) + 1) * TRAINING_COPIES


# --------------------------------------------------------------------------- reading
@dataclass
class RawTable:
    frame: pd.DataFrame  # text columns as str (empty cells as ""), Parquet columns as stored
    source: str
    warnings: list[str] = field(default_factory=list)
    file_format: str = "csv"


def read_table(path: str | os.PathLike, max_bytes: int | None = None,
               numeric_columns: Iterable[str] = ()) -> RawTable:
    """A CSV or Parquet file -> RawTable. CSV cells are text, except in numeric_columns (the
    schema's numeric ones, when the caller knows them): where every cell of such a column reads
    as a number or a missing token, it arrives as float64, parsed by pyarrow's multi-threaded
    reader, and cleaning has no text to handle."""
    path = Path(path)
    limit = max_bytes if max_bytes is not None else max_in_memory_bytes()
    check_readable_file(path, limit)  # first: /dev/zero is "a device", not "an unknown format"
    kind = file_kind(path)
    if kind == "parquet":
        return _read_parquet(path, limit)
    data = _read_gzip(path, limit) if kind == "csv.gz" else None
    fast = _read_csv_with_arrow(path if data is None else data, path.name, set(numeric_columns))
    if fast is not None:
        return fast
    return read_csv_bytes(path.read_bytes() if data is None else data, path.name)


# --------------------------------------------------------------------------- the fast CSV reader
def _read_csv_with_arrow(source: Path | bytes, name: str, numeric_columns: set[str]) -> RawTable | None:
    """The common case read at the speed of pyarrow: UTF-8 text whose rows all have the header's
    width. None for anything else (other encodings, ragged rows, unclosed quotes, leading blank
    lines…): read_csv_bytes then reads the file and words the warning or the error exactly."""
    head = _head(source)
    layout = csv_layout(head)
    if layout is None:
        return None
    header, delimiter = layout
    check_header(header, name)
    if delimiter == ";":  # decimal commas: numbers are read from text there
        numeric_columns = set()
    table = _arrow_read(source, header, delimiter, {c for c in header if c in numeric_columns})
    if table is None:
        return None
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    if len(frame) == 0:
        raise ValidationError(f"{name}: has a header but no rows")
    warnings = []
    if delimiter != ",":
        names = {";": "';'", "\t": "tab", "|": "'|'"}
        warnings.append(f"{name}: delimiter detected as {names.get(delimiter, repr(delimiter))}")
    if delimiter == ";":
        converted = read_decimal_commas(frame)
        if converted:
            warnings.append(f"{name}: decimal commas read as decimal points in column(s) {', '.join(converted)}")
    return RawTable(frame=frame, source=name, warnings=warnings, file_format="csv")


def _head(source: Path | bytes) -> bytes:
    if isinstance(source, bytes):
        return source[:HEAD_SAMPLE_BYTES]
    with open(source, "rb") as handle:
        return handle.read(HEAD_SAMPLE_BYTES)


def _arrow_read(source: Path | bytes, header: list[str], delimiter: str, numeric: set[str]) -> "pyarrow.Table":
    import pyarrow as pa
    import pyarrow.csv as arrow_csv

    read_options = arrow_csv.ReadOptions(column_names=header, skip_rows=1, use_threads=True)
    parse_options = arrow_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    for _attempt in range(TYPED_READ_ATTEMPTS + 1):
        types = {c: pa.float64() if c in numeric else pa.string() for c in header}
        convert_options = arrow_csv.ConvertOptions(
            column_types=types, null_values=NUMERIC_MISSING_SPELLINGS, strings_can_be_null=False,
            quoted_strings_can_be_null=False, true_values=[], false_values=[])
        try:
            return arrow_csv.read_csv(pa.BufferReader(source) if isinstance(source, bytes) else str(source),
                                      read_options=read_options, parse_options=parse_options,
                                      convert_options=convert_options)
        except pa.ArrowInvalid as exc:
            failed = failed_column(str(exc), header)
            if failed is None or failed not in numeric:
                return None  # a ragged row, an unclosed quote, bytes that are not UTF-8
            numeric = set() if _attempt + 1 >= TYPED_READ_ATTEMPTS else numeric - {failed}
    return None


def _read_gzip(path: Path, limit: int) -> bytes:
    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:  # a damaged stream raises zlib.error, not OSError
        raise ValidationError(f"{path.name}: not a valid gzip file ({exc})") from None
    if len(data) > limit:
        raise ValidationError(f"{path.name}: uncompressed data is over the {limit / 1e6:.1f} MB limit")
    if not data:
        raise ValidationError(f"{path.name}: the file is empty once decompressed")
    return data


def _read_parquet(path: Path, limit: int) -> RawTable:
    try:
        import pyarrow.parquet as pq

        metadata = pq.read_metadata(path)
        names = metadata.schema.to_arrow_schema().names
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ValidationError(f"{path.name}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    check_header(names, path.name)  # before read_table, whose error for duplicates names no column
    check_parquet_decoded_size(metadata, path.name, limit)
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise ValidationError(f"{path.name}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    frame = table.to_pandas()
    if len(frame) == 0:
        raise ValidationError(f"{path.name}: has a header but no rows")
    return RawTable(frame=frame, source=path.name, file_format="parquet")


STRING_CELL_BYTES = 16  # an offset and a pointer per text cell, before its characters


def parquet_decoded_bytes(metadata: "pyarrow.parquet.FileMetaData") -> tuple[int, int]:
    """(uncompressed bytes, estimated bytes once decoded) of a Parquet file, from its footer alone.

    Dictionary and run-length encoding make the uncompressed size no bound on memory (30 M
    equal rows fit in 1 MB), so the estimate also counts every row at its column's width."""
    uncompressed = sum(metadata.row_group(g).column(c).total_uncompressed_size
                       for g in range(metadata.num_row_groups) for c in range(metadata.num_columns))
    schema = metadata.schema.to_arrow_schema()
    per_row = 0
    for arrow_field in schema:
        try:
            per_row += max(arrow_field.type.bit_width // 8, 1)
        except ValueError:  # variable width: text, binary, nested
            per_row += STRING_CELL_BYTES
    return uncompressed, max(uncompressed, metadata.num_rows * per_row)


def check_parquet_decoded_size(metadata: "pyarrow.parquet.FileMetaData", source: str, limit: int) -> None:
    uncompressed, decoded = parquet_decoded_bytes(metadata)
    if uncompressed > limit:
        raise ValidationError(f"{source}: uncompressed data is {uncompressed / 1e6:.1f} MB, over the "
                              f"{limit / 1e6:.1f} MB limit (set {limit_setting(limit)})")
    if decoded > limit:
        raise ValidationError(f"{source}: {metadata.num_rows:,} rows x {metadata.num_columns} columns decode to "
                              f"about {decoded / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB limit (set {limit_setting(limit)})")


def _decode(data: bytes, source: str) -> tuple[str, list[str]]:
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):  # Excel's "Unicode text" export
        try:
            return data.decode("utf-16"), [f"{source}: decoded as UTF-16"]
        except UnicodeDecodeError:
            raise ValidationError(f"{source}: starts like UTF-16 text but does not decode as UTF-16") from None
    sample = data[:65536]
    if b"\x00" in sample:
        raise ValidationError(f"{source}: not a text file (binary content); give a CSV or Parquet file")
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
        encoding = "cp1252 (Windows-1252)"
    except UnicodeDecodeError:
        text = data.decode("latin-1")
        encoding = "Latin-1"
    return text, [f"{source}: not UTF-8; decoded as {encoding}"]


def read_csv_bytes(data: bytes, source: str) -> RawTable:
    """A CSV file's bytes (a file, or a request body) -> RawTable, with the checks of read_table."""
    text, warnings = _decode(data, source)
    if not text.strip():
        raise ValidationError(f"{source}: the file holds no data (only blank lines)")
    if looks_binary(text):
        raise ValidationError(f"{source}: not a text file (binary content); give a CSV or Parquet file")
    delimiter = sniff_delimiter(text)
    if delimiter != ",":
        names = {";": "';'", "\t": "tab", "|": "'|'"}
        warnings.append(f"{source}: delimiter detected as {names.get(delimiter, repr(delimiter))}")
    try:
        grid = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=True,
            engine="c",
        )
    except pd.errors.ParserError as exc:
        raise ValidationError(f"{source}: malformed CSV: {describe_parser_error(exc)}") from None
    except pd.errors.EmptyDataError:
        raise ValidationError(f"{source}: the file holds no data") from None
    header = [str(h).strip() if isinstance(h, str) else "" for h in grid.iloc[0].tolist()]
    check_header(header, source)
    frame = grid.iloc[1:].reset_index(drop=True)
    frame.columns = header
    if len(frame) == 0:
        raise ValidationError(f"{source}: has a header but no rows")
    frame = frame.fillna("")
    # the C parser pads a short row with "" (not NaN), so only a row whose last cell is
    # empty can be one; recount the fields only when such a row exists
    if (frame.iloc[:, -1] == "").any():
        short_rows = _short_rows(text, delimiter, len(header))
        if short_rows:
            warnings.append(
                f"{source}: {len(short_rows)} row(s) have fewer fields than the header "
                f"(first: row {short_rows[0]}); the missing cells are treated as missing"
            )
    if delimiter == ";":  # ';' is the separator exactly where the comma is the decimal mark
        converted = read_decimal_commas(frame)
        if converted:
            warnings.append(f"{source}: decimal commas read as decimal points in column(s) {', '.join(converted)}")
    return RawTable(frame=frame, source=source, warnings=warnings, file_format="csv")


DECIMAL_COMMA = r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+),\d+"  # 3,5  -0,25  1.234,5
WHOLE_NUMBER = r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)"  # 10  1.234 (a thousands dot)


def read_decimal_commas(frame: pd.DataFrame) -> list[str]:
    """Rewrite, in place, the columns of a ';' file written the European way as plain numbers.

    A column qualifies only if some cell has a decimal comma and every other non-missing
    cell is a whole number, so text and ordinary decimals are never touched. Tab and '|'
    files are left alone: there "12,500" may be a thousands separator."""
    survey = DecimalCommaSurvey()
    survey.add(frame, only_with_commas=True)
    converted = survey.columns(list(frame.columns))
    apply_decimal_commas(frame, converted)
    return converted


def apply_decimal_commas(frame: pd.DataFrame, columns: list[str]) -> None:
    """The columns named (decided by read_decimal_commas or a DecimalCommaSurvey) read as plain numbers."""
    for name in columns:
        if name in frame.columns:
            text = frame[name].str.strip()
            frame[name] = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)


@dataclass
class DecimalCommaSurvey:
    """Which columns of a ';' file read in parts qualify for read_decimal_commas, decided on all the
    parts together: some cell of the column, in any part, has a decimal comma, and every non-missing
    cell of every part is a decimal-comma or whole number."""

    with_comma: set = field(default_factory=set)
    not_numbers: set = field(default_factory=set)

    def add(self, frame: pd.DataFrame, only_with_commas: bool = False) -> None:
        """One part; only_with_commas: look only at columns with a comma in this part (the part is the
        whole file)."""
        for name in frame.columns:
            if name in self.not_numbers or not pd.api.types.is_string_dtype(frame[name]):
                continue  # read as numbers already
            text = frame[name].str.strip()
            if only_with_commas and not text.str.contains(",", regex=False).any():
                continue
            present = text[~text.str.lower().isin(MISSING_TOKENS)]
            with_comma = present.str.fullmatch(DECIMAL_COMMA)
            if not (with_comma | present.str.fullmatch(WHOLE_NUMBER)).all():
                self.not_numbers.add(name)
            elif with_comma.any():
                self.with_comma.add(name)

    def columns(self, header: list) -> list[str]:
        return [str(name) for name in header if name in self.with_comma and name not in self.not_numbers]


def _short_rows(text: str, delimiter: str, width: int) -> list[int]:
    """1-based data rows with fewer fields than the header (blank lines skipped, as pandas does)."""
    # newline="" lets the csv module see \r, \n and \r\n as the line ends they are (as pandas does)
    records = (record for record in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if record)
    next(records, None)
    return [row for row, record in enumerate(records, start=1) if len(record) < width]


def describe_parser_error(exc: Exception) -> str:
    message = str(exc).strip().splitlines()[-1]
    message = message.replace("Error tokenizing data. C error: ", "")
    # "EOF inside string starting at row N" counts file lines from 0
    message = re.sub(r"starting at row (\d+)", lambda m: f"starting on line {int(m.group(1)) + 1}", message)
    # pandas counts lines from 1 including the header; say so plainly
    return message.replace("in line", "on line").rstrip(".") + " (a ragged row or an unclosed quote)"


# --------------------------------------------------------------------------- cell coercion
def _as_text(series: pd.Series) -> pd.Series:
    """Strip whitespace; missing tokens become NA. Works for text and typed columns."""
    text = series.astype("string")
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        text = text.str.strip()
    missing = text.isna() | text.str.lower().isin(MISSING_TOKENS)
    return text.mask(missing)


def _is_missing_raw(series: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series.isna()  # a number's text is never a missing token
    return _as_text(series).isna()


def _to_numeric(series: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """-> (float values with NaN, mask of unreadable cells, mask of inf cells)."""
    if pd.api.types.is_bool_dtype(series):
        series = series.astype(float)
    if pd.api.types.is_numeric_dtype(series):
        values = series.astype(float)
        unreadable = pd.Series(False, index=series.index)
    else:
        text = _as_text(series)
        values = pd.to_numeric(text.str.replace(r"^\+", "", regex=True) if text.notna().any() else text, errors="coerce").astype(float)
        unreadable = text.notna() & values.isna()
    infinite = np.isinf(values)
    if infinite.any():
        values = values.where(~infinite, np.nan)
    return values, unreadable, pd.Series(infinite, index=series.index)


def _to_boolean(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float), pd.Series(False, index=series.index)
    text = _as_text(series).str.lower()
    values = text.astype(object).map(BOOLEAN_VALUES)
    return values.astype(float), text.notna() & values.isna()


def parse_datetimes(series: pd.Series) -> pd.Series:
    """A datetime column's cells read as cleaning reads them (missing where unreadable)."""
    return _to_datetime(series)[0]


def _to_datetime(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_datetime64_any_dtype(series):
        values = pd.to_datetime(series, utc=True)
        return values, pd.Series(False, index=series.index)
    text = _as_text(series)
    values = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    return values, text.notna() & values.isna()


def _first_row(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0]) + 1


# --------------------------------------------------------------------------- schema
def _infer_kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    text = _as_text(series).dropna()
    if text.empty:
        return "numeric"
    lowered = set(text.str.lower().unique())
    if lowered <= (TRUE_TOKENS | FALSE_TOKENS) and lowered & {"true", "false", "yes", "no"}:
        return "boolean"
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.notna().mean() >= TYPE_AGREEMENT:
        return "numeric"
    looks_like_date = text.str.match(r"^\d{4}-\d{2}-\d{2}").mean() >= TYPE_AGREEMENT
    if looks_like_date and pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601").notna().mean() >= TYPE_AGREEMENT:
        return "datetime"
    return "categorical"


def _describe_column(name: str, series: pd.Series, kind: str) -> Column:
    column = Column(name, kind, missing_rate=round(float(_is_missing_raw(series).mean()), 4))
    if kind == "numeric":
        numbers, _, _ = _to_numeric(series)
        if numbers.notna().any():
            return replace(column, minimum=float(numbers.min()), maximum=float(numbers.max()),
                           mean=float(numbers.mean()), std=float(numbers.std(ddof=0)))
    elif kind == "categorical":
        counts = _as_text(series).dropna().value_counts()
        return replace(column, n_unique=int(len(counts)),
                       categories=tuple(str(c) for c in counts.index[:MAX_STORED_CATEGORIES]))
    elif kind == "datetime":
        stamps, _ = _to_datetime(series)
        if stamps.notna().any():
            return replace(column, minimum=stamps.min().isoformat(), maximum=stamps.max().isoformat())
    return column


def guess_task(series: pd.Series) -> str:
    kind = _infer_kind(series)
    if kind != "numeric":
        return "classification"
    values, _, _ = _to_numeric(series)
    values = values.dropna()
    integral = bool(np.all(np.isclose(values, np.round(values))))
    return "classification" if integral and values.nunique() <= 20 else "regression"


def infer_schema(raw: RawTable, target: str, task: str | None = None, id_column: str | None = None) -> Schema:
    """The project's schema, inferred from its first file. The ID column is never a feature."""
    frame = raw.frame
    if target not in frame.columns:
        raise ValidationError(
            f"{raw.source}: no target column {target!r} (columns: {', '.join(map(str, frame.columns))})"
        )
    if id_column is not None and id_column == target:
        raise ValidationError(f"the ID column {id_column!r} cannot be the target")
    features = [str(c) for c in frame.columns if c != target and c != id_column]
    if not features:
        raise ValidationError(f"{raw.source}: no feature columns besides the target {target!r}")
    task = task or guess_task(frame[target])
    if task not in ("classification", "regression"):
        raise ValidationError(f"unknown task {task!r}: use classification or regression")
    columns = tuple(_describe_column(name, frame[name], _infer_kind(frame[name])) for name in features)
    return Schema(target=target, task=task, target_kind=_infer_target_kind(frame[target], task), columns=columns)


ID_NAME = re.compile(r"(^|[_\W])(id|key|uuid|guid|ref|reference|number|no)$", re.IGNORECASE)


def id_column_candidates(frame: pd.DataFrame, target: str | None = None) -> list[str]:
    """Columns that look like an ID: a value in every row, no value twice, and an ID-like name
    (or text that is not a number). A suggestion for the user to accept, never applied by itself."""
    found = []
    for name in frame.columns:
        if name == target or len(frame) < 2:
            continue
        values = _as_text(frame[name])
        if values.isna().any() or values.nunique() != len(values):
            continue
        numeric = _infer_kind(frame[name]) == "numeric"
        if ID_NAME.search(str(name)) or (not numeric and _infer_kind(frame[name]) == "categorical"):
            found.append(str(name))
    return sorted(found, key=lambda n: not ID_NAME.search(n))


def _infer_target_kind(series: pd.Series, task: str) -> str:
    if task == "regression":
        return "float"
    if _infer_kind(series) == "numeric":
        values, _, _ = _to_numeric(series)
        values = values.dropna()
        if len(values) and np.all(np.isclose(values, np.round(values))):
            return "integer"
    return "string"


def column_kinds(schema: Schema) -> dict[str, str]:
    return schema.column_kinds()


# --------------------------------------------------------------------------- cleaning
@dataclass
class CleanBatch:
    frame: pd.DataFrame  # features (typed) + the target column (may be all missing)
    source: str
    labelled: bool
    rows: int
    labelled_rows: int
    warnings: list[str]
    report: dict
    row_hashes: np.ndarray | None = None  # each row's hash, as content_hash computes them (None: not yet)


def clean(raw: RawTable, schema: Schema, purpose: str = "ingest", strict: bool = False,
          id_column: str | None = None) -> CleanBatch:
    """Validate a table against the schema and clean it.

    purpose: "create" (the project's first file), "ingest" (a later batch) or
    "predict" (a file to score: the target is ignored if present).
    strict: a feature cell that cannot be read as its column's kind is a ValidationError
    naming the column, row and value, instead of a missing value with a warning (the
    scoring server uses this: a caller who sends a wrong type must hear about it).
    id_column: the project's ID column, kept as text when the file has it (never a feature).
    """
    cleaner = Cleaner(raw.source, schema, purpose, strict, id_column)
    cleaner.check_columns(raw.frame.columns)
    result = cleaner.clean_chunk(raw.frame)
    row_hashes = None
    if purpose != "predict":  # scoring answers every input row, duplicates included
        before = len(result)
        result, row_hashes = drop_duplicate_rows(result)
        cleaner.duplicates += before - len(result)
    labelled_rows = int(result[schema.target].notna().sum())
    warnings, report = cleaner.finish(raw.warnings, len(result), labelled_rows)
    return CleanBatch(result, raw.source, labelled_rows > 0, len(result), labelled_rows, warnings, report, row_hashes)


class Cleaner(CleaningReport):
    """clean() for a file read whole or in chunks: each chunk is cleaned as it comes (rows numbered
    from row_offset), and finish() words the warnings and the report for the whole file, as clean()
    of the whole file would. Duplicates are the caller's (it counts them in .duplicates)."""

    def clean_chunk(self, frame: pd.DataFrame, row_offset: int = 0) -> pd.DataFrame:
        """The chunk's rows cleaned (duplicates kept), features, ID and target."""
        cleaned = {}
        for column in self.schema.columns:
            cleaned[column.name] = self._clean_feature(frame[column.name], column, row_offset)
        result = pd.DataFrame(cleaned, index=frame.index, copy=False)  # the columns as they are: no 2-D block copy
        if self.id_column is not None and self.id_column in frame.columns:
            result[self.id_column] = id_text(frame[self.id_column])
        result[self.schema.target] = self._clean_target_chunk(frame, result.index, row_offset)
        self.rows_read += len(frame)
        return result

    def _clean_feature(self, series: pd.Series, column: Column, row_offset: int) -> pd.Series:
        name, kind, tally = column.name, column.kind, self.columns[column.name]
        values = _clean_column(series, kind, self.source, name, tally, row_offset, self.strict)
        missing = values.isna()
        tally.missing += int(missing.sum())
        if kind == "categorical" and self.purpose != "create":
            known = set(column.categories or ())
            if (column.n_unique or 0) <= MAX_STORED_CATEGORIES and known:
                tally.unseen.add((~missing & ~values.isin(known)).to_numpy(), values, row_offset)
        return values

    def _clean_target_chunk(self, frame: pd.DataFrame, index: pd.Index, row_offset: int) -> pd.Series:
        schema, target = self.schema, self.schema.target
        if self.target_present and not self.rows_read and len(frame):
            self.first_target_cell = cell_repr(frame[target].iloc[0])
        if not self.target_present or _is_missing_raw(frame[target]).all():
            return pd.Series([pd.NA] * len(index), index=index, dtype=_target_dtype(schema))
        self.target_raw_values = True
        values, bad = _read_target(frame[target], schema)
        self.target_unreadable.add(bad.to_numpy(), frame[target], row_offset, quote=cell_repr)
        self.target_read_values |= bool(values.notna().any())
        known = schema.classes
        if schema.task == "classification" and known:
            unseen = (values.notna() & ~values.isin(known)).to_numpy()
            if unseen.any():
                self.unseen_classes.add(unseen, values.astype(object), row_offset)
        return values


def _clean_column(series: pd.Series, kind: str, source: str, name: str, tally: ColumnTally,
                  row_offset: int = 0, strict: bool = False) -> pd.Series:
    if kind == "numeric":
        values, unreadable, infinite = _to_numeric(series)
        if strict and unreadable.any():
            raise ValidationError(unreadable_cells_message(source, name, "numbers", series, unreadable))
        tally.unreadable.add(unreadable.to_numpy(), series, row_offset)
        tally.infinite.add(infinite.to_numpy(), None, row_offset)
        return values
    if kind == "boolean":
        values, unreadable = _to_boolean(series)
    elif kind == "datetime":
        values, unreadable = _to_datetime(series)
    else:
        return _categories(series)
    if strict and unreadable.any():
        raise ValidationError(unreadable_cells_message(source, name, kind, series, unreadable))
    tally.unreadable.add(unreadable.to_numpy(), series, row_offset)
    return values


def _categories(series: pd.Series) -> pd.Series:
    """A categorical column: stripped text, None where missing, as objects.

    Each distinct cell is cleaned once and the rows take their cleaned value from it: a column
    of a million rows and a few categories costs a factorisation, not a million strings."""
    codes, distinct = pd.factorize(series, use_na_sentinel=True)
    cleaned = _as_text(pd.Series(distinct, dtype=object if len(distinct) == 0 else None))
    lookup = np.concatenate([cleaned.astype(object).where(cleaned.notna(), None).to_numpy(dtype=object),
                             np.array([None], dtype=object)])
    return pd.Series(lookup[codes], index=series.index, dtype=object, copy=False)  # code -1 takes the last: None


def unreadable_cells_message(source: str, name: str, what: str, series: pd.Series, unreadable: pd.Series) -> str:
    return (f"{source}: column {name!r}: {int(unreadable.sum())} cell(s) not readable as {what} "
            f"(first: row {_first_row(unreadable)}, {series[unreadable].iloc[0]!r})")


def id_text(series: pd.Series) -> pd.Series:
    """IDs as text, stripped; a missing ID is None (Keel assigns one when it scores the row)."""
    text = _as_text(series).astype(object)
    return text.where(text.notna(), None)


def _unseen_classes(values: pd.Series, schema: Schema, source: str) -> list[str]:
    """A label the project has never seen is worth a word: a retrained model will learn a new class."""
    known = schema.classes
    if schema.task != "classification" or not known:
        return []
    present = values.dropna()
    unseen = present[~present.isin(known)].astype(object)
    if unseen.empty:
        return []
    return [f"{source}: target {schema.target!r}: {len(unseen)} row(s) have a class unseen in training "
            f"(first: row {int(unseen.index[0]) + 1}, {unseen.iloc[0]!r}); a retrained model will learn it"]


def clean_labels(series: pd.Series, schema: Schema, source: str) -> tuple[pd.Series, list[str]]:
    """Target values read as the project reads them (missing where unreadable), with the problems found."""
    values, problems = _clean_target(series, schema, source)
    return values, problems + _unseen_classes(values, schema, source)


def target_dtype(schema: Schema) -> str:
    """The pandas dtype of the target column (nullable)."""
    return _target_dtype(schema)


def _target_dtype(schema: Schema) -> str:
    return {"integer": "Int64", "float": "Float64", "string": "object"}[schema.target_kind]


def _clean_target(series: pd.Series, schema: Schema, source: str) -> tuple[pd.Series, list[str]]:
    values, bad = _read_target(series, schema)
    problems = []
    if bad.any():
        problems.append(
            f"{source}: target {schema.target!r}: {int(bad.sum())} value(s) not readable as {schema.target_kind} "
            f"(first: row {_first_row(bad)}, {cell_repr(series[bad].iloc[0])}); those rows are unlabelled"
        )
    return values, problems


def _read_target(series: pd.Series, schema: Schema) -> tuple[pd.Series, pd.Series]:
    """-> (the target values, nullable, as the project reads them; mask of cells not readable)."""
    kind = schema.target_kind
    if kind == "string":
        return _as_text(series).astype(object), pd.Series(False, index=series.index)
    numbers, unreadable, infinite = _to_numeric(series)
    bad = unreadable | infinite
    if kind == "integer":
        fractional = numbers.notna() & ~np.isclose(numbers.fillna(0), np.round(numbers.fillna(0)))
        bad = bad | fractional
        numbers = numbers.where(~fractional, np.nan)
        return numbers.round().astype("Int64"), bad
    return numbers.astype("Float64"), bad


# --------------------------------------------------------------------------- hashing and storage
def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row of the columns in name order (the row's position plays no part):
    pandas' hash_pandas_object of frame[sorted(columns)], without copying the frame to reorder it."""
    from pandas.core.util.hashing import combine_hash_arrays

    columns = sorted(frame.columns)
    if not columns:
        return pd.util.hash_pandas_object(frame, index=False).to_numpy()
    per_column = (pd.util.hash_pandas_object(frame[c], index=False).to_numpy() for c in columns)
    return combine_hash_arrays(per_column, len(columns))


def drop_duplicate_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """frame without exact duplicate rows (the first kept), and the kept rows' hashes.

    Rows are compared by hash, then rows sharing a hash cell by cell: as exact as
    drop_duplicates, without its full-table factorisation, and the hashes serve content_hash."""
    hashes = _row_hashes(frame)
    shared = pd.Series(hashes).duplicated(keep=False).to_numpy()
    if not shared.any():
        return frame.reset_index(drop=True), hashes
    duplicate = np.zeros(len(frame), dtype=bool)
    duplicate[shared] = frame[shared].duplicated().to_numpy()
    keep = ~duplicate
    return frame[keep].reset_index(drop=True), hashes[keep]


def content_hash(frame: pd.DataFrame, row_hashes: np.ndarray | None = None) -> str:
    """sha256 of the normalised table: column order and row order do not matter.

    row_hashes: the frame's rows hashed already (CleanBatch.row_hashes), so not hashed twice."""
    hashes = _row_hashes(frame) if row_hashes is None else row_hashes
    digest = hashlib.sha256()
    digest.update(json.dumps([[c, str(frame[c].dtype)] for c in sorted(frame.columns)]).encode())
    digest.update(np.sort(hashes).tobytes())
    return digest.hexdigest()


def numeric_columns(schema: Schema) -> list[str]:
    """The columns a file may deliver as numbers (read_table's numeric_columns)."""
    columns = [c.name for c in schema.columns if c.kind == "numeric"]
    return columns + ([schema.target] if schema.numeric_target else [])


HOLDOUT_PROBA_PREFIX = "__holdout_proba_"


def holdout_proba_column(index: int) -> str:
    """A reference file's column: the probability of class `index` that the evaluated fit of a model
    refitted on all its rows gave a hold-out row (its calibration; the refitted model saw the row)."""
    return f"{HOLDOUT_PROBA_PREFIX}{index}__"


def is_holdout_proba_column(name: str) -> bool:
    return name.startswith(HOLDOUT_PROBA_PREFIX)


def stored_holdout_proba(frame: pd.DataFrame) -> np.ndarray | None:
    """The hold-out probabilities a reference file keeps (one column per class, in order), or None."""
    columns = sorted((c for c in frame.columns if is_holdout_proba_column(c)),
                     key=lambda c: int(c[len(HOLDOUT_PROBA_PREFIX):-2]))
    return frame[columns].to_numpy(dtype=float) if columns else None


def to_storage_frame(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Types that round-trip through Parquet unchanged."""
    out = frame.copy(deep=False)  # copy-on-write: the columns replaced below are new, the rest shared
    for column in schema.columns:
        if column.kind == "categorical":
            out[column.name] = out[column.name].astype("string")
    target, features = schema.target, set(schema.features)
    out[target] = out[target].astype("string" if schema.target_kind == "string" else _target_dtype(schema))
    for name in out.columns:  # the ID column (never a feature)
        if name != target and name not in features:
            out[name] = out[name].astype("string")
    return out


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    from app.core.fileio import atomic_path

    with atomic_path(path) as tmp:
        write_parquet(frame, tmp)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """frame as Parquet at path (written in place: write_frame is the atomic write)."""
    # dictionary encoding pays for text and repeated whole numbers, not for measured floats
    # (a million distinct values: the writer builds the dictionary, then drops it)
    encoded = [str(c) for c in frame.columns if not pd.api.types.is_float_dtype(frame[c])]
    frame.to_parquet(path, index=False, use_dictionary=encoded)


def dictionary_columns(table: "pyarrow.Table") -> list[str]:
    """The columns of an arrow table that write_parquet would dictionary-encode: all but the floats."""
    import pyarrow.types as arrow_types

    return [f.name for f in table.schema if not arrow_types.is_floating(f.type)]


def read_frame(path: Path, rows: int | None = None) -> pd.DataFrame:
    """A stored version; rows: its first rows only (read from the first batch, not the whole file)."""
    if rows is None:
        return pd.read_parquet(path)
    import pyarrow.parquet as pq

    first = next(pq.ParquetFile(path).iter_batches(batch_size=max(1, rows)), None)
    return first.to_pandas() if first is not None else pd.read_parquet(path)


SAMPLE_BATCH_ROWS = 1 << 18


def read_labelled_rows(path: Path, target: str, share: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """The labelled rows of a stored version: all of them, or where share < 1 a seeded random share of
    them, read batch by batch so that memory holds only the rows kept."""
    if share >= 1:
        frame = read_frame(path)
        return frame[frame[target].notna()].reset_index(drop=True)
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    kept = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=SAMPLE_BATCH_ROWS):
        frame = batch.to_pandas()
        keep = frame[target].notna().to_numpy() & (rng.random(len(frame)) < share)
        kept.append(frame[keep])
    return pd.concat(kept, ignore_index=True)


def to_model_frame(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Features as the model sees them: floats for numeric/boolean/datetime, objects with NaN for categories."""
    columns = {}
    for column in schema.columns:
        name, kind = column.name, column.kind
        series = frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)
        if kind == "categorical":
            columns[name] = series.astype(object).where(series.notna(), np.nan)
        elif kind == "datetime":
            stamps = pd.to_datetime(series, utc=True, errors="coerce")
            columns[name] = (stamps - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds() / 86400.0
        else:
            columns[name] = pd.to_numeric(series, errors="coerce").astype(float)
    return pd.DataFrame(columns, index=frame.index)


def target_array(frame: pd.DataFrame, schema: Schema) -> np.ndarray:
    values = frame[schema.target]
    if schema.target_kind == "integer":
        return values.astype("int64").to_numpy()
    if schema.target_kind == "float":
        return values.astype(float).to_numpy()
    return values.astype(str).to_numpy(dtype=object)
