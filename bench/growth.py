"""History growth: read-only commands and a monitoring cycle as one project's history grows.

    .venv/bin/python bench/growth.py [--steps 4] [--batches 1000] [--versions 500] [--points 1000000] [--repeats 5]
                                     [--id-column]

One project (logreg on the demo's loan data) is trained and deployed, then grown in --steps
equal steps to --batches monitored dataset versions, --versions model versions (each with a
run) holding --points metric points, and one audit event per batch and per version. The rows
are written through the registry's own insert calls, pointing at the real first dataset and
model files, so every command reads a registry of that size. At each step, as whole cold
processes (median of --repeats): `status NAME --json`, `history NAME --json`,
`project list --json` and `--help`; and one
`monitor NAME --once` that evaluates one freshly ingested batch (median of --monitor-repeats
cycles, each on a new batch). The window (Qt offscreen, one process per step, opened on the
workspace and showing a second, small project first): the switch to the grown project, from
selecting it in the project list to the first paint with the Overview filled (median of
--repeats switches there and back). The slope of each (ms per 1,000 batches) says whether
it grows; a flat command has a slope near zero.

With --id-column the project names its rows (`customer_id`): its grown batches were unlabelled
when monitored and wait for late labels, and every fifth grown version was deployed once (then
v1 again). Each step then also times, in this process (median of 21 calls), what a cycle reads
that grows with history: the policy's earlier production versions and the late-label rule
(`cycle reads`), next to the reads the same two made before they went through indexed queries
(every model version, every deployment and every monitoring result decoded: `same, read whole`).
Prints a table; writes bench/results/growth.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, print_table, run_process, write_report

PROJECT = "growth"
ID_COLUMN = "customer_id"
IN_PROCESS_REPEATS = 21
SMALL_PROJECT = "small"  # the window shows it first, then switches to the grown one


def with_ids(frame, prefix: str):
    return frame.assign(**{ID_COLUMN: [f"{prefix}-{i}" for i in range(len(frame))]})


def build_project(workspace: Path, data_dir: Path, id_column: bool = False) -> None:
    sys.path.insert(0, str(ROOT))
    from app.core.services.lifecycle import Keel
    from app.demo.simulator import initial_training_data

    keel = Keel.open(workspace)
    try:
        data = data_dir / "initial.csv"
        frame = initial_training_data(rows=600, seed=3)
        (with_ids(frame, "train") if id_column else frame).to_csv(data, index=False)
        for name in (PROJECT, SMALL_PROJECT):
            settings = {"preset": "logreg", **({"id_column": ID_COLUMN} if id_column else {})}
            keel.create_project(name, data, "default", "classification", settings)
            keel.train(name)
            keel.deploy(name, 1)
    finally:
        keel.close()


def grow(workspace: Path, batches: int, versions: int, points: int, id_column: bool = False) -> None:
    """Add `batches` monitored dataset versions and `versions` model versions with `points` metric points.
    id_column: the batches wait for late labels, and every fifth version is deployed once (then v1 again)."""
    from app.core.domain.clock import utc_now
    from app.core.domain.measurements import BatchDetails
    from app.core.store.registry import Registry

    registry = Registry(workspace / "registry.db")
    try:
        project = registry.project(PROJECT)
        first_dataset = registry.dataset_versions(project.id)[0]
        first_model = registry.model_versions(project.id)[0]
        with registry.transaction():
            next_dataset = registry.next_number("dataset_versions", project.id)
            for index in range(batches):
                version = next_dataset + index
                dataset_id = registry.insert_dataset_version(
                    project_id=project.id, version=version, path=first_dataset.path,
                    content_sha256=f"growth-{version:08d}", file_sha256=first_dataset.file_sha256,
                    rows=300, labelled_rows=0 if id_column else 300, source=f"batch-{version}.csv", parent_id=None,
                    report={"rows": 300})
                registry.insert_monitor_result(
                    project_id=project.id, model_version_id=first_model.id, dataset_version_id=dataset_id,
                    rows=300, labelled_rows=0 if id_column else 300, metric="accuracy",
                    value=None if id_column else 0.9, estimated_value=0.9, drift_share=0.0, prediction_drift=0.0,
                    drifted_features=[], details=BatchDetails(has_ids=True if id_column else None))
                registry.add_event(project, "dataset_ingested", f"dataset v{version}: 300 rows", "user")
            next_model = registry.next_number("model_versions", project.id)
            per_version = max(1, points // max(versions, 1))
            for index in range(versions):
                run = registry.insert_run(project.id, "train", started_at=utc_now(), status="finished")
                registry.log_metrics(run, (("loss", 1.0 / (s + 1), s) for s in range(per_version)))
                registry.log_metrics(run, [("accuracy", 0.9, 0)])
                deployed = id_column and index % 5 == 0
                version_id = registry.insert_model_version(
                    project_id=project.id, version=next_model + index, run_id=run,
                    artifact_path=first_model.artifact_path, sha256=first_model.sha256, archived=int(not deployed))
                registry.add_event(project, "trained", f"v{next_model + index} trained", "user")
                if deployed:
                    registry.insert_deployment(project_id=project.id, model_version_id=version_id, by="user",
                                               reason="growth")
            if id_column:  # v1 stays in production
                registry.insert_deployment(project_id=project.id, model_version_id=first_model.id, by="user",
                                           reason="growth")
    finally:
        registry.close()


def commands(workspace: Path) -> dict:
    main = [sys.executable, str(ROOT / "main.py"), "--workspace", str(workspace)]
    return {
        "status --json": lambda: run_process([*main, "status", PROJECT, "--json"], cwd=ROOT),
        "history --json": lambda: run_process([*main, "history", PROJECT, "--json"], cwd=ROOT),
        "project list --json": lambda: run_process([*main, "project", "list", "--json"], cwd=ROOT),
        "--help": lambda: run_process([*main, "--help"], cwd=ROOT),
    }


def cycle_reads(workspace: Path) -> dict[str, list[float]]:
    """Seconds of the policy's earlier-version lookup plus the late-label rule, in this process; and
    of the reads they made before (every model version, deployment and monitoring result decoded)."""
    from app.core.services.lifecycle import Keel
    from app.core.store.registry import Registry
    from app.core.store.workspace import Workspace

    keel = Keel.open(workspace)
    registry = Registry(Workspace(workspace).registry_path)  # the reads as they were made before, on the store itself
    try:
        project = registry.project(PROJECT)
        settings = project.settings

        def now():
            keel.policy.earlier_production_versions(project, 1)
            keel.traffic.late_labels_message(project, settings)

        def whole():
            registry.model_versions(project.id)
            registry.deployments(project.id)
            registry.monitor_results(project.id)

        timings: dict[str, list[float]] = {"cycle reads (in-process)": [], "same, read whole (before)": []}
        for _ in range(IN_PROCESS_REPEATS):
            for name, work in zip(timings, (now, whole), strict=True):
                started = time.perf_counter()
                work()
                timings[name].append(time.perf_counter() - started)
        return timings
    finally:
        registry.close()
        keel.close()


def monitoring_cycle(workspace: Path, batch: Path, index: int, id_column: bool = False):
    """Ingest one new batch (untimed), then time `monitor NAME --once` evaluating it."""
    main = [sys.executable, str(ROOT / "main.py"), "--workspace", str(workspace)]
    from app.demo.simulator import make_batch

    path = batch.with_name(f"new-{index}.csv")
    frame = make_batch(300, seed=9000 + index)
    (with_ids(frame.drop(columns=["default"]), f"new-{index}") if id_column else frame).to_csv(path, index=False)
    run_process([*main, "ingest", PROJECT, str(path)], cwd=ROOT)
    return run_process([*main, "monitor", PROJECT, "--once"], cwd=ROOT)


def gui_switch(workspace: Path, repeats: int) -> list[float]:
    """Seconds from selecting the grown project in the window's list to the Overview painted filled."""
    env = dict(os.environ, KEEL_SETTINGS=str(workspace.parent / "gui-settings.ini"))
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    output = subprocess.run([sys.executable, __file__, "--gui-switch-worker", str(workspace), "--repeats", str(repeats)],
                            check=True, capture_output=True, text=True, cwd=ROOT, env=env).stdout
    return json.loads(output.strip().splitlines()[-1])


