"""Screenshots of the window on demo workspaces, for docs/ and the README.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py
        [--only panels|traffic|policy] [--out DIR] [--workspace DIR] [--reuse]

panels: builds a demo workspace (demo project, a few monitored batches with drift, a retrain,
a deploy and a rollback), opens the main window at 1024x640 and at 1600x1000, visits each
panel and saves screenshot-<panel>-<size>.png (and the metric against ingest time, the
settings dialog's first and traffic tabs, one version's card, the wizard;
screenshot-main.png is the Overview at 1600x1000).

traffic: builds a second workspace (the demo project with an ID column, eight hours of scored
traffic, the last hours from a drifted concept, recorded in the prediction log and monitored as
three traffic windows, then late labels for most of the first window and part of the second)
and saves screenshot-traffic.png: the Monitoring tab's served-traffic section.

policy: builds a third workspace (the demo project and the demo stream's 24 batches, each
monitored under --policy auto: a drift at batch 9, challengers promoted and rejected, retrains
held by the new-rows rule and the budget, and those holds ending) and saves
screenshot-monitoring-policy.png: the Monitoring plot with every kind of policy marker.

The PNGs go to docs/ unless --out names another folder; the workspaces are built under
--workspace (panels) and the same path with "-traffic" appended.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DOCS = ROOT / "docs"
SIZES = ((1024, 640), (1600, 1000))
PANELS = ("overview", "data", "models", "monitoring", "deployments", "alerts", "activity")
SHOTS = ("panels", "traffic", "policy")


# --------------------------------------------------------------------------- the workspaces
def fresh_demo(folder: Path):
    """A new workspace at folder holding the demo project (one trained, deployed model) -> its Keel."""
    from app.core.services.lifecycle import Keel
    from app.demo.demo_project import create_demo

    if folder.exists():
        shutil.rmtree(folder)
    keel = Keel.open(folder)
    create_demo(keel)
    return keel


def build_panels_workspace(folder: Path) -> None:
    from app.demo import DEMO_PROJECT
    from app.demo.simulator import make_batch

    keel = fresh_demo(folder)
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
            keel.deploy(name, trained.version, reason="retrained on recent data")
    trained = keel.train(name, reason="challenger")
    keel.deploy(name, trained.version, reason="try the newest model")
    keel.rollback(name, reason="the newest model was worse on the latest batch")
    keel.close()


def build_traffic_workspace(folder: Path) -> None:
    import pandas as pd

    from app.core.domain.clock import iso_utc
    from app.core.ml import datasets
    from app.core.services import prediction_log
    from app.core.store.registry import Registry
    from app.core.store.workspace import Workspace
    from app.demo import DEMO_PROJECT
    from app.demo.simulator import make_batch

    keel = fresh_demo(folder)
    name = DEMO_PROJECT
    keel.set_project(name, {"id_column": "applicant_id"})
    loaded = keel.load_production(name)
    project, schema = keel.project(name), loaded.project.schema
    now, truth = time.time(), []
    store = Registry(Workspace(keel.root).registry_path)  # back-dated rows, as a server would have logged them hours ago
    for hour in range(8):
        concept = 0.0 if hour < 5 else 0.8
        frame = make_batch(150 + 60 * (hour % 3), seed=500 + hour, concept=concept)
        frame["applicant_id"] = [f"h{hour}-{i}" for i in range(len(frame))]
        truth.append(frame[["applicant_id", "default"]])
        X = datasets.to_model_frame(datasets.clean(datasets.RawTable(frame.drop(columns="default"), "demo"), schema,
                                                   purpose="predict").frame, schema)
        rows = prediction_log.encode(project.id, loaded.model_version.id,
                                     iso_utc(now - (8 - hour) * 3600), frame["applicant_id"].tolist(), X,
                                     loaded.model.predict(X).tolist(), loaded.model.predict_proba(X), "serve")
        with store.transaction():
            store.insert_predictions(rows)
        if hour in (2, 5, 7):
            keel.policy.monitor(name, by="scheduler")
    store.close()
    labels = pd.concat([truth[h].sample(frac=share, random_state=h) for h, share in
                        ((0, 0.9), (1, 0.9), (2, 0.85), (3, 0.6), (4, 0.5), (5, 0.4))])
    path = folder / "demo" / "late-labels.csv"
    labels.set_axis(["id", "label"], axis=1).to_csv(path, index=False)
    keel.labels.add_labels(name, path)
    keel.policy.monitor(name, by="scheduler")
    keel.close()


def build_policy_workspace(folder: Path) -> None:
    from app.demo import DEMO_PROJECT
    from app.demo.demo_stream import DEMO_STREAM, demo_batch

    keel = fresh_demo(folder)
    for index in range(DEMO_STREAM.batches):
        path = folder / "demo" / f"batch-{index + 1}.csv"
        demo_batch(index).to_csv(path, index=False)
        keel.ingest(DEMO_PROJECT, path)
        keel.policy.monitor(DEMO_PROJECT, by="scheduler")
    keel.close()


# --------------------------------------------------------------------------- the window
class Camera:
    """The main window opened on a workspace (no scheduler: no scheduled run greys out the
    actions mid-shot), waiting on Qt's event loop and saving grabs as out/screenshot-<name>.png."""

    def __init__(self, workspace: Path, out: Path):
        from PySide6.QtWidgets import QApplication

        from app.frontends.gui.application import Application

        self.app = QApplication.instance() or QApplication(sys.argv[:1])
        self.out = out
        self.saved: list[Path] = []
        self.application = Application(self.app, start_scheduler=False)
        self.application.open(str(workspace))
        self.window = self.application.main_window
        self.wait(lambda: self.window.controller.keel is not None and self.window.controller.project)
        self.window.banner.hide()

    def wait(self, condition: Callable[[], object], timeout: float = 30.0) -> None:
        """Runs the event loop until condition() holds (or timeout seconds), then a little more."""
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            self.app.processEvents()
            time.sleep(0.02)
        for _ in range(20):
            self.app.processEvents()

    def pause(self, seconds: float) -> None:
        self.wait(lambda: False, seconds)

    def grab(self, name: str, widget=None) -> None:
        for _ in range(10):
            self.app.processEvents()
        path = self.out / f"screenshot-{name}.png"
        (widget or self.window).grab().save(str(path))
        self.saved.append(path)

    def close(self) -> None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, self.window.close)
        self.app.exec()
        self.application.close()


