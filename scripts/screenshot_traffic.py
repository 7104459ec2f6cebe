"""A screenshot of the Monitoring tab's served-traffic section: docs/screenshot-traffic.png.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_traffic.py

Builds a demo workspace under /tmp: the demo project with an ID column, eight hours of
scored traffic (the last hours from a drifted concept) recorded in the prediction log and
monitored as three traffic windows, then late labels for most of the first window and part
of the second; opens the window on the Monitoring tab and grabs it.
"""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "docs" / "screenshot-traffic.png"
NAME = "demo-credit"


def build_workspace(folder: Path) -> None:
    import pandas as pd

    from app.core.domain.clock import iso_utc
    from app.core.ml import datasets
    from app.core.services import prediction_log
    from app.core.services.lifecycle import Keel
    from app.demo.demo_project import create_demo
    from app.demo.simulator import make_batch

    if folder.exists():
        shutil.rmtree(folder)
    keel = Keel.open(folder)
    create_demo(keel)
    keel.set_project(NAME, {"id_column": "applicant_id"})
    loaded = keel.load_production(NAME)
    project, schema = keel.project(NAME), loaded.project.schema
    now, truth = time.time(), []
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
        with keel.services.registry.transaction():
            keel.services.registry.insert_predictions(rows)
        if hour in (2, 5, 7):
            keel.monitor(NAME, by="scheduler")
    labels = pd.concat([truth[h].sample(frac=share, random_state=h) for h, share in
                        ((0, 0.9), (1, 0.9), (2, 0.85), (3, 0.6), (4, 0.5), (5, 0.4))])
    path = folder / "demo" / "late-labels.csv"
    labels.set_axis(["id", "label"], axis=1).to_csv(path, index=False)
    keel.add_labels(NAME, path)
    keel.monitor(NAME, by="scheduler")
    keel.close()


def take(workspace: Path) -> None:
    os.environ.setdefault("KEEL_SETTINGS", str(Path(tempfile.mkdtemp()) / "settings.ini"))
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from app.frontends.gui.application import Application

    application = Application(app, start_scheduler=False)
    application.open(str(workspace))
    window = application.window
    window.resize(1360, 900)

    def wait(condition, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        for _ in range(20):
            app.processEvents()

    wait(lambda: window.controller.keel is not None and window.controller.project)
    window.banner.hide()
    panel = window.panels["monitoring"]
    window.tabs.setCurrentWidget(panel)
    wait(lambda: panel.traffic.volume_plot is not None and len(panel.traffic.table_model.rows) >= 3)
    panel.lower_tabs.setCurrentIndex(1)  # Served traffic
    panel.splitter.setSizes([330, 470])
    wait(lambda: False, 1.0)
    window.grab().save(str(OUT))
    print(OUT)
    QTimer.singleShot(0, window.close)
    app.exec()
    application.close()


def main() -> int:
    workspace = Path(tempfile.gettempdir()) / "keel-traffic-screenshot"
    build_workspace(workspace)
    take(workspace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
