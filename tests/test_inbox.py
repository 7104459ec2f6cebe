"""The inbox: processed, rejected with a reason and an alert, half-written files left alone;
and the demo stream that feeds the demo project's inbox."""

import os
import time

import pytest
from loop_helpers import batch, drop, make_project, settle

from app.core.services.lifecycle import Keel
from app.demo import DEMO_PROJECT, demo_stream
from app.demo.demo_project import create_demo


@pytest.fixture
def keel(workspace):
    keel = make_project(workspace, rows=200, deploy=False)
    yield keel
    keel.close()


def folder(keel):
    return keel.inbox_dir("loan")


def test_a_good_file_becomes_a_dataset_version_and_moves_to_processed(keel, store):
    drop(keel, "loan", batch(1), "good.csv")
    [result] = keel.inbox.sweep("loan")
    assert result.status == "processed" and result.dataset_version == 2 and result.rows == 300
    assert not (folder(keel) / "good.csv").exists()
    assert (folder(keel) / "processed" / "good.csv").exists()
    assert store(keel).dataset_versions(keel.project("loan").id)[-1].source == "good.csv"
    assert keel.inbox.sweep("loan") == []


def test_a_bad_file_is_rejected_with_a_reason_an_event_and_one_alert(keel, store):
    drop(keel, "loan", batch(2).drop(columns=["income"]), "no-income.csv")
    (folder(keel) / "sheet.xlsx").write_bytes(b"PK\x03\x04 not really")
    settle(keel, "loan", "sheet.xlsx")
    results = {r.file: r for r in keel.inbox.sweep("loan")}
    assert results["no-income.csv"].status == "rejected" and "income" in results["no-income.csv"].reason
    assert results["sheet.xlsx"].status == "rejected" and "unsupported format" in results["sheet.xlsx"].reason
    rejected = folder(keel) / "rejected"
    assert (rejected / "no-income.csv").exists()
    reason = (rejected / "no-income.csv.reason.txt").read_text()
    assert "missing feature column" in reason and "'income'" in reason
    assert (rejected / "sheet.xlsx.reason.txt").exists()
    alerts = keel.status("loan").open_alerts
    assert [a.rule for a in alerts] == ["inbox_rejected"]  # one open alert, not one per file
    events = [e for e in keel.history("loan").events if e.kind == "inbox_rejected"]
    assert {e.details["file"] for e in events} == {"no-income.csv", "sheet.xlsx"}
    assert len(store(keel).dataset_versions(keel.project("loan").id)) == 1  # nothing ingested


def test_a_file_still_being_written_is_not_read(keel):
    path = drop(keel, "loan", batch(3), "arriving.csv", settled=False)
    hidden = folder(keel) / ".arriving2.csv.tmp"
    hidden.write_text("income,age\n1,2\n")
    partial = folder(keel) / "big.csv.part"
    partial.write_text("income,age\n1,2\n")
    settle(keel, "loan", hidden.name, partial.name)
    assert keel.inbox.sweep("loan") == []  # the first sweep to see arriving.csv only records it
    assert path.exists() and hidden.exists() and partial.exists()
    settle(keel, "loan", "arriving.csv")  # seen unchanged long enough ago: complete
    [result] = keel.inbox.sweep("loan")
    assert result.file == "arriving.csv" and result.status == "processed"
    assert hidden.exists() and partial.exists()


def test_same_content_twice_is_a_duplicate_and_names_never_collide(keel):
    frame = batch(4)
    drop(keel, "loan", frame, "a.csv")
    keel.inbox.sweep("loan")
    drop(keel, "loan", frame, "a.csv")
    [result] = keel.inbox.sweep("loan")
    assert result.status == "duplicate" and result.duplicate_of == 2
    processed = sorted(p.name for p in (folder(keel) / "processed").iterdir())
    assert processed == ["a-2.csv", "a.csv"]


def test_files_are_taken_in_arrival_order(keel):
    for index, name in enumerate(["zz.csv", "aa.csv"]):
        path = drop(keel, "loan", batch(10 + index), name, settled=False)
        os.utime(path, (time.time() - 100 + index, time.time() - 100 + index))
    settle(keel, "loan", "zz.csv", "aa.csv")
    assert [r.file for r in keel.inbox.sweep("loan")] == ["zz.csv", "aa.csv"]


def test_the_demo_stream_is_bounded_and_resettable(workspace, monkeypatch, store):
    from functools import partial

    from app.demo import simulator

    # a smaller first file keeps the demo's two trainings quick; everything else is the real demo
    monkeypatch.setattr(simulator, "initial_training_data", partial(simulator.initial_training_data, rows=400))
    keel = Keel.open(workspace)
    assert demo_stream.drop_next_demo_batch(keel) is False  # no demo project yet
    create_demo(keel)
    settings = keel.settings(DEMO_PROJECT)
    assert settings.policy == "auto" and settings.window == "adaptive" and settings.schedule == "every 10s"
    assert demo_stream.drop_next_demo_batch(keel)
    inbox_dir = keel.inbox_dir(DEMO_PROJECT)
    assert [p.name for p in inbox_dir.glob("*.csv")] == ["demo-batch-001.csv"]
    dropped = 1
    while demo_stream.drop_next_demo_batch(keel):
        dropped += 1
    assert dropped == demo_stream.DEMO_STREAM.batches
    unlabelled = demo_stream.demo_batch(demo_stream.UNLABELLED_EVERY - 1)
    assert "default" not in unlabelled.columns
    settle(keel, DEMO_PROJECT, *[p.name for p in sorted(inbox_dir.glob("*.csv"))[:3]])  # three have arrived completely
    swept = keel.inbox.sweep(DEMO_PROJECT)
    assert [r.status for r in swept] == ["processed"] * 3

    demo_stream.reset_demo(keel)
    assert keel.production_version(DEMO_PROJECT) == 1
    assert len(store(keel).dataset_versions(keel.project(DEMO_PROJECT).id)) == 1
    assert not any(inbox_dir.glob("*.csv")) and not any((inbox_dir / "processed").iterdir())
    assert demo_stream.demo_state(keel).next == 0
    assert demo_stream.drop_next_demo_batch(keel)
    keel.close()
