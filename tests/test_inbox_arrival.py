"""Files arriving in the inbox: a slow writer is never read half-way, what is in processed/
is exactly what was ingested, symlinks and special files are followed or rejected with a
reason (never ignored), and `run` sweeps the inbox every few seconds."""

import hashlib
import os
import threading
import time

import pandas as pd
import pytest
from loop_helpers import batch, drop, make_project, settle
from store_helpers import inbox_service, opened_store, sql_rows, workspace_of

from app.core.domain.clock import Clock
from app.core.services import inbox
from app.core.services.inbox import Rules
from app.core.services.lifecycle import Keel

FAST = Rules(quiet_seconds=0.4, unterminated_seconds=3.0)


@pytest.fixture
def keel(workspace):
    keel = make_project(workspace, rows=200, deploy=True)
    yield keel
    keel.close()


def folder(keel):
    return keel.inbox_dir("loan")


def dataset_rows(keel) -> list[int]:
    with opened_store(keel) as registry:
        return [d.rows for d in registry.dataset_versions(keel.project("loan").id)]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- a real slow writer
def slow_writer(path, text: str, cuts: list[int], pause: float, done: threading.Event) -> None:
    """Write text in pieces (each cut mid-line), flushing and pausing between them, as a program
    appending to a log would."""
    with open(path, "w", newline="") as handle:
        start = 0
        for cut in [*cuts, len(text)]:
            handle.write(text[start:cut])
            handle.flush()
            os.fsync(handle.fileno())
            start = cut
            if cut != len(text):
                time.sleep(pause)
    done.set()


def test_a_file_written_in_pieces_with_pauses_is_ingested_whole_once(keel):
    frame = batch(1, rows=300)
    text = frame.to_csv(index=False)
    lines = text.splitlines(keepends=True)
    first_cut = sum(len(line) for line in lines[:101]) + 7  # header + 100 rows, then 7 characters of the next
    second_cut = sum(len(line) for line in lines[:201]) + 3
    path = folder(keel) / "slow.csv"
    done = threading.Event()
    writer = threading.Thread(target=slow_writer, args=(path, text, [first_cut, second_cut], 1.2, done))
    writer.start()
    taken = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not taken:  # sweeps every 0.1 s, far more often than the pauses
        taken = [r for r in keel.inbox.sweep("loan", rules=FAST) if r.status != "rejected"]
        time.sleep(0.1)
    writer.join()
    assert done.is_set()
    assert [r.file for r in taken] == ["slow.csv"] and taken[0].rows == 300
    assert dataset_rows(keel) == [200, 300]  # one new version, with every row
    processed = folder(keel) / "processed" / "slow.csv"
    assert processed.read_bytes() == text.encode()  # exactly what was written, and what was ingested
    assert taken[0].sha256 == sha256(processed)
    stored = keel.dataset_frame("loan", 2)
    assert stored["default"].notna().all()  # the last row kept its label
    assert stored["income"].tolist() == pytest.approx(frame["income"].tolist())
    assert not path.exists() and not list((folder(keel) / "rejected").iterdir())


def test_separate_monitor_processes_count_together(keel, capsys, monkeypatch):
    from app.frontends.cli import main

    monkeypatch.setenv(inbox.QUIET_ENV, "0.5")
    drop(keel, "loan", batch(2), "b.csv", settled=False)
    workspace = str(keel.root)
    assert main(["--workspace", workspace, "monitor", "loan", "--once", "--json"]) == 0
    assert '"inbox": []' in capsys.readouterr().out  # the first process only saw it
    assert (folder(keel) / "b.csv").exists()
    time.sleep(0.6)
    assert main(["--workspace", workspace, "monitor", "loan", "--once", "--json"]) == 0
    assert '"status": "processed"' in capsys.readouterr().out  # the second counts the first one's sighting
    assert dataset_rows(keel) == [200, 300]


