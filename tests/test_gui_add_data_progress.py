"""Add data on a file read in chunks: the job bar follows the reading, and Cancel stops it with
nothing stored."""

import threading

from PySide6.QtCore import Qt
from store_helpers import workspace_of

from app.core.ml import chunked_ingest, datasets, ingest
from app.demo.simulator import make_batch

JOB_TIMEOUT_MS = 60_000


def test_add_data_shows_the_reading_in_the_progress_bar_and_cancel_stores_nothing(qtbot, window, tmp_path,
                                                                                   monkeypatch):
    import app.frontends.gui.file_dialogs as file_dialogs

    path = tmp_path / "large.csv"
    make_batch(1500, seed=21).to_csv(path, index=False)
    monkeypatch.setattr(chunked_ingest, "CHUNK_BYTES", 8192)  # the file spans a dozen chunks
    monkeypatch.setattr(ingest, "WHOLE_FILE_BYTES", 0)  # not read whole by arrow_ingest
    third_chunk, release = threading.Event(), threading.Event()
    clean_chunk = datasets.Cleaner.clean_chunk

    def held_at_the_third_chunk(cleaner, frame, row_offset=0):
        if row_offset and cleaner.rows_read > len(frame):  # two chunks cleaned already
            third_chunk.set()
            release.wait(JOB_TIMEOUT_MS / 1000)
        return clean_chunk(cleaner, frame, row_offset)

    monkeypatch.setattr(datasets.Cleaner, "clean_chunk", held_at_the_third_chunk)
    keel = window.controller.keel
    stored_before = sorted(p.name for p in workspace_of(keel).dataset_dir("demo-credit").iterdir())
    versions_before = len(keel.dataset_versions("demo-credit"))
    cancelled = []
    window.controller.runner.cancelled.connect(lambda job, *_: cancelled.append(job))
    monkeypatch.setattr(file_dialogs, "open_files", lambda *a, **k: [str(path)])
    window.named_actions["add_data"].trigger()
    qtbot.waitUntil(third_chunk.is_set, timeout=JOB_TIMEOUT_MS)
    bar = window.job_bar.bar
    qtbot.waitUntil(lambda: bar.maximum() == 1000 and 0 < bar.value() < 1000, timeout=5000)
    assert window.job_bar.isVisible() and window.job_bar.cancel_button.isEnabled()
    qtbot.mouseClick(window.job_bar.cancel_button, Qt.MouseButton.LeftButton)
    release.set()
    qtbot.waitUntil(lambda: bool(cancelled), timeout=JOB_TIMEOUT_MS)
    assert cancelled[0].kind == "ingest"
    assert len(keel.dataset_versions("demo-credit")) == versions_before
    assert sorted(p.name for p in workspace_of(keel).dataset_dir("demo-credit").iterdir()) == stored_before
    assert window.errors == []
