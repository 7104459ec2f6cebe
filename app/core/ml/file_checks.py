"""The checks every data file passes before it is read, and the layout of a CSV file's head: what
ingest needs before it knows whether pandas is needed at all (this module imports neither pandas nor
pyarrow)."""

import codecs
import csv
import os
import re
import stat
from pathlib import Path

import numpy as np

from app.core.domain.data_files import CSV_SUFFIXES, GZIP_SUFFIX, PARQUET_SUFFIXES
from app.core.domain.errors import ValidationError

DEFAULT_MAX_FILE_MB = 16384  # ingest streams a file in chunks: its size is bounded by the disk, not memory
DEFAULT_MAX_IN_MEMORY_MB = 512  # files read whole (project create, predict, labels, the wizard's preview)
MISSING_TOKENS = {"", "na", "n/a", "nan", "null", "none", "?", "-", "--", "#n/a"}
HEAD_SAMPLE_BYTES = 1 << 20  # enough for the header and the 20 lines the delimiter is sniffed from
TYPED_READ_ATTEMPTS = 3  # each failed numeric column is re-read as text; past this, all columns are
# How the missing tokens may be written in a numeric column (arrow's null values are case-sensitive;
# any other spelling makes the column text, and cleaning then reads it as before).
NUMERIC_MISSING_SPELLINGS = sorted({spelling for token in MISSING_TOKENS
                                    for spelling in (token, token.upper(), token.title())})


def max_file_bytes() -> int:
    """The size limit for any file Keel reads; $KEEL_MAX_FILE_MB overrides it."""
    return megabytes_setting("KEEL_MAX_FILE_MB", DEFAULT_MAX_FILE_MB)


def max_in_memory_bytes() -> int:
    """The size limit for a file read whole into memory: the lower of $KEEL_MAX_IN_MEMORY_MB and
    $KEEL_MAX_FILE_MB."""
    return min(max_file_bytes(), megabytes_setting("KEEL_MAX_IN_MEMORY_MB", DEFAULT_MAX_IN_MEMORY_MB))


def limit_setting(limit: int) -> str:
    """The setting that raises limit: KEEL_MAX_FILE_MB, or KEEL_MAX_IN_MEMORY_MB where that one is lower."""
    return "KEEL_MAX_FILE_MB" if limit >= max_file_bytes() else "KEEL_MAX_IN_MEMORY_MB"


def megabytes_setting(name: str, default: int) -> int:
    try:
        return int(float(os.environ.get(name, default)) * 1024 * 1024)
    except ValueError:
        return default * 1024 * 1024


def file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(tuple(s + GZIP_SUFFIX for s in CSV_SUFFIXES)):
        return "csv.gz"
    suffix = "".join(path.suffixes[-2:]) or "(none)"
    raise ValidationError(
        f"{path.name}: unsupported format '{suffix}': Keel reads .csv, .tsv, .txt (optionally .gz) and .parquet"
        + ("; save the sheet as CSV first" if name.endswith((".xlsx", ".xls", ".ods")) else "")
    )


def check_readable_file(path: Path, max_bytes: int | None = None) -> os.stat_result:
    """Refuse anything that is not a regular, non-empty file under the size limit, without opening it."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ValidationError(f"{path}: no such file") from None
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ValidationError(f"{path}: is a directory, not a data file")
    if not stat.S_ISREG(info.st_mode):
        raise ValidationError(f"{path}: not a regular file (a pipe, socket or device); give a .csv or .parquet file")
    if info.st_size == 0:
        raise ValidationError(f"{path.name}: the file is empty (0 bytes)")
    limit = max_bytes if max_bytes is not None else max_in_memory_bytes()
    if info.st_size > limit:
        raise ValidationError(
            f"{path.name}: file is {info.st_size / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB limit (set {limit_setting(limit)})"
        )
    return info


def csv_layout(head: bytes) -> tuple[list[str], str] | None:
    """(header, delimiter) of a plain UTF-8 file, or None where the reference reader must decide."""
    if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) or b"\x00" in head[:65536]:
        return None
    complete = head if len(head) < HEAD_SAMPLE_BYTES else head[: head.rfind(b"\n") + 1]
    try:
        text = complete.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    lines = text.splitlines()
    if not lines or not lines[0].strip() or looks_binary(text):
        return None
    delimiter = sniff_delimiter(text)
    header = next(csv.reader([lines[0]], delimiter=delimiter), [])
    return [cell.strip() for cell in header], delimiter


def failed_column(message: str, header: list[str]) -> str | None:
    """The column a "CSV conversion error" names ("In CSV column #3: ..."), if it is one."""
    match = re.match(r"In CSV column #(\d+): CSV conversion error", message)
    if match is None or int(match.group(1)) >= len(header):
        return None
    return header[int(match.group(1))]


def sniff_delimiter(text: str) -> str:
    lines = text[:HEAD_SAMPLE_BYTES].splitlines()[:20]  # the head only: never the whole file
    first_lines = "\n".join(lines)
    try:
        return csv.Sniffer().sniff(first_lines, delimiters=",;\t|").delimiter
    except csv.Error:
        header = lines[0] if lines else ""
        counts = {d: header.count(d) for d in ",;\t|"}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] > 0 else ","


def delimiter_warning(source: str, delimiter: str) -> list[str]:
    """The warning a file with another delimiter than ',' gets."""
    if delimiter == ",":
        return []
    names = {";": "';'", "\t": "tab", "|": "'|'"}
    return [f"{source}: delimiter detected as {names.get(delimiter, repr(delimiter))}"]


CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # below 32, but for tab, CR and LF


def looks_binary(text: str) -> bool:
    control = len(CONTROL_CHARACTER.findall(text, 0, 65536))
    return control > 0.01 * min(len(text), 65536)


def check_header(names: list, source: str) -> None:
    if any(not str(n).strip() for n in names):
        position = next(i for i, n in enumerate(names) if not str(n).strip()) + 1
        raise ValidationError(f"{source}: column {position} has an empty name in the header")
    seen, duplicates = set(), []
    for name in names:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise ValidationError(f"{source}: duplicate column name(s) {', '.join(repr(d) for d in duplicates)}")


def cell_repr(value: object) -> str:
    """A cell as an error message quotes it: its text, whether it was read as text or as a number."""
    if isinstance(value, (float, int, np.number)) and not isinstance(value, (bool, np.bool_)):
        return repr(str(value.item() if isinstance(value, np.number) else value))
    return repr(value)
