"""A batch larger than the memory budget is read in pieces and sampled, and the record says so;
searches by ID and the newest rows read piece by piece and keep only what they return."""

import pandas as pd
import pytest
from loop_helpers import batch, drop, make_project
from store_helpers import service_dependencies

from app.core.ml import batch_reading, datasets


@pytest.fixture
def pieces_read(monkeypatch):
    """Every piece batch_reading reads (its path and rows), in 50-row pieces."""
    monkeypatch.setattr(batch_reading, "PIECE_ROWS", 50)
    read: list[tuple[str, int]] = []
    original = batch_reading.pieces

    def counted(path, columns=None, piece_rows=None):
        for piece in original(path, columns, piece_rows):
            read.append((str(path), len(piece)))
            yield piece
    monkeypatch.setattr(batch_reading, "pieces", counted)
    return read


def test_a_batch_over_the_memory_budget_is_monitored_on_a_sample_read_in_pieces(workspace, monkeypatch, pieces_read, store):
    keel = make_project(workspace, rows=300)
    try:
        project = keel.project("loan")
        per_row = datasets.training_bytes_per_row(project.schema)
        monkeypatch.setenv("KEEL_TRAIN_MEMORY_MB", str(150 * per_row / 2**20))  # room for 150 of 600 rows
        whole_reads = []
        read_frame = datasets.read_frame
        monkeypatch.setattr(datasets, "read_frame", lambda path, rows=None: whole_reads.append((str(path), rows))
                            or read_frame(path, rows))
        drop(keel, "loan", batch(1, rows=600), "big.csv")
        keel.policy.monitor("loan")
        result = store(keel).last_monitor_result(project.id)
        data = service_dependencies(keel, store(keel)).data
        path = str(data.dataset_path("loan", result.dataset_version))
        sample = result.details.sample
        assert sample.of_rows == 600 and 90 < sample.sampled_rows < 210  # (the test sets a budget under 1 MB)
        assert (result.rows, result.labelled_rows) == (600, 600)  # the batch's counts; the sample is in details
        batch_pieces = [rows for read, rows in pieces_read if read == path]
        assert batch_pieces and max(batch_pieces) <= 50 and sum(batch_pieces) % 600 == 0
        assert (path, None) not in whole_reads  # never read whole
        # the same seeded sample on every read: the policy scores the labelled rows monitoring evaluated
        again, again_sample = data.batch_within_budget("loan", result.dataset_version, labelled_only=True)
        assert again_sample == sample and len(again) == sample.sampled_rows
    finally:
        keel.close()


def _store(tmp_path, name: str, frame: pd.DataFrame):
    path = tmp_path / f"{name}.parquet"
    frame.to_parquet(path)
    return path


def test_the_newest_labelled_rows_and_rows_by_id_are_read_in_pieces(tmp_path, pieces_read):
    old = _store(tmp_path, "old", pd.DataFrame({"id": [f"a{i}" for i in range(120)], "y": [1.0, None] * 60}))
    new = _store(tmp_path, "new", pd.DataFrame({"id": [f"b{i}" for i in range(120)], "y": [None, 0.0] * 60}))
    newest = batch_reading.newest_labelled_rows([old, new], "y", 70)
    assert list(newest["id"]) == [f"a{i}" for i in range(100, 120, 2)] + [f"b{i}" for i in range(1, 120, 2)]
    found = batch_reading.rows_with_ids(new, "id", {"b3", "b117", "missing"})
    assert list(found["id"]) == ["b3", "b117"]
    assert batch_reading.id_values(old, "id") == {f"a{i}" for i in range(120)}
    assert pieces_read and max(rows for _, rows in pieces_read) <= 50
