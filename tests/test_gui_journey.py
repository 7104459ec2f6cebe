"""A new user's journey on their own stream, through the window only: the wizard with its
defaults (Train and deploy v1 now), a folder of 20 labelled batches added at once, one
monitoring run, and what the Monitoring tab then shows."""

import pytest

from app.demo.simulator import make_batch

JOB_TIMEOUT_MS = 120_000
RENAMED = {"income": "salary", "age": "years", "debt_ratio": "leverage", "tenure_months": "seniority",
           "region": "area", "has_mortgage": "homeowner"}  # this project's features, none of the demo's


def stream_file(path, rows: int, seed: int, shift: float = 0.0) -> None:
    make_batch(rows, seed=seed, shift=shift).rename(columns=RENAMED).to_csv(path, index=False)


def wait_for_job(qtbot, window, kind: str, title_start: str = ""):
    runner = window.controller.runner
    ended = []

    def record(job, *_):
        if job.kind == kind and job.title.startswith(title_start):
            ended.append(job)

    for signal in (runner.finished, runner.failed, runner.cancelled):
        signal.connect(record)
    return ended


def test_wizard_to_twenty_monitored_batches(qtbot, window, tmp_path, monkeypatch):
    import app.frontends.gui.file_dialogs as file_dialogs
    from app.frontends.gui.wizard import NewProjectWizard

    stream = tmp_path / "credit-stream"
    batches = stream / "batches"
    batches.mkdir(parents=True)
    stream_file(stream / "initial.csv", 800, seed=1)
    for index in range(1, 21):
        stream_file(batches / f"batch-{index}.csv", 120, seed=100 + index, shift=0.05 * index)

    trained = wait_for_job(qtbot, window, "train")
    wizard = NewProjectWizard(window.controller, window)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.file_page.path.setText(str(stream / "initial.csv"))
    wizard.file_page.load()
    qtbot.waitUntil(lambda: wizard.raw is not None, timeout=20000)
    wizard.next()
    assert wizard.target_page.name.text() == "credit-stream"  # the folder: "initial" names nothing
    wizard.target_page.target.setCurrentText("default")
    wizard.next()
    assert wizard.schema_page.train_now.isChecked()
    wizard.accept()
    qtbot.waitUntil(lambda: bool(trained), timeout=JOB_TIMEOUT_MS)
    assert trained[0].state == "done", trained[0].error
    keel = window.controller.keel
    assert keel.production_version("credit-stream") == 1
    assert window.controller.project == "credit-stream"

    added = wait_for_job(qtbot, window, "ingest")
    monkeypatch.setattr(file_dialogs, "existing_folder", lambda *a, **k: str(batches))
    window.named_actions["add_folder"].trigger()
    qtbot.waitUntil(lambda: bool(added), timeout=JOB_TIMEOUT_MS)
    outcome = window.controller.last_ingest_outcome
    assert (len(outcome.added), len(outcome.already_present), len(outcome.refused)) == (20, 0, 0)
    assert [a.file for a in outcome.added] == [f"batch-{i}.csv" for i in range(1, 21)]  # name order

    monitored = wait_for_job(qtbot, window, "monitor")
    qtbot.waitUntil(lambda: window.named_actions["monitor"].isEnabled(), timeout=10000)
    window.named_actions["monitor"].trigger()
    qtbot.waitUntil(lambda: bool(monitored), timeout=JOB_TIMEOUT_MS)
    assert monitored[0].state == "done", monitored[0].error

    panel = window.panels["monitoring"]
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.plots_built and len(panel.results) == 20, timeout=20000)
    panel.flush()
    x, y = panel.series["actual"].curve.getData()
    assert len(x) == 20 and len(set(x.tolist())) == 20
    assert panel.table_model.rowCount() == 20
    names = " ".join(label for level in panel.feature_plot.getAxis("left")._tickLevels for _, label in level)
    assert all(feature in names for feature in RENAMED.values())
    assert not any(feature in names.split() for feature in RENAMED)
    assert window.errors == []


def test_a_folder_with_a_bad_file_adds_the_rest_and_records_the_refusal(qtbot, window, tmp_path, monkeypatch):
    import app.frontends.gui.file_dialogs as file_dialogs

    folder = tmp_path / "mixed"
    folder.mkdir()
    make_batch(100, seed=5).to_csv(folder / "a-1.csv", index=False)
    make_batch(100, seed=5).to_csv(folder / "a-2.csv", index=False)  # the same content as a-1
    (folder / "a-3.csv").write_text("colour,size\nred,3\n")
    make_batch(100, seed=6).to_csv(folder / "a-10.csv", index=False)
    keel = window.controller.keel
    versions_before = len(keel.dataset_versions("demo-credit"))
    added = wait_for_job(qtbot, window, "ingest")
    monkeypatch.setattr(file_dialogs, "existing_folder", lambda *a, **k: str(folder))
    window.named_actions["add_folder"].trigger()
    qtbot.waitUntil(lambda: bool(added), timeout=JOB_TIMEOUT_MS)
    outcome = window.controller.last_ingest_outcome
    assert [a.file for a in outcome.added] == ["a-1.csv", "a-10.csv"]
    assert [a.file for a in outcome.already_present] == ["a-2.csv"]
    assert [r.file for r in outcome.refused] == ["a-3.csv"]
    assert "missing feature column" in outcome.refused[0].reason
    assert len(keel.dataset_versions("demo-credit")) == versions_before + 2
    assert any("2 added, 1 already present, 1 refused" in message for _, message in window.banner.history)
    activity = window.panels["activity"]
    window.tabs.setCurrentWidget(activity)
    qtbot.waitUntil(lambda: any(r["kind"] == "data_refused" for r in activity.table_model.rows), timeout=5000)
    refused = next(r for r in activity.table_model.rows if r["kind"] == "data_refused")
    assert "a-3.csv" in refused["message"] and "missing feature column" in refused["message"]
    assert window.settings.value("last_data_folder") == str(folder)  # the dialog opens there next time
    assert window.errors == []


@pytest.mark.parametrize("path, expected", [
    ("/data/credit-stream/initial.csv", "credit-stream"),
    ("/data/loans/loans-2024.csv", "loans-2024"),
    ("/data/sensors/batch-001.parquet", "sensors"),
    ("/data/my project/data.csv", "my-project"),
])
def test_the_wizard_suggests_a_name_from_the_file_or_its_folder(path, expected):
    from app.core.domain.project_name import suggest_project_name

    assert suggest_project_name(path) == expected
    assert suggest_project_name(path, {expected}) == f"{expected}-2"


def test_the_first_training_is_called_train(qtbot, window, tmp_path):
    data = tmp_path / "fresh.csv"
    make_batch(300, seed=8).to_csv(data, index=False)
    window.controller.keel.create_project("fresh", data, "default", "classification", {})
    window.controller.registry_changed.emit()
    window.controller.set_project("fresh")
    action = window.named_actions["retrain"]
    qtbot.waitUntil(lambda: action.text() == "&Train", timeout=10000)
    window.controller.set_project("demo-credit")
    qtbot.waitUntil(lambda: action.text() == "&Retrain", timeout=10000)
