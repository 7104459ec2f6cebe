"""A file read in chunks (small chunks here, to exercise the multi-chunk paths) is ingested exactly as
the same file read whole: same rows, warnings, report and content hash; a bad row in a later chunk
is refused naming its line, and a cancel stores nothing."""

import dataclasses
import gzip
import threading

import pandas as pd
import pytest
from store_helpers import workspace_of

from app.core.domain.errors import Cancelled, ValidationError
from app.core.ml import chunked_ingest, datasets
from app.core.ml import ingest as ml_ingest
from app.core.services.lifecycle import Keel

HEADER = "a,b,c,d,cat,flag,when,y"
CHUNK = 2048  # bytes of text per chunk: each file below spans 5-15 chunks


def row(i: int) -> str:
    return f"{i * 0.5},{i},{-i},{i % 7},{'xyz'[i % 3]},{'yes' if i % 2 else 'no'},2024-01-{1 + i % 28:02d},{i % 2}"


BASE_ROWS = [row(i) for i in range(300)]


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    path = tmp_path_factory.mktemp("schema") / "first.csv"
    path.write_text("\n".join([HEADER, *BASE_ROWS[:60]]) + "\n")
    schema = datasets.infer_schema(datasets.read_table(path), "y", "classification")
    return dataclasses.replace(schema, classes=(0, 1))


def text(*late_rows: str) -> str:
    """300 rows, then late_rows (in the last chunks), then rows repeating earlier chunks' rows."""
    return "\n".join([HEADER, *BASE_ROWS, *late_rows, *BASE_ROWS[:40]]) + "\n"


CASES = {
    "plain, with duplicates across chunks": text(),
    "bad cells late in the file": text("1.5,abc,3,4,x,yes,2024-02-01,1", "inf,2,3,4,w,maybe,2024-13-01,7",
                                       "1,2,3,4,x,yes,2024-02-01,1.5", "q,w,e,r,x,yes,2024-02-01,"),
    "a numeric column with text only in a later chunk": text(*[f"{i},{i}x,1,2,x,yes,2024-02-01,1" for i in range(5)]),
    "rows without labels": text(*[f"{i},2,3,4,x,yes,2024-02-01," for i in range(9)]),
    "a short row": text("1,2,3"),
    "semicolons and decimal commas": text().replace(",", ";").replace(".5;", ",5;"),
    "tabs and quoted line breaks": text('1\t2\t3\t4\t"x, the\nsecond"\tyes\t2024-02-01\t1').replace(",", "\t"),
}


def ingest(path, schema, destination, chunk_bytes, **kwargs):
    try:
        stored = chunked_ingest.ingest_file(path, schema, destination, chunk_bytes=chunk_bytes, **kwargs)
    except ValidationError as exc:
        return ("refused", str(exc))
    return (stored.rows, stored.labelled_rows, stored.warnings, stored.report, stored.content_sha256,
            pd.read_parquet(destination), stored.chunks)


def assert_same_as_whole(tmp_path, schema, path):
    whole = ingest(path, schema, tmp_path / "whole.parquet", chunk_bytes=1 << 30)
    chunked = ingest(path, schema, tmp_path / "chunked.parquet", chunk_bytes=CHUNK)
    assert whole[0] != "refused", whole
    assert chunked[-1] > 3 and whole[-1] == 1  # read in chunks, and whole
    assert chunked[:5] == whole[:5]
    pd.testing.assert_frame_equal(chunked[5], whole[5])
    return chunked


@pytest.mark.parametrize("case", CASES)
def test_a_file_read_in_chunks_is_ingested_as_the_whole_file(tmp_path, schema, case):
    path = tmp_path / "batch.csv"
    path.write_text(CASES[case])
    assert_same_as_whole(tmp_path, schema, path)