def gui_switch_worker(workspace: Path, repeats: int) -> list[float]:
    from PySide6.QtWidgets import QApplication

    from app.frontends.gui.application import configure_process, settings_store
    from app.frontends.gui.controller import Controller
    from app.frontends.gui.main_window import MainWindow

    configure_process()
    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    controller = Controller(str(workspace), start_scheduler=False)
    window = MainWindow(controller, settings_store())
    window.show()
    try:
        return switch_times(window, controller, repeats)
    finally:
        window.close()
        qt_app.processEvents()


def switch_times(window, controller, repeats: int) -> list[float]:
    """In a shown window on the grown workspace: open it on the small project, then time `repeats`
    switches to the grown project (each followed by one back)."""
    from PySide6.QtCore import QEventLoop, Qt, QTimer

    def show(project: str, select) -> float:
        """Select, then run the event loop until the window shows the project (polled every 2 ms) and
        has painted it."""
        loop = QEventLoop()
        poll = QTimer()
        poll.setInterval(2)
        poll.timeout.connect(lambda: controller.project == project and window.workspace_shown() and loop.quit())
        deadline = QTimer()
        deadline.setSingleShot(True)
        deadline.timeout.connect(loop.quit)
        deadline.start(120_000)
        started = time.perf_counter()
        select()
        poll.start()
        loop.exec()
        poll.stop()
        deadline.stop()
        if not (controller.project == project and window.workspace_shown()):
            raise RuntimeError(f"the window never showed {project}")
        window.repaint()
        return time.perf_counter() - started

    def pick(project: str):
        def select():
            row = next(i for i in range(window.project_list.count())
                       if window.project_list.item(i).data(Qt.ItemDataRole.UserRole) == project)
            window.project_list.setCurrentRow(row)  # as a click on it does
        return select

    controller.set_project(SMALL_PROJECT)
    show(SMALL_PROJECT, controller.open_keel)
    switches = []
    for _ in range(repeats):
        switches.append(show(PROJECT, pick(PROJECT)))
        show(SMALL_PROJECT, pick(SMALL_PROJECT))
    return switches


