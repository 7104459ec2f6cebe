"""Bad input is refused: exit code 2, one line naming the problem, nothing written.

The refused list of the README's "Data files". Every test compares the registry's
row counts and every file under the workspace (path, size, sha256) before and after.
The log and the lock files are left out of the comparison: every command logs its argv,
and a lock file is only an flock target.
"""

import os
import signal
from pathlib import Path

import pytest
from cli_helpers import cli, deployed_loans_workspace, loans, refused, workspace_copy, write_csv

from app.core.services.lifecycle import Keel

READERS = ["project create", "ingest", "predict"]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A workspace with `loans` (trained, v1 in production) and `fresh` (no model yet)."""
    root = tmp_path_factory.mktemp("template")
    folder = deployed_loans_workspace(root, rows=120, seed=11)
    keel = Keel.open(folder)
    try:
        keel.create_project("fresh", write_csv(root / "fresh.csv", loans(60, seed=12)), "default",
                            settings={"preset": "logreg"})
    finally:
        keel.close()
    return folder


@pytest.fixture
def ws(template, tmp_path, monkeypatch) -> Path:
    folder = workspace_copy(template, tmp_path)
    monkeypatch.setenv("KEEL_WORKSPACE", str(folder))
    return folder


@pytest.fixture(autouse=True)
def never_hang():
    """A read that blocks (a FIFO, a device) fails the test instead of hanging the suite."""

    def timed_out(signum, frame):
        raise TimeoutError("the command hung")

    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def argv_for(command: str, path: Path, tmp_path: Path) -> list[str]:
    if command == "project create":
        return ["project", "create", "newproj", "--data", str(path), "--target", "default", "--model", "logreg"]
    if command == "ingest":
        return ["ingest", "loans", str(path)]
    if command == "predict":
        return ["predict", "loans", "--input", str(path), "--output", str(tmp_path / "scored.csv")]
    raise AssertionError(command)


def assert_refused(capsys, ws, tmp_path, argv, *fragments) -> str:
    """Exit 2, one line on stderr and one JSON error on stdout naming fragments, nothing written."""
    message = refused(capsys, ws, *argv)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not (tmp_path / "scored.csv").exists()
    return message


# --------------------------------------------------------------------------- any command reading a file
def zero_bytes(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    return path, ["empty.csv", "empty (0 bytes)"]


def header_only(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text(",".join(loans(1).columns) + "\n")
    return path, ["header.csv", "has a header but no rows"]


def random_binary(tmp_path):
    path = tmp_path / "noise.csv"
    path.write_bytes(os.urandom(4096) + b"\x00")
    return path, ["noise.csv", "not a text file (binary content)"]


def random_binary_without_nul(tmp_path):
    path = tmp_path / "noise2.csv"
    path.write_bytes(bytes(b for b in os.urandom(8192) if b))  # decodes as cp1252: caught by its control bytes
    return path, ["noise2.csv", "not a text file (binary content)"]


def corrupt_gzip(tmp_path):
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(300))
    return path, ["broken.csv.gz", "not a valid gzip file"]


def spreadsheet(tmp_path):
    path = tmp_path / "book.xlsx"
    path.write_bytes(b"PK\x03\x04" + os.urandom(200))
    return path, ["book.xlsx", "unsupported format '.xlsx'", "save the sheet as CSV"]


def does_not_exist(tmp_path):
    return tmp_path / "nowhere.csv", ["nowhere.csv", "no such file"]


def a_directory(tmp_path):
    path = tmp_path / "folder.csv"
    path.mkdir()
    return path, ["folder.csv", "is a directory"]


def a_fifo(tmp_path):
    path = tmp_path / "pipe.csv"
    os.mkfifo(path)
    return path, ["pipe.csv", "not a regular file"]


def a_device(tmp_path):
    path = tmp_path / "zero.csv"
    path.symlink_to("/dev/zero")
    return path, ["zero.csv", "not a regular file"]


def duplicate_columns(tmp_path):
    path = tmp_path / "dupcols.csv"
    frame = loans(30, seed=40)
    frame.insert(1, "income_copy", frame["income"])
    path.write_text(frame.to_csv(index=False).replace("income_copy", "income", 1))
    return path, ["dupcols.csv", "duplicate column name(s) 'income'"]


def parquet_duplicate_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "dupcols.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["age", "age"]), path)
    return path, ["dupcols.parquet", "duplicate column name(s) 'age'"]


def parquet_without_rows(tmp_path):
    path = tmp_path / "norows.parquet"
    loans(10).head(0).to_parquet(path, index=False)
    return path, ["norows.parquet", "has a header but no rows"]


def parquet_damaged(tmp_path):
    whole = tmp_path / "whole.parquet"
    loans(30).to_parquet(whole, index=False)
    data = whole.read_bytes()
    path = tmp_path / "damaged.parquet"
    path.write_bytes(data[: len(data) // 2] + b"PAR1")  # cut in half, the trailing magic kept
    return path, ["damaged.parquet", "not a readable Parquet file"]


CASES = [zero_bytes, header_only, random_binary, random_binary_without_nul, corrupt_gzip, spreadsheet, does_not_exist, a_directory, a_fifo, a_device,
         duplicate_columns, parquet_duplicate_columns, parquet_without_rows, parquet_damaged]


@pytest.mark.parametrize("command", READERS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_unreadable_files_are_refused(capsys, ws, tmp_path, command, case):
    path, fragments = case(tmp_path)
    assert_refused(capsys, ws, tmp_path, argv_for(command, path, tmp_path), *fragments)


@pytest.mark.parametrize("command", READERS)
@pytest.mark.parametrize("name", ["/dev/zero", "/dev/null"])
def test_a_device_path_given_directly_never_hangs(capsys, ws, tmp_path, command, name):
    assert_refused(capsys, ws, tmp_path, argv_for(command, Path(name), tmp_path), name, "not a regular file")


@pytest.mark.parametrize("command", READERS)
def test_a_file_over_the_size_limit_is_refused(capsys, ws, tmp_path, monkeypatch, command):
    path = write_csv(tmp_path / "big.csv", loans(200, seed=41))
    monkeypatch.setenv("KEEL_MAX_FILE_MB", "0.002")  # about 2 kB; the file is about 9 kB
    assert_refused(capsys, ws, tmp_path, argv_for(command, path, tmp_path), "big.csv", "over the", "KEEL_MAX_FILE_MB")


def test_a_gzip_that_inflates_over_the_size_limit_is_refused(capsys, ws, tmp_path, monkeypatch):
    import gzip

    path = tmp_path / "bomb.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(loans(30).to_csv(index=False) + "1,2,3,4,north,yes,0\n" * 20_000)
    assert path.stat().st_size < 20_000
    monkeypatch.setenv("KEEL_MAX_FILE_MB", "0.1")
    assert_refused(capsys, ws, tmp_path, ["ingest", "loans", str(path)], "bomb.csv.gz", "uncompressed data is over")


@pytest.mark.parametrize("command", READERS)
def test_a_parquet_that_decodes_over_the_size_limit_is_refused_before_reading(capsys, ws, tmp_path, monkeypatch,
                                                                               command):
    """300k repeated rows compress to a few kB; read, they would take ~20 MB (30 M rows took 4.8 GB)."""
    import pandas as pd

    path = tmp_path / "bomb.parquet"
    pd.concat([loans(30, seed=5)] * 10_000, ignore_index=True).to_parquet(path, index=False)
    assert path.stat().st_size < 200_000
    monkeypatch.setenv("KEEL_MAX_FILE_MB", "1")
    assert_refused(capsys, ws, tmp_path, argv_for(command, path, tmp_path),
                   "bomb.parquet", "300,000 rows", "over the 1.0 MB limit", "KEEL_MAX_FILE_MB")


def test_a_parquet_within_the_limit_is_still_read(capsys, ws, tmp_path, monkeypatch):
    path = tmp_path / "batch.parquet"
    loans(300, seed=6).to_parquet(path, index=False)
    monkeypatch.setenv("KEEL_MAX_FILE_MB", "1")
    code, out, err = cli(capsys, ws, "ingest", "loans", str(path))
    assert code == 0, err
    assert out["rows"] == 300


@pytest.mark.parametrize("case", [zero_bytes, random_binary, does_not_exist, a_directory, a_fifo, a_device],
                         ids=lambda case: case.__name__)
def test_import_refuses_unreadable_model_files(capsys, ws, tmp_path, case):
    path, fragments = case(tmp_path)
    model_path = path.with_suffix(".skops")
    if path.exists() or path.is_symlink():
        path.rename(model_path)
    assert_refused(capsys, ws, tmp_path, ["import", "loans", str(model_path)], model_path.name)


# --------------------------------------------------------------------------- project create
def test_create_without_the_target_column(capsys, ws, tmp_path):
    path = write_csv(tmp_path / "no_target.csv", loans(60).drop(columns="default"))
    assert_refused(capsys, ws, tmp_path, argv_for("project create", path, tmp_path),
                   "no_target.csv", "no target column 'default'", "columns: income")


def test_create_with_a_single_class(capsys, ws, tmp_path):
    path = write_csv(tmp_path / "one_class.csv", loans(60).assign(default=1))
    assert_refused(capsys, ws, tmp_path, argv_for("project create", path, tmp_path),
                   "one_class.csv", "single class", "'default'")


def test_create_with_too_few_rows(capsys, ws, tmp_path):
    path = write_csv(tmp_path / "tiny.csv", loans(12, seed=3))
    assert_refused(capsys, ws, tmp_path, argv_for("project create", path, tmp_path),
                   "tiny.csv", "12 labelled row(s); training needs at least 20")


# --------------------------------------------------------------------------- ingest
def test_ingest_without_a_feature_column(capsys, ws, tmp_path):
    path = write_csv(tmp_path / "no_age.csv", loans(30).drop(columns="age"))
    assert_refused(capsys, ws, tmp_path, ["ingest", "loans", str(path)], "no_age.csv", "missing feature column(s) 'age'")


def test_ingest_a_labelled_batch_whose_rows_all_vanish_in_cleaning(capsys, ws, tmp_path):
    batch = loans(30).astype({"default": object})
    batch["default"] = ["maybe", "n/a?", "yes-ish"] * 10
    path = write_csv(tmp_path / "bad_labels.csv", batch)
    assert_refused(capsys, ws, tmp_path, ["ingest", "loans", str(path)],
                   "bad_labels.csv", "every row lost in cleaning", "'default'", "row 1")


def test_ingest_into_an_unknown_project(capsys, ws, tmp_path):
    path = write_csv(tmp_path / "batch.csv", loans(30))
    assert_refused(capsys, ws, tmp_path, ["ingest", "nosuch", str(path)], "unknown project 'nosuch'")


# --------------------------------------------------------------------------- predict
def test_predict_without_a_feature_column(capsys, ws, tmp_path):
    path = write_csv(tmp_path / "no_region.csv", loans(30).drop(columns="region"))
    assert_refused(capsys, ws, tmp_path, argv_for("predict", path, tmp_path), "no_region.csv",
                   "missing feature column(s) 'region'")


def test_predict_without_a_production_model(capsys, ws, tmp_path):
    path = write_csv(tmp_path / "batch.csv", loans(30))
    assert_refused(capsys, ws, tmp_path,
                   ["predict", "fresh", "--input", str(path), "--output", str(tmp_path / "scored.csv")],
                   "'fresh' has no production model yet")


# --------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("argv, fragment", [
    (["deploy", "loans", "--version", "9"], "unknown model version 9"),
    (["rollback", "loans"], "nothing to roll back to"),
    (["train", "nosuch"], "unknown project 'nosuch'"),
    (["project", "set", "loans", "--param", "C"], "--param must be KEY=VALUE"),
    (["project", "set", "loans", "--param", "bogus=1"], "unknown parameter(s) bogus"),
    (["project", "set", "loans", "--param", "C=-1"], "bad --param for preset 'logreg'"),
    (["project", "set", "loans", "--model", "hgb", "--param", "max_iter=many"], "bad --param for preset 'hgb'"),
    (["project", "set", "loans", "--metric", "r2"], "unknown metric 'r2' for classification"),
    (["project", "create", "bad name", "--data", "x.csv", "--target", "default"], "invalid project name"),
    (["project", "create", "loans", "--data", "x.csv", "--target", "default"], "project 'loans' already exists"),
    (["deploy", "loans"], "the following arguments are required: --version"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_are_refused(capsys, ws, tmp_path, argv, fragment):
    assert_refused(capsys, ws, tmp_path, argv, fragment)