def take_panels(camera: Camera, workspace: Path) -> None:
    window = camera.window
    for width, height in SIZES:
        size = f"{width}x{height}"
        window.resize(width, height)
        camera.pause(0.5)
        for index, name in enumerate(PANELS):
            window.tabs.setCurrentIndex(index)
            panel = window.panels[name]
            camera.wait(lambda panel=panel: panel.up_to_date, 20)  # its read runs on a worker
            if name == "data":
                panel.versions_view.selectRow(0)
                panel.preview_selected()
                camera.wait(lambda panel=panel: panel.preview_model.frame is not None, 10)
            if name == "models":
                models_shots(camera, panel, height, size)
            if name == "monitoring":
                camera.wait(lambda panel=panel: panel.plots_built and panel.distribution is not None, 20)
            window.banner.hide()
            camera.pause(0.5)
            camera.grab(f"{name}-{size}")
            if name == "overview" and width == SIZES[-1][0]:
                camera.grab("main")
            if name == "monitoring":  # the metric against ingest time, on a date axis
                panel.set_x_axis("time")
                camera.pause(0.5)
                camera.grab(f"monitoring-time-{size}")
                panel.set_x_axis("batch")
        settings_shots(camera, size)
    window.tabs.setCurrentIndex(0)
    wizard_shot(camera, workspace)