def european(early_b: str, late_b: str) -> str:
    """A ';' file whose column b holds early_b in the first chunk and late_b in the last ones."""
    lines = text().replace(",", ";").splitlines()
    cells = lines[11].split(";")
    lines[11] = ";".join([cells[0], early_b, *cells[2:]])
    cells = lines[-5].split(";")
    lines[-5] = ";".join([cells[0], late_b, *cells[2:]])
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("early_b, late_b, b", [("1.234", "3,5", 1234.0), ("1.234", "3,5x", None)],
                         ids=["decimal commas only in the last chunks", "text in the last chunks"])
def test_decimal_commas_are_decided_for_the_whole_file_not_chunk_by_chunk(tmp_path, schema, early_b, late_b, b):
    """A thousands dot in the first chunk reads as the whole file says: 1234 where the column holds
    decimal commas further on, the text as read where it does not."""
    path = tmp_path / "european.csv"
    path.write_text(european(early_b, late_b))
    chunked = assert_same_as_whole(tmp_path, schema, path)
    assert chunked[-2]["b"].iloc[10] == (b if b is not None else 1.234)
    assert any("decimal commas read as decimal points in column(s) b" in w for w in chunked[2]) == (b is not None)


@pytest.mark.parametrize("late_when", ["2024-02-01T10:00:00.5", "2024-02-01T10:00:00.123456789"],
                         ids=["microseconds", "nanoseconds"])
def test_the_time_unit_of_a_datetime_column_is_decided_for_the_whole_file(tmp_path, schema, late_when):
    """A datetime column empty in the first chunks, and one whose last chunks need nanoseconds, are
    stored with the unit the whole file needs (the content hash includes it)."""
    lines = text().splitlines()
    lines[1:150] = [",".join(line.split(",")[:6] + ["", line.split(",")[7]]) for line in lines[1:150]]
    lines[-3] = ",".join(lines[-3].split(",")[:6] + [late_when, "1"])
    path = tmp_path / "times.csv"
    path.write_text("\n".join(lines) + "\n")
    chunked = assert_same_as_whole(tmp_path, schema, path)
    assert str(chunked[-2]["when"].dtype) == ("datetime64[ns, UTC]" if late_when.endswith("789") else "datetime64[us, UTC]")


def test_text_that_is_not_utf8_is_read_in_chunks_as_the_whole_file(tmp_path, schema):
    path = tmp_path / "latin.csv"
    path.write_bytes(text().replace(",x,", ",café,").encode("cp1252"))
    rows, _, warnings, *_ = assert_same_as_whole(tmp_path, schema, path)
    assert "latin.csv: not UTF-8; decoded as cp1252 (Windows-1252)" in warnings


def test_a_parquet_file_read_in_batches_is_ingested_as_the_whole_file(tmp_path, schema):
    source = tmp_path / "batch.csv"
    source.write_text(CASES["bad cells late in the file"])
    path = tmp_path / "batch.parquet"
    pd.read_csv(source, dtype=str, keep_default_na=False).to_parquet(path, index=False)
    assert_same_as_whole(tmp_path, schema, path)


def test_a_gzip_file_is_streamed_and_its_inflated_size_limited(tmp_path, schema, monkeypatch):
    path = tmp_path / "batch.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(CASES["plain, with duplicates across chunks"])
    monkeypatch.setattr(chunked_ingest, "GZIP_STREAM_BYTES", 100)
    plain = tmp_path / "batch.csv"
    plain.write_text(CASES["plain, with duplicates across chunks"])
    from_gzip = ingest(path, schema, tmp_path / "gz.parquet", CHUNK)
    from_plain = ingest(plain, schema, tmp_path / "plain.parquet", CHUNK)
    assert from_gzip[-1] > 3 and (from_gzip[0], from_gzip[1], from_gzip[4]) == (from_plain[0], from_plain[1], from_plain[4])
    monkeypatch.setenv("KEEL_MAX_FILE_MB", str(5000 / 2**20))
    assert ingest(path, schema, tmp_path / "gz2.parquet", CHUNK) == (
        "refused", "batch.csv.gz: uncompressed data is over the 0.0 MB limit (set KEEL_MAX_FILE_MB)")


