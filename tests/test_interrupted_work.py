"""Work cut short leaves nothing broken: a model file a killed train left behind, an inbox file
whose ingest failed for the workspace's sake (a locked registry, a full disk)."""

import sqlite3
import time

import pytest
from cli_helpers import loans_csv
from store_helpers import inbox_service, workspace_of

from app.core.domain.errors import BusyError


def test_train_after_an_interrupted_train_left_an_unregistered_model_file(tmp_path):
    """A train killed between writing vN.skops and committing its row (a GUI cancel terminates the
    child process) leaves a file no row names: the next train moves it aside (never deletes it) and
    registers its own model, rather than refusing every later train of the project."""
    from app.core.services.lifecycle import Keel

    keel = Keel.open(tmp_path / "ws")
    try:
        keel.create_project("p", loans_csv(tmp_path / "loans.csv"), "default", "classification", {"preset": "logreg"})
        orphan = workspace_of(keel).artifact_dir("p") / "v1.skops"
        orphan.parent.mkdir(parents=True)
        orphan.write_bytes(b"half-written by a killed process")
        assert keel.train("p").version == 1
        kept = [p for p in orphan.parent.iterdir() if p.name.startswith("v1.skops.orphan-")]
        assert len(kept) == 1 and kept[0].read_bytes() == b"half-written by a killed process"  # never deleted
        keel.load_version("p", 1)  # the registered file is the new model, hash-checked
    finally:
        keel.close()


@pytest.mark.parametrize("failure", [sqlite3.OperationalError("database is locked"),
                                     BusyError("the registry is busy in another process"),
                                     OSError(28, "No space left on device")])
def test_inbox_keeps_a_good_file_when_the_workspace_fails(tmp_path, failure, store):
    """A locked registry or a full disk while ingesting leaves a valid file in the inbox, with no
    alert and nothing in rejected/ (the file is not the problem); the next sweep takes it."""

    from app.core.services.lifecycle import Keel

    keel = Keel.open(tmp_path / "ws")
    try:
        keel.create_project("p", loans_csv(tmp_path / "loans.csv"), "default", "classification", {"preset": "logreg"})
        dropped = keel.inbox_dir("p") / "batch.csv"
        loans_csv(dropped, rows=50, seed=5)
        keel.inbox.record_sightings("p", now=time.time() - 120)  # seen unchanged by an earlier sweep

        def failing_ingest(*args, **kwargs):
            raise failure

        failing = inbox_service(keel, store(keel), ingest=failing_ingest)
        assert failing.sweep("p") == []
        assert dropped.is_file() and not list((dropped.parent / "rejected").iterdir())
        assert store(keel).open_alerts(keel.project("p").id) == []
        [entry] = keel.inbox.sweep("p")  # the next sweep takes it
        assert entry.status == "processed"
    finally:
        keel.close()