def models_shots(camera: Camera, panel, height: int, size: str) -> None:
    """One version's card; then the first three versions compared (the panel's shot follows)."""
    panel.splitter.setSizes([int(height * 0.3), int(height * 0.6)])
    versions = sorted(r["version"] for r in panel.table_model.rows)[:3]
    panel.select_version(versions[-1])
    camera.wait(lambda: panel.card is not None, 20)
    camera.pause(0.3)
    camera.grab(f"models-card-{size}")
    panel.select_version(*versions)
    panel.compare_selected()
    camera.wait(lambda: panel.comparison is not None, 60)
    camera.pause(0.5)
    panel.compare_area.verticalScrollBar().setValue(0)


def settings_shots(camera: Camera, size: str) -> None:
    """The settings dialog, shown over the window at this size: its first tab and its last."""
    from app.frontends.gui.settings_dialog import SettingsDialog

    window = camera.window
    dialog = SettingsDialog(window.controller.keel.project(window.controller.project), window)
    dialog.show()
    camera.pause(0.3)
    camera.grab(f"settings-{size}", dialog)
    dialog.tabs.setCurrentIndex(dialog.tabs.count() - 1)  # served traffic and late labels
    camera.pause(0.3)
    camera.grab(f"settings-traffic-{size}", dialog)
    dialog.reject()


def wizard_shot(camera: Camera, workspace: Path) -> None:
    from app.frontends.gui.wizard import NewProjectWizard

    wizard = NewProjectWizard(camera.window.controller, camera.window)
    wizard.show()
    wizard.file_page.path.setText(str(workspace / "demo" / "demo-credit-initial.csv"))
    wizard.file_page.load()
    camera.wait(lambda: wizard.raw is not None, 20)
    wizard.next()
    wizard.target_page.name.setText("credit-risk")
    wizard.next()
    camera.pause(0.3)
    camera.grab("wizard", wizard)
    wizard.reject()


def take_traffic(camera: Camera, workspace: Path) -> None:
    window = camera.window
    window.resize(1360, 900)
    panel = window.panels["monitoring"]
    window.tabs.setCurrentWidget(panel)
    camera.wait(lambda: panel.traffic.volume_plot is not None and len(panel.traffic.table_model.rows) >= 3)
    panel.lower_tabs.setCurrentIndex(1)  # Served traffic
    panel.splitter.setSizes([330, 470])
    camera.pause(1.0)
    camera.grab("traffic")


def take_policy(camera: Camera, workspace: Path) -> None:
    window = camera.window
    window.resize(1600, 1000)
    panel = window.panels["monitoring"]
    window.tabs.setCurrentWidget(panel)
    camera.wait(lambda: panel.up_to_date and panel.plots_built and panel.distribution is not None, 30)
    window.banner.hide()
    camera.pause(1.0)
    camera.grab("monitoring-policy")


BUILD = {"panels": build_panels_workspace, "traffic": build_traffic_workspace, "policy": build_policy_workspace}
TAKE = {"panels": take_panels, "traffic": take_traffic, "policy": take_policy}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=SHOTS, help="take one set of screenshots (default: both)")
    parser.add_argument("--out", default=str(DOCS), help="folder the PNGs are saved in (default: docs/)")
    parser.add_argument("--workspace", default=str(Path(tempfile.gettempdir()) / "keel-screenshots"),
                        help="where the panels' demo workspace is built (the others: the same path + '-traffic', "
                             "'-policy')")
    parser.add_argument("--reuse", action="store_true", help="do not rebuild a workspace that exists")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KEEL_SETTINGS", str(Path(tempfile.mkdtemp()) / "settings.ini"))
    for shots in [args.only] if args.only else SHOTS:
        workspace = Path(args.workspace + ("" if shots == "panels" else f"-{shots}"))
        if not args.reuse or not workspace.exists():
            print(f"building the {shots} workspace in {workspace} …", flush=True)
            BUILD[shots](workspace)
        camera = Camera(workspace, out)
        TAKE[shots](camera, workspace)
        camera.close()
        for path in camera.saved:
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
