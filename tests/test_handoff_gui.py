"""Handing work over from the window: File > Export report…, Export as MLflow model…, Push to MLflow…
(each off the GUI thread, through the services)."""

import hashlib

from gui_fixtures import run_job


def run_file_action(qtbot, window, key: str):
    """Trigger a File menu action; wait for the export job it starts to end. -> the Job."""
    file_menu = next(action.menu() for action in window.menuBar().actions() if action.text() == "&File")
    action = window.named_actions[key]
    assert action in file_menu.actions() and action.isEnabled()
    return run_job(qtbot, window, action.trigger, kind="export")


def test_file_menu_exports_the_production_report(qtbot, window, tmp_path, monkeypatch):
    import app.frontends.gui.file_dialogs as file_dialogs

    output = tmp_path / "demo-report.html"
    asked = []
    monkeypatch.setattr(file_dialogs, "save_file",
                        lambda parent, title, start, filters: asked.append(start) or str(output))
    job = run_file_action(qtbot, window, "export_report")
    assert job.title.startswith("Writing the report")
    assert job.state == "done" and asked[0].endswith("demo-credit-report.html")
    html = output.read_text(encoding="utf-8")
    assert "Model card: v1" in html and "since v1 was deployed" in html
    assert ("info", f"Report of v1 written to {output}.") in window.banner.history
    assert window.errors == []


def test_file_menu_exports_the_production_model_for_mlflow(qtbot, window, tmp_path, monkeypatch, store):
    import app.frontends.gui.file_dialogs as file_dialogs

    folder = tmp_path / "demo-mlflow"
    monkeypatch.setattr(file_dialogs, "save_file", lambda *a, **k: str(folder))
    job = run_file_action(qtbot, window, "export_mlflow")
    assert job.title.startswith("Exporting v1 as an MLflow model")
    assert job.state == "done"
    assert {"MLmodel", "model.skops", "requirements.txt"} <= {p.name for p in folder.iterdir()}
    keel = window.controller.keel
    sha256 = store(keel).model_version(keel.project("demo-credit").id, 1).sha256
    assert hashlib.sha256((folder / "model.skops").read_bytes()).hexdigest() == sha256
    assert ("info", f"v1 exported as an MLflow model to {folder}.") in window.banner.history
    assert window.errors == []


def test_file_menu_pushes_every_version_to_an_mlflow_server(qtbot, window, monkeypatch):
    from fake_mlflow_server import FakeMlflowServer
    from PySide6.QtWidgets import QInputDialog

    with FakeMlflowServer() as server:
        monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: (server.uri, True))
        job = run_file_action(qtbot, window, "push_mlflow")
        assert job.title.startswith("Pushing demo-credit to MLflow")
        assert job.state == "done"
        assert [r["info"]["status"] for r in server.active_runs()] == ["FINISHED"]
        assert server.registered["demo-credit"]["aliases"] == [{"alias": "production", "version": "1"}]
        assert ("info", f"demo-credit: 1 version(s) on {server.uri}, 3 change(s).") in window.banner.history
    assert window.errors == []