def test_a_file_without_a_final_line_break_waits_much_longer(keel):
    path = folder(keel) / "cut.csv"
    text = batch(3, rows=50).to_csv(index=False)
    path.write_text(text[:-1])  # the last line has no line break: a writer may be pausing mid-line
    now = time.time()
    assert keel.inbox.sweep("loan", rules=FAST, now=now) == []
    assert keel.inbox.sweep("loan", rules=FAST, now=now + 1.0) == []  # quiet, but cut short
    assert path.read_text() == text[:-1]  # untouched
    [result] = keel.inbox.sweep("loan", rules=FAST, now=now + 3.5)  # unchanged for longer: taken as it is
    assert result.status == "processed" and result.rows == 50


def test_a_file_that_changes_between_sweeps_starts_its_quiet_time_again(keel):
    path = folder(keel) / "growing.csv"
    frame = batch(4, rows=60)
    path.write_text(frame.iloc[:30].to_csv(index=False))
    now = time.time()
    assert keel.inbox.sweep("loan", rules=FAST, now=now) == []
    with open(path, "a") as handle:
        handle.write(frame.iloc[30:].to_csv(index=False, header=False))
    assert keel.inbox.sweep("loan", rules=FAST, now=now + 1.0) == []  # changed since: not quiet yet
    [result] = keel.inbox.sweep("loan", rules=FAST, now=now + 1.5)
    assert result.rows == 60


def test_a_sweep_reads_the_time_from_its_clock(keel):
    """Without now=, how long a file has been seen unchanged is measured on the workspace's clock, not the system's."""
    path = folder(keel) / "timed.csv"
    path.write_text(batch(6, rows=30).to_csv(index=False))
    reading = [1_000_000.0]  # a moment far from the system's clock
    timed = Keel.open(keel.root, clock=Clock(lambda: reading[0]))
    try:
        assert timed.inbox.sweep("loan", rules=FAST) == []  # first seen
        time.sleep(FAST.quiet_seconds + 0.1)  # the system's clock moves on, the workspace's does not: still not quiet
        assert timed.inbox.sweep("loan", rules=FAST) == []
        reading[0] += FAST.quiet_seconds + 0.1
        [result] = timed.inbox.sweep("loan", rules=FAST)
    finally:
        timed.close()
    assert result.status == "processed" and result.rows == 30


def test_a_file_changed_while_it_is_ingested_is_kept_and_what_was_ingested_is_processed(keel, store):
    path = drop(keel, "loan", batch(5, rows=40), "racing.csv")
    original = path.read_bytes()
    real_ingest = keel.ingest

    def ingest_while_the_writer_appends(*args, **kwargs):
        with open(path, "a") as handle:
            handle.write(batch(6, rows=5).to_csv(index=False, header=False))
        return real_ingest(*args, **kwargs)

    racing = inbox_service(keel, store(keel), ingest=ingest_while_the_writer_appends)
    [result] = racing.sweep("loan")
    assert result.status == "processed" and result.rows == 40
    assert (folder(keel) / "processed" / "racing.csv").read_bytes() == original
    rejected = folder(keel) / "rejected" / "racing.csv"
    assert rejected.exists() and len(rejected.read_bytes()) > len(original)  # nothing lost, nothing silent
    reason = (folder(keel) / "rejected" / "racing.csv.reason.txt").read_text()
    assert "changed while it was being ingested" in reason and "dataset v2" in reason


# --------------------------------------------------------------------------- symlinks and special files
def test_a_symlink_to_a_readable_file_outside_is_followed_and_its_target_left_alone(keel, tmp_path):
    target = tmp_path / "elsewhere" / "exported.csv"
    target.parent.mkdir()
    batch(7, rows=30).to_csv(target, index=False)
    before = target.read_bytes()
    (folder(keel) / "exported.csv").symlink_to(target)
    settle(keel, "loan", "exported.csv")
    [result] = keel.inbox.sweep("loan")
    assert result.status == "processed" and result.rows == 30
    processed = folder(keel) / "processed" / "exported.csv"
    assert not processed.is_symlink() and processed.read_bytes() == before
    assert target.read_bytes() == before
    assert not (folder(keel) / "exported.csv").is_symlink()


