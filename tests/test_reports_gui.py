"""File > Export report… in the main window writes the production model's report off the GUI thread."""

from gui_fixtures import (  # noqa: F401
    demo_template,
    demo_workspace,
    gui_settings,
    leak_guard,
    open_window,
    window,
)

JOB_TIMEOUT_MS = 90_000


def test_file_menu_exports_the_production_report(qtbot, window, tmp_path, monkeypatch):
    import app.frontends.gui.file_dialogs as file_dialogs

    output = tmp_path / "demo-report.html"
    asked = []
    monkeypatch.setattr(file_dialogs, "save_file",
                        lambda parent, title, start, filters: asked.append(start) or str(output))
    file_menu = next(action.menu() for action in window.menuBar().actions() if action.text() == "&File")
    export = window.named_actions["export_report"]
    assert export in file_menu.actions() and export.isEnabled()
    runner = window.controller.runner
    ended = []
    for signal in (runner.finished, runner.failed):
        signal.connect(lambda job, *_: ended.append(job) if job.title.startswith("Writing the report") else None)
    export.trigger()
    qtbot.waitUntil(lambda: bool(ended), timeout=JOB_TIMEOUT_MS)
    assert ended[0].state == "done" and asked[0].endswith("demo-credit-report.html")
    html = output.read_text(encoding="utf-8")
    assert "Model card: v1" in html and "since v1 was deployed" in html
    assert window.errors == []