def test_the_content_hash_of_a_chunked_file_is_the_hash_of_its_whole_table(tmp_path, schema):
    path = tmp_path / "batch.csv"
    path.write_text(CASES["rows without labels"])
    stored = chunked_ingest.ingest_file(path, schema, tmp_path / "out.parquet", chunk_bytes=CHUNK)
    batch = datasets.clean(datasets.read_table(path), schema)
    assert stored.content_sha256 == datasets.content_hash(batch.frame)


@pytest.fixture
def keel(workspace, tmp_path, schema):
    first = tmp_path / "first.csv"
    first.write_text("\n".join([HEADER, *BASE_ROWS[:60]]) + "\n")
    keel = Keel.open(workspace)
    keel.create_project("p", first, "y", "classification")
    yield keel
    keel.close()


def stored_files(keel):
    return sorted(p.name for p in workspace_of(keel).dataset_dir("p").iterdir())


def test_a_bad_row_in_the_third_chunk_is_refused_naming_its_line_and_nothing_is_written(keel, tmp_path,
                                                                                          monkeypatch):
    monkeypatch.setattr(chunked_ingest, "CHUNK_BYTES", CHUNK)
    monkeypatch.setattr(ml_ingest, "WHOLE_FILE_BYTES", 0)  # not read whole by arrow_ingest
    lines = text().splitlines()
    lines.insert(150, "1,2,3,4,x,yes,2024-02-01,1,surplus")  # about 5 kB in: the third chunk
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    before = (stored_files(keel), keel.dataset_versions("p"))
    with pytest.raises(ValidationError) as refused:
        keel.ingest("p", path)
    assert str(refused.value) == "ragged.csv: malformed CSV: Expected 8 fields on line 151, saw 9 (a ragged row or an unclosed quote)"
    assert (stored_files(keel), keel.dataset_versions("p")) == before


def test_a_cancel_while_reading_stores_nothing(keel, tmp_path, monkeypatch):
    monkeypatch.setattr(chunked_ingest, "CHUNK_BYTES", CHUNK)
    monkeypatch.setattr(ml_ingest, "WHOLE_FILE_BYTES", 0)  # not read whole by arrow_ingest
    path = tmp_path / "batch.csv"
    path.write_text(CASES["plain, with duplicates across chunks"])
    cancel, heard = threading.Event(), []

    def progress(fraction, message):
        heard.append(fraction)
        if len(heard) == 2:
            cancel.set()

    before = (stored_files(keel), keel.dataset_versions("p"))
    with pytest.raises(Cancelled):
        keel.ingest("p", path, progress=progress, cancel_event=cancel)
    assert (stored_files(keel), keel.dataset_versions("p")) == before
    assert 0 < heard[0] < heard[1] < 1


def test_ingest_reports_progress_through_the_file_and_stores_it_like_the_whole_file(keel, tmp_path, monkeypatch):
    path = tmp_path / "batch.csv"
    path.write_text(CASES["bad cells late in the file"])
    whole = keel.ingest("p", path)
    monkeypatch.setattr(chunked_ingest, "CHUNK_BYTES", CHUNK)
    monkeypatch.setattr(ml_ingest, "WHOLE_FILE_BYTES", 0)  # not read whole by arrow_ingest
    heard = []
    again = keel.ingest("p", path, progress=lambda fraction, message: heard.append(fraction))
    assert again.duplicate_of == whole.dataset_version  # the same content hash
    assert heard == sorted(heard) and len(heard) > 5 and heard[-1] == 1.0
    assert stored_files(keel) == ["v1.parquet", "v2.parquet"]


def test_a_preview_reads_the_first_rows_of_a_version_only(keel):
    whole = keel.dataset_frame("p", 1)
    pd.testing.assert_frame_equal(keel.dataset_frame("p", 1, rows=10), whole.head(10))
    pd.testing.assert_frame_equal(keel.dataset_frame("p", 1, rows=10_000), whole)