def test_links_that_cannot_be_followed_and_special_files_are_rejected_with_a_reason(keel, tmp_path):
    links = {
        "registry.csv": workspace_of(keel).registry_path,  # Keel's own files are never ingested
        "dataset.parquet": workspace_of(keel).dataset_dir("loan") / "v1.parquet",
        "gone.csv": tmp_path / "does-not-exist.csv",
        "folder.csv": tmp_path,
    }
    for name, target in links.items():
        (folder(keel) / name).symlink_to(target)
    os.mkfifo(folder(keel) / "pipe.csv")
    settle(keel, "loan", *links, "pipe.csv")
    results = {r.file: r for r in keel.inbox.sweep("loan")}
    assert set(results) == {*links, "pipe.csv"}
    assert all(r.status == "rejected" for r in results.values())
    assert "inside the workspace" in results["registry.csv"].reason
    assert "inside the workspace" in results["dataset.parquet"].reason
    assert "does not exist" in results["gone.csv"].reason
    assert "not a regular file (a folder)" in results["folder.csv"].reason
    assert "named pipe" in results["pipe.csv"].reason
    for name in [*links, "pipe.csv"]:
        assert (folder(keel) / "rejected" / f"{name}.reason.txt").exists()
    assert workspace_of(keel).registry_path.is_file() and not workspace_of(keel).registry_path.is_symlink()
    assert dataset_rows(keel) == [200]


# --------------------------------------------------------------------------- sweeping between cycles
def test_run_sweeps_the_inbox_every_few_seconds_between_monitoring_cycles(keel, monkeypatch, store):
    from app.frontends import runner

    keel.set_project("loan", {"schedule": "every 1h"})
    monkeypatch.setenv(inbox.QUIET_ENV, "0.3")
    monkeypatch.setenv("KEEL_INBOX_SWEEP_SECONDS", "0.5")
    stop, ready, lines = threading.Event(), threading.Event(), []
    thread = threading.Thread(target=runner.run, args=(keel, stop, lines.append, ready))
    thread.start()
    try:
        assert ready.wait(20)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("catching up" in line for line in lines):
            time.sleep(0.05)
        cycles_before = len(sql_rows(store(keel), "SELECT id FROM monitor_results"))
        drop(keel, "loan", batch(8, rows=80), "arrived.csv", settled=False)
        started = time.monotonic()
        while time.monotonic() < deadline and len(dataset_rows(keel)) < 2:
            time.sleep(0.05)
        waited = time.monotonic() - started
    finally:
        stop.set()
        thread.join(30)
    assert dataset_rows(keel)[-1] == 80
    assert waited < 10  # seconds, not the hour of the schedule
    assert any("arrived.csv -> dataset v" in line for line in lines)
    assert len(sql_rows(store(keel), "SELECT id FROM monitor_results")) == cycles_before  # no cycle ran for it


def test_the_inbox_thresholds_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(inbox.QUIET_ENV, "5")
    monkeypatch.setenv(inbox.UNTERMINATED_ENV, "120")
    assert Rules.from_environment() == Rules(5.0, 120.0)
    monkeypatch.setenv(inbox.QUIET_ENV, "soon")
    with pytest.raises(Exception, match="KEEL_INBOX_QUIET_SECONDS"):
        Rules.from_environment()


def test_a_gzip_or_parquet_file_is_complete_only_with_its_end(tmp_path):
    import gzip

    frame = pd.DataFrame({"a": [1, 2, 3]})
    whole = gzip.compress(frame.to_csv(index=False).encode())
    (tmp_path / "x.csv.gz").write_bytes(whole[:-6])
    assert not inbox.looks_complete(tmp_path / "x.csv.gz")
    (tmp_path / "x.csv.gz").write_bytes(whole)
    assert inbox.looks_complete(tmp_path / "x.csv.gz")
    frame.to_parquet(tmp_path / "x.parquet")
    assert inbox.looks_complete(tmp_path / "x.parquet")
    (tmp_path / "y.parquet").write_bytes((tmp_path / "x.parquet").read_bytes()[:-10])
    assert not inbox.looks_complete(tmp_path / "y.parquet")
