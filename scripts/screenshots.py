"""Screenshots of each panel on a demo workspace, for docs/ and the README.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py [--workspace DIR]

Builds a demo workspace under /tmp (demo project, a few monitored batches with drift,
a retrain, a deploy and a rollback), opens the main window at 1024x640 and at 1600x1000,
visits each panel and saves docs/screenshot-<panel>-<size>.png (and the metric against ingest
time, the settings dialog's first and traffic tabs, one version's card, the wizard;
docs/screenshot-main.png is the Overview at 1600x1000).
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DOCS = ROOT / "docs"


def build_workspace(folder: Path) -> None:
    from app.core.services.lifecycle import Keel
    from app.demo import DEMO_PROJECT
    from app.demo.demo_project import create_demo
    from app.demo.simulator import make_batch

    if folder.exists():
        shutil.rmtree(folder)
    keel = Keel.open(folder)
    create_demo(keel)
    name = DEMO_PROJECT
    for index in range(8):
        drift = max(0.0, (index - 3) / 4)
        batch = make_batch(400, seed=100 + index, concept=drift, shift=drift * 0.8)
        if index in (2, 5):  # an unlabelled batch: drift and the label-free estimate only
            batch["default"] = ""
        path = folder / "demo" / f"batch-{index + 1}.csv"
        batch.to_csv(path, index=False)
        keel.ingest(name, path)
        keel.policy.monitor(name, by="policy")
        if index == 4:  # parameters set for the project: the version card marks them over the preset's defaults
            keel.set_project(name, {"params": {"max_depth": 6, "learning_rate": 0.05}})
            trained = keel.train(name, reason="retrained after drift")
            keel.deploy(name, trained["version"], reason="retrained on recent data")
    trained = keel.train(name, reason="challenger")
    keel.deploy(name, trained["version"], reason="try the newest model")
    keel.rollback(name, reason="the newest model was worse on the latest batch")
    keel.close()


SIZES = ((1024, 640), (1600, 1000))
PANELS = ("overview", "data", "models", "monitoring", "deployments", "alerts", "activity")


def take(workspace: Path) -> list[Path]:
    os.environ.setdefault("KEEL_SETTINGS", str(Path(tempfile.mkdtemp()) / "settings.ini"))
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from app.frontends.gui.application import Application

    application = Application(app, start_scheduler=False)  # no scheduled run greys out the actions mid-shot
    application.open(str(workspace))
    window = application.main_window
    saved = []

    def wait(condition, timeout=30.0):
        import time

        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        for _ in range(20):
            app.processEvents()

    def grab(name: str, widget=None):
        for _ in range(10):
            app.processEvents()
        path = DOCS / f"screenshot-{name}.png"
        (widget or window).grab().save(str(path))
        saved.append(path)

    wait(lambda: window.controller.keel is not None and window.controller.project)
    window.banner.hide()
    for width, height in SIZES:
        size = f"{width}x{height}"
        window.resize(width, height)
        wait(lambda: False, 0.5)
        for index, name in enumerate(PANELS):
            window.tabs.setCurrentIndex(index)
            panel = window.panels[name]
            if name == "data":
                panel.versions_view.selectRow(0)
                panel.preview_selected()
                wait(lambda panel=panel: panel.preview_model.frame is not None, 10)
            if name == "models":
                panel.splitter.setSizes([int(height * 0.3), int(height * 0.6)])
                wait(lambda panel=panel: panel.table_model.rows, 20)  # read off the GUI thread
                versions = sorted(r["version"] for r in panel.table_model.rows)[:3]
                panel.select_version(versions[-1])
                wait(lambda panel=panel: panel.card is not None, 20)
                wait(lambda: False, 0.3)
                grab(f"models-card-{size}")
                panel.select_version(*versions)
                panel.compare_selected()
                wait(lambda panel=panel: panel.comparison is not None, 60)
                wait(lambda: False, 0.5)
                panel.compare_area.verticalScrollBar().setValue(0)
            if name == "monitoring":
                wait(lambda panel=panel: panel.plots_built and panel.distribution is not None, 20)
            window.banner.hide()
            wait(lambda: False, 0.5)
            grab(f"{name}-{size}")
            if name == "overview" and width == SIZES[-1][0]:
                grab("main")
            if name == "monitoring":  # the metric against ingest time, on a date axis
                panel.set_x_axis("time")
                wait(lambda: False, 0.5)
                grab(f"monitoring-time-{size}")
                panel.set_x_axis("batch")
        settings_shot(window, wait, grab, size)
    window.tabs.setCurrentIndex(0)
    from app.frontends.gui.wizard import NewProjectWizard

    wizard = NewProjectWizard(window.controller, window)
    wizard.show()
    wizard.file_page.path.setText(str(workspace / "demo" / "demo-credit-initial.csv"))
    wizard.file_page.load()
    wait(lambda: wizard.raw is not None, 20)
    wizard.next()
    wizard.target_page.name.setText("credit-risk")
    wizard.next()
    wait(lambda: False, 0.3)
    grab("wizard", wizard)
    wizard.reject()
    QTimer.singleShot(0, window.close)
    app.exec()
    application.close()
    return saved


def settings_shot(window, wait, grab, size: str) -> None:
    """The settings dialog, shown over the window at this size."""
    from app.frontends.gui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(window.controller.keel.project(window.controller.project), window)
    dialog.show()
    wait(lambda: False, 0.3)
    grab(f"settings-{size}", dialog)
    dialog.tabs.setCurrentIndex(dialog.tabs.count() - 1)  # served traffic and late labels
    wait(lambda: False, 0.3)
    grab(f"settings-traffic-{size}", dialog)
    dialog.reject()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", default="/tmp/keel-screenshots")
    parser.add_argument("--reuse", action="store_true", help="do not rebuild the workspace")
    args = parser.parse_args()
    workspace = Path(args.workspace)
    DOCS.mkdir(exist_ok=True)
    if not args.reuse or not workspace.exists():
        print(f"building the demo workspace in {workspace} …", flush=True)
        build_workspace(workspace)
    for path in take(workspace):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