def seconds(value: float) -> str:
    return f"{value * 1000:.2f} ms" if value < 0.1 else f"{value:.3f}"


def slope_ms_per_thousand(xs: list[int], ys: list[float]) -> float:
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    denominator = sum((x - mean_x) ** 2 for x in xs)
    if not denominator:
        return 0.0
    return 1000 * 1000 * sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / denominator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=500)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--monitor-repeats", type=int, default=3)
    parser.add_argument("--skip-monitor", action="store_true", help="time the read-only commands only (the smoke test)")
    parser.add_argument("--skip-gui", action="store_true", help="do not time the window's switch to the project")
    parser.add_argument("--id-column", action="store_true",
                        help="the project has an ID column and its batches wait for late labels")
    parser.add_argument("--output")
    parser.add_argument("--gui-switch-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.gui_switch_worker:
        print(json.dumps(gui_switch_worker(Path(args.gui_switch_worker), args.repeats)))
        return 0
    with tempfile.TemporaryDirectory(prefix="keel-bench-growth-") as tmp:
        folder = Path(tmp)
        workspace = folder / "workspace"
        build_project(workspace, folder, args.id_column)
        steps = []
        for step in range(args.steps + 1):
            if step:
                grow(workspace, args.batches // args.steps, args.versions // args.steps, args.points // args.steps,
                     args.id_column)
            size = {"batches": step * (args.batches // args.steps), "versions": step * (args.versions // args.steps),
                    "points": step * (args.points // args.steps)}
            timings: dict[str, list[float]] = {}
            for _ in range(args.repeats):
                for name, run in commands(workspace).items():
                    timings.setdefault(name, []).append(run().seconds)
            if args.id_column:
                timings.update(cycle_reads(workspace))
            if not args.skip_monitor:
                timings["monitor --once (1 new batch)"] = [
                    monitoring_cycle(workspace, folder / "batch.csv", step * args.monitor_repeats + index,
                                     args.id_column).seconds
                    for index in range(args.monitor_repeats)]
            if not args.skip_gui:
                timings["window: switch to the project"] = gui_switch(workspace, args.repeats)
            steps.append({**size, "seconds": {name: statistics.median(t) for name, t in timings.items()}})
    names = list(steps[0]["seconds"])
    xs = [s["batches"] for s in steps]
    slopes = {name: slope_ms_per_thousand(xs, [s["seconds"][name] for s in steps]) for name in names}
    print_table(["batches", "versions", "points", *names],
                [[s["batches"], s["versions"], f"{s['points']:,}", *(seconds(s["seconds"][n]) for n in names)]
                 for s in steps])
    print("slope, ms per 1,000 batches (with versions and points grown in proportion): "
          + "; ".join(f"{name} {slope:+.{0 if abs(slope) >= 10 else 3}f}" for name, slope in slopes.items()))
    path = write_report("growth", {"repeats": args.repeats, "id_column": args.id_column, "monitor_repeats": args.monitor_repeats, "steps": steps,
                                   "slope_ms_per_1000_batches": slopes, "load_average_at_end": list(os.getloadavg())},
                        Path(args.output) if args.output else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
