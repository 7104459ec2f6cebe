"""Ingest of a data file of any size: read in chunks, each chunk validated, cleaned, de-duplicated,
hashed and written to Parquet as it comes, so memory stays flat whatever the file's size.

A file no larger than one chunk is read whole (datasets.read_table, then clean). A larger one is read
in record batches: pyarrow's CSV stream reader (pandas' chunked C reader where arrow cannot read the
file: another encoding, ragged rows, an unclosed quote; its errors name the line) or the Parquet
file's batches. Warnings and errors are worded as for the whole file, rows numbered in the file.

Duplicates across chunks: within a chunk, rows sharing a 64-bit row hash are compared cell by cell,
as clean() does; a row whose hash equals that of a row in an earlier chunk is dropped on the hash
alone (two different rows share a hash with probability about n^2 / 2^65: 3e-6 for 10M rows). The
kept rows' hashes are kept sorted, 8 bytes a row (80 MB for 10M rows): the set the duplicates are
looked up in, and the content hash, which is exactly datasets.content_hash() of the whole table.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.core.domain.entities import Schema
from app.core.domain.errors import ValidationError
from app.core.ml import datasets
from app.core.ml.file_checks import delimiter_warning
from app.core.ml.ingested_file import IngestedFile, Progress, check_cancel

# Of CSV text per chunk (Parquet: of decoded rows). pyarrow's reader reads a few chunks ahead, so peak
# memory follows the chunk: at 10M rows, 16 MB chunks peak at ~0.86 GB, 64 MB ones at ~1.2 GB, same CPU.
CHUNK_BYTES = 16 << 20
SURVEY_SHARE = 0.3  # of the progress of a file read twice (decisions for the whole file first)
TIME_UNITS = ["s", "ms", "us", "ns"]  # coarsest first
GZIP_STREAM_BYTES = 2 << 20  # a compressed file over this is streamed: it may inflate past a chunk many times


def ingest_file(path: str | os.PathLike, schema: Schema, destination: Path, id_column: str | None = None,
                progress: Progress | None = None, cancel_event: threading.Event | None = None,
                chunk_bytes: int | None = None) -> IngestedFile:
    """Read, validate and clean path against schema, drop duplicate rows, hash the content and write
    the rows as Parquet to destination (a temporary name: the caller renames it, or removes it on any
    error). progress(fraction, message) hears how much of the file is read; setting cancel_event stops
    the work (Cancelled) before the next chunk."""
    path = Path(path)
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    limit = datasets.max_file_bytes()
    info = datasets.check_readable_file(path, limit)
    kind = datasets.file_kind(path)
    report = progress or (lambda fraction, message: None)
    check_cancel(cancel_event)
    if kind == "parquet":
        chunks = _ParquetChunks(path, chunk_bytes, limit)
        if chunks.decoded_bytes <= chunk_bytes:
            return _ingest_whole(path, schema, destination, id_column, report, cancel_event)
        return _write_chunks(chunks, schema, destination, id_column, report, cancel_event)
    if info.st_size <= (GZIP_STREAM_BYTES if kind == "csv.gz" else chunk_bytes):
        return _ingest_whole(path, schema, destination, id_column, report, cancel_event)
    return _ingest_csv_in_chunks(path, kind == "csv.gz", schema, destination, id_column, report, cancel_event,
                                 chunk_bytes, limit)


def _ingest_whole(path: Path, schema: Schema, destination: Path, id_column: str | None, report: Progress,
                  cancel_event: threading.Event | None) -> IngestedFile:
    report(0.05, f"reading {path.name}")
    raw = datasets.read_table(path, numeric_columns=datasets.numeric_columns(schema))
    check_cancel(cancel_event)
    report(0.5, f"cleaning {raw.source}")
    batch = datasets.clean(raw, schema, purpose="ingest", id_column=id_column)
    digest = datasets.content_hash(batch.frame, batch.row_hashes)
    check_cancel(cancel_event)
    report(0.8, f"writing {batch.rows:,} rows")
    datasets.write_parquet(datasets.to_storage_frame(batch.frame, schema), destination)
    _fsync(destination)
    report(1.0, f"{path.name} read")
    return IngestedFile(raw.source, batch.rows, batch.labelled_rows, batch.warnings, batch.report, digest)


# --------------------------------------------------------------------------- the chunked write
class _SeenRows:
    """The hashes of the rows kept so far, sorted: duplicates are looked up in them, and they hash
    the content at the end (datasets.content_hash sorts the same hashes)."""

    def __init__(self) -> None:
        self.hashes = np.empty(0, dtype=np.uint64)

    def keep_new(self, frame: pd.DataFrame, hashes: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        if len(self.hashes) and len(hashes):
            order = np.argsort(hashes)  # looked up in order: a sweep through the kept hashes, not random seeks
            positions = np.minimum(np.searchsorted(self.hashes, hashes[order]), len(self.hashes) - 1)
            seen = np.empty(len(hashes), dtype=bool)
            seen[order] = self.hashes[positions] == hashes[order]
            if seen.any():
                frame, hashes = frame[~seen].reset_index(drop=True), hashes[~seen]
        merged = np.concatenate([self.hashes, np.sort(hashes)])
        merged.sort(kind="stable")  # two sorted runs: a linear merge
        self.hashes = merged
        return frame, hashes

    def content_hash(self, dtypes: list[list[str]]) -> str:
        digest = hashlib.sha256()
        digest.update(json.dumps(dtypes).encode())
        digest.update(self.hashes.tobytes())
        return digest.hexdigest()


def _write_chunks(chunks: _Chunks, schema: Schema, destination: Path, id_column: str | None, report: Progress,
                  cancel_event: threading.Event | None) -> IngestedFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    units = _decide_for_the_whole_file(chunks, schema, report, cancel_event)
    done = SURVEY_SHARE if units is not None else 0.0  # of the progress, the survey's
    cleaner = datasets.Cleaner(chunks.source, schema, "ingest", id_column=id_column)
    seen, writer, dtypes = _SeenRows(), None, None
    rows = labelled_rows = count = 0
    target = schema.target
    try:
        for frame, row_offset, fraction in chunks:
            check_cancel(cancel_event)
            if writer is None:
                cleaner.check_columns(frame.columns)
            cleaned = cleaner.clean_chunk(frame, row_offset)
            del frame
            for name, unit in (units or {}).items():
                cleaned[name] = cleaned[name].astype(f"datetime64[{unit}, UTC]")  # the finest: no loss
            before = len(cleaned)
            cleaned, hashes = datasets.drop_duplicate_rows(cleaned)
            cleaned, hashes = seen.keep_new(cleaned, hashes)
            cleaner.duplicates += before - len(cleaned)
            if dtypes is None:
                dtypes = [[c, str(cleaned[c].dtype)] for c in sorted(cleaned.columns)]
            rows += len(cleaned)
            labelled_rows += int(cleaned[target].notna().sum())
            storage = datasets.to_storage_frame(cleaned, schema)
            table = pa.Table.from_pandas(storage, preserve_index=False)
            del cleaned, storage
            if writer is None:
                writer = pq.ParquetWriter(destination, table.schema, use_dictionary=datasets.dictionary_columns(table))
            else:
                table = table.cast(writer.schema)
            writer.write_table(table)
            count += 1
            report(done + (1 - done) * fraction, f"{chunks.source}: {fraction:.0%} read, {rows:,} rows kept")
        if not cleaner.rows_read:
            raise ValidationError(f"{chunks.source}: has a header but no rows")
        warnings, summary = cleaner.finish(chunks.warnings, rows, labelled_rows)
    finally:
        if writer is not None:
            writer.close()
    check_cancel(cancel_event)
    _fsync(destination)
    report(1.0, f"{chunks.source} read")
    return IngestedFile(chunks.source, rows, labelled_rows, warnings, summary, seen.content_hash(dtypes or []), count)


def _decide_for_the_whole_file(chunks: _Chunks, schema: Schema, report: Progress,
                               cancel_event: threading.Event | None) -> dict[str, str] | None:
    """What cleaning must decide on the whole file, not chunk by chunk, found in a first pass over it:
    the columns of a ';' file that hold decimal commas (set on chunks), and the time unit of each
    datetime column (the finest its cells need, as pandas gives the whole column; seconds if it is
    empty). None where there is nothing to decide (no ';', no datetime column): no first pass."""
    datetime_columns = [c.name for c in schema.columns if c.kind == "datetime"]
    if chunks.delimiter != ";" and not datetime_columns:
        return None
    survey, units = datasets.DecimalCommaSurvey(), {name: "s" for name in datetime_columns}
    for frame, _offset, fraction in chunks:
        check_cancel(cancel_event)
        if chunks.delimiter == ";":
            survey.add(frame)
        for name in datetime_columns:
            if name in frame.columns:
                values = datasets.parse_datetimes(frame[name])
                typed = pd.api.types.is_datetime64_any_dtype(frame[name])  # Parquet: the stored unit holds
                if typed or values.notna().any():
                    units[name] = max(units[name], values.dt.unit, key=TIME_UNITS.index)
        report(SURVEY_SHARE * fraction, f"{chunks.source}: checking the whole file, {fraction:.0%}")
    chunks.decimal_columns = survey.columns(getattr(chunks, "header", []))
    return units


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


# --------------------------------------------------------------------------- chunk readers
class _Chunks:
    """An iterable of (raw frame, row offset of its first row, fraction of the file read); warnings
    (the reader's: encoding, delimiter, short rows, decimal commas) complete once it is exhausted.
    decimal_columns: the columns of a ';' file read as decimal-comma numbers in every chunk, decided
    for the whole file before (None: the cells as read)."""

    source: str
    warnings: list[str]
    delimiter = ","
    decimal_columns: list[str] | None = None

    def __iter__(self) -> Iterator[tuple[pd.DataFrame, int, float]]:
        raise NotImplementedError


class _CountingReader(io.RawIOBase):
    """A byte stream (a file, or a gzip stream over one) that counts what it gives and refuses more than
    limit bytes; position() is how far into the file on disk the reading is."""

    def __init__(self, path: Path, gzipped: bool, limit: int):
        super().__init__()
        self.file = open(path, "rb")
        self.stream = gzip.GzipFile(fileobj=self.file) if gzipped else self.file
        self.name, self.gzipped, self.limit, self.given = path.name, gzipped, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.stream.read(size)
        except (OSError, EOFError) as exc:  # a damaged gzip stream
            raise ValidationError(f"{self.name}: not a valid gzip file ({exc})") from None
        self.given += len(data)
        if self.given > self.limit:
            what = "uncompressed data" if self.gzipped else "the file"
            raise ValidationError(f"{self.name}: {what} is over the {self.limit / 1e6:.1f} MB limit (set KEEL_MAX_FILE_MB)")
        return data

    def position(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        if self.stream is not self.file:
            self.stream.close()
        self.file.close()
        super().close()


class _NotNumbers(Exception):
    """A column read as numbers holds text further on: read again, that column as text."""

    def __init__(self, column: str):
        super().__init__(column)
        self.column = column


class _ArrowCannotRead(Exception):
    """Arrow cannot read the file (another encoding, a ragged row, an unclosed quote)."""


class _ArrowCsvChunks(_Chunks):
    def __init__(self, path: Path, gzipped: bool, header: list[str], delimiter: str, numeric: set[str],
                 chunk_bytes: int, limit: int, row_bytes: float):
        self.path, self.gzipped, self.header, self.delimiter, self.row_bytes = path, gzipped, header, delimiter, row_bytes
        self.numeric, self.chunk_bytes, self.limit = numeric, chunk_bytes, limit
        self.source, self.warnings = path.name, []

    def __iter__(self) -> Iterator[tuple[pd.DataFrame, int, float]]:
        import pyarrow as pa
        import pyarrow.csv as arrow_csv

        types = {c: pa.float64() if c in self.numeric else pa.string() for c in self.header}
        size = max(1, self.path.stat().st_size)
        with _CountingReader(self.path, self.gzipped, self.limit) as stream:
            try:
                reader = arrow_csv.open_csv(
                    pa.PythonFile(stream, mode="r") if self.gzipped else str(self.path),  # native reads: no GIL
                    read_options=arrow_csv.ReadOptions(column_names=self.header, skip_rows=1, use_threads=True,
                                                       block_size=self.chunk_bytes),
                    parse_options=arrow_csv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True),
                    convert_options=arrow_csv.ConvertOptions(
                        column_types=types, null_values=datasets.NUMERIC_MISSING_SPELLINGS, strings_can_be_null=False,
                        quoted_strings_can_be_null=False, true_values=[], false_values=[]))
                offset = 0
                for batch in _batches(reader, self.header):
                    frame = batch.to_pandas(split_blocks=True, self_destruct=True)
                    del batch
                    datasets.apply_decimal_commas(frame, self.decimal_columns or [])
                    yield frame, offset, self._fraction_read(offset + len(frame), stream.position(), size)
                    offset += len(frame)
            except pa.ArrowInvalid as exc:
                raise _classify(str(exc), self.header) from None
        self.warnings = (delimiter_warning(self.source, self.delimiter)
                         + _decimal_comma_warning(self.source, self.decimal_columns or []))


    def _fraction_read(self, rows: int, position: int, size: int) -> float:
        """How far the reading is: a gzip file's position on disk (the reader reads ahead a little), a
        plain file's rows given so far at the head's bytes per row (arrow reads it natively)."""
        return min(position / size if self.gzipped else rows * self.row_bytes / size, 0.99)


def _batches(reader: Any, header: list[str]) -> Iterator[Any]:
    import pyarrow as pa

    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            raise _classify(str(exc), header) from None


def _classify(message: str, header: list[str]) -> Exception:
    failed = datasets.failed_column(message, header)
    if failed is not None and "invalid UTF8" not in message:
        return _NotNumbers(failed)
    return _ArrowCannotRead(message)


class _WrongEncoding(Exception):
    pass


class _PandasCsvChunks(_Chunks):
    """datasets.read_csv_bytes in chunks: the reference reader's warnings and errors, for any file."""

    def __init__(self, path: Path, gzipped: bool, header: list[str], delimiter: str, encoding: str,
                 chunk_bytes: int, row_bytes: int, limit: int, warnings: list[str]):
        self.path, self.gzipped, self.header, self.delimiter, self.encoding = path, gzipped, header, delimiter, encoding
        self.chunk_rows = max(1, chunk_bytes // max(1, row_bytes))
        self.limit, self.source, self.decoding_warnings = limit, path.name, warnings
        self.warnings = []

    def __iter__(self) -> Iterator[tuple[pd.DataFrame, int, float]]:
        size, maybe_short = max(1, self.path.stat().st_size), False
        with _CountingReader(self.path, self.gzipped, self.limit) as stream:
            reader = pd.read_csv(io.BufferedReader(stream), sep=self.delimiter, header=0, dtype=str,
                                 keep_default_na=False, na_filter=False, skip_blank_lines=True, engine="c",
                                 index_col=False, encoding=self.encoding, chunksize=self.chunk_rows)
            offset = 0
            with reader:
                for frame in _pandas_chunks(reader, self.source):
                    frame.columns = self.header
                    frame = frame.fillna("")
                    maybe_short = maybe_short or bool((frame.iloc[:, -1] == "").any())
                    datasets.apply_decimal_commas(frame, self.decimal_columns or [])
                    yield frame, offset, min(0.99, stream.position() / size)
                    offset += len(frame)
        short_rows = self._short_rows() if maybe_short else []
        self.warnings = list(self.decoding_warnings) + delimiter_warning(self.source, self.delimiter)
        if short_rows:
            self.warnings.append(f"{self.source}: {len(short_rows)} row(s) have fewer fields than the header "
                                 f"(first: row {short_rows[0]}); the missing cells are treated as missing")
        self.warnings += _decimal_comma_warning(self.source, self.decimal_columns or [])

    def _short_rows(self) -> list[int]:
        """As datasets._short_rows, reading the file once more (only when a row's last cell is empty)."""
        with _CountingReader(self.path, self.gzipped, self.limit) as stream:
            text = io.TextIOWrapper(io.BufferedReader(stream), encoding=self.encoding, newline="")
            records = (record for record in csv.reader(text, delimiter=self.delimiter) if record)
            next(records, None)
            return [row for row, record in enumerate(records, start=1) if len(record) < len(self.header)]


def _pandas_chunks(reader: Any, source: str) -> Iterator[pd.DataFrame]:
    while True:
        try:
            frame = next(reader)
        except StopIteration:
            return
        except pd.errors.ParserError as exc:
            raise ValidationError(f"{source}: malformed CSV: {datasets.describe_parser_error(exc)}") from None
        except UnicodeDecodeError:
            raise _WrongEncoding() from None
        yield frame


def _decimal_comma_warning(source: str, converted: list[str]) -> list[str]:
    if not converted:
        return []
    return [f"{source}: decimal commas read as decimal points in column(s) {', '.join(converted)}"]


class _ParquetChunks(_Chunks):
    def __init__(self, path: Path, chunk_bytes: int, limit: int):
        import pyarrow.parquet as pq

        self.path, self.source, self.warnings = path, path.name, []
        try:
            self.file = pq.ParquetFile(path)
            metadata = self.file.metadata
            names = metadata.schema.to_arrow_schema().names
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise ValidationError(f"{path.name}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
        datasets.check_header(names, path.name)
        datasets.check_parquet_decoded_size(metadata, path.name, limit)
        self.decoded_bytes = datasets.parquet_decoded_bytes(metadata)[1]
        self.rows = metadata.num_rows
        self.batch_rows = max(1, int(chunk_bytes / max(1.0, self.decoded_bytes / max(1, self.rows))))

    def __iter__(self) -> Iterator[tuple[pd.DataFrame, int, float]]:
        offset = 0
        try:
            for batch in self.file.iter_batches(batch_size=self.batch_rows):
                frame = batch.to_pandas()
                del batch
                offset += len(frame)
                yield frame, offset - len(frame), offset / max(1, self.rows)
        except (OSError, ValueError) as exc:  # pyarrow's errors for a damaged file derive from these
            raise ValidationError(f"{self.path.name}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None


# --------------------------------------------------------------------------- a CSV in chunks
def _ingest_csv_in_chunks(path: Path, gzipped: bool, schema: Schema, destination: Path, id_column: str | None,
                          report: Progress, cancel_event: threading.Event | None, chunk_bytes: int,
                          limit: int) -> IngestedFile:
    head = _head(path, gzipped, limit)
    layout = datasets.csv_layout(head)
    if layout is not None:
        header, delimiter = layout
        datasets.check_header(header, path.name)
        numeric = set() if delimiter == ";" else set(datasets.numeric_columns(schema)) & set(header)
        for _attempt in range(datasets.TYPED_READ_ATTEMPTS + 1):
            chunks = _ArrowCsvChunks(path, gzipped, header, delimiter, numeric, chunk_bytes, limit, _row_bytes(head))
            try:
                return _write_chunks(chunks, schema, destination, id_column, report, cancel_event)
            except _NotNumbers as exc:
                if exc.column not in numeric:
                    break
                numeric = set() if _attempt + 1 >= datasets.TYPED_READ_ATTEMPTS else numeric - {exc.column}
                report(0.0, f"{path.name}: column {exc.column!r} holds text; reading again")
            except _ArrowCannotRead:
                break
    return _ingest_with_reference_reader(path, gzipped, head, schema, destination, id_column, report,
                                         cancel_event, chunk_bytes, limit)


def _ingest_with_reference_reader(path: Path, gzipped: bool, head: bytes, schema: Schema, destination: Path,
                                  id_column: str | None, report: Progress, cancel_event: threading.Event | None,
                                  chunk_bytes: int, limit: int) -> IngestedFile:
    source = path.name
    encodings: list[tuple[str, str | None]]
    if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        encodings = [("utf-16", f"{source}: decoded as UTF-16")]
    elif b"\x00" in head[:65536]:
        raise ValidationError(f"{source}: not a text file (binary content); give a CSV or Parquet file")
    else:
        encodings = [("utf-8-sig", None), ("cp1252", f"{source}: not UTF-8; decoded as cp1252 (Windows-1252)"),
                     ("latin-1", f"{source}: not UTF-8; decoded as Latin-1")]
    for encoding, warning in encodings:
        complete = head if len(head) < datasets.HEAD_SAMPLE_BYTES else head[: head.rfind(b"\n") + 1]
        try:
            text = complete.decode(encoding)
        except UnicodeDecodeError:
            continue
        if not text.strip():
            raise ValidationError(f"{source}: the file holds no data (only blank lines)")
        if datasets.looks_binary(text):
            raise ValidationError(f"{source}: not a text file (binary content); give a CSV or Parquet file")
        delimiter = datasets.sniff_delimiter(text)
        lines = [line for line in text.splitlines() if line.strip()]
        header = [cell.strip() for cell in next(csv.reader([lines[0]], delimiter=delimiter), [])]
        datasets.check_header(header, source)
        chunks = _PandasCsvChunks(path, gzipped, header, delimiter, encoding, chunk_bytes,
                                  row_bytes=int(_row_bytes(head)), limit=limit,
                                  warnings=[warning] if warning else [])
        try:
            return _write_chunks(chunks, schema, destination, id_column, report, cancel_event)
        except _WrongEncoding:
            report(0.0, f"{source}: not {encoding}; reading again")
    raise ValidationError(f"{source}: not a text file in any encoding Keel reads")


def _row_bytes(head: bytes) -> float:
    """The average length of a line in the head (a gzip file's head: inflated)."""
    complete = head if len(head) < datasets.HEAD_SAMPLE_BYTES else head[: head.rfind(b"\n") + 1]
    return max(1.0, len(complete) / max(1, complete.count(b"\n")))


def _head(path: Path, gzipped: bool, limit: int) -> bytes:
    with _CountingReader(path, gzipped, limit) as stream:
        return stream.read(datasets.HEAD_SAMPLE_BYTES)

