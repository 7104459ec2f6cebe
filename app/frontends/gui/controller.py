"""The controller: the one place where the GUI calls the service layer.

It owns the Keel service object, the job runner and the current project. Every
action runs as a job (off the GUI thread); results come back through signals on
the GUI thread. Views connect to its signals and call its methods; they never
call core themselves, except for quick reads through the service object `keel`.
"""

import gc
import importlib
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from app.core.domain.results import (
    FilesIngested,
    IngestResult,
    MonitorOutcome,
    ProductionChange,
    ProductionOverview,
    ProjectCreated,
    SweptFile,
    TrainResult,
)
from app.core.domain.traffic import LabelsAdded
from app.demo import DEMO_PROJECT
from app.frontends.gui.jobs import Job, JobRunner, call_in_child

if TYPE_CHECKING:
    from app.adapters.scheduling import MonitorScheduler
    from app.adapters.serving import ServerHandle
    from app.core.domain.handoff import PushResult
    from app.core.domain.upkeep import DemoCreated
    from app.core.services.lifecycle import Keel

log = logging.getLogger("keel.ui")

WRITE_KINDS = ("train", "deploy", "rollback", "ingest", "monitor", "demo", "create", "settings", "archive",
               "import", "delete", "approve", "acknowledge", "inbox", "labels")
DEPLOY_KINDS = ("deploy", "rollback", "approve", "archive", "delete", "demo")  # change what is in production
POLL_MS = 1000
POLL_QUEUE = "registry-poll"  # the change stamp, read once a second
CLICK_READS_QUEUE = "click-reads"  # what a click needs before it can show a dialog or a confirmation
PLOT_WARM_SLICE_SECONDS = 0.004  # the GUI thread's share of each event-loop turn while pyqtgraph loads
DEMO_BATCH_MS = 6000  # one demo batch every 6 s; the demo project monitors every 10 s
STARTUP_CHECK_MS, STARTUP_DEFERRALS = 50, 40  # start-up work waits for the filled window, up to 2 s
Result = TypeVar("Result")  # what a job's function returns, and its on_done is given
ErrorCallback = Callable[[str, str], object]  # on_error(one-line message, details)


class Controller(QObject):
    keel_ready = Signal()  # the workspace is open (Keel constructed off the first-paint path)
    plots_ready = Signal()  # pyqtgraph is imported: plots can be built without a stall
    project_changed = Signal(str)  # "" when none is selected
    registry_changed = Signal()  # something in the registry changed (own job or another process)
    jobs_changed = Signal()
    notify = Signal(str, str)  # level (info|warning|error), message
    error = Signal(str, str)  # one-line message, details
    demo_stream_changed = Signal(bool)
    overview_changed = Signal()  # self.overview was read again
    _scheduled = Signal(str)  # scheduler thread -> GUI thread (queued)
    _inbox_waiting = Signal(str)  # scheduler thread -> GUI thread: a project's inbox holds files

    def __init__(self, workspace_dir: str | None, read_only: bool = False, parent: QObject | None = None,
                 start_scheduler: bool = True) -> None:
        super().__init__(parent)
        self.workspace_dir = workspace_dir
        self.read_only = read_only
        self.start_scheduler = start_scheduler
        self.keel: Keel | None = None  # set once the workspace is open (keel_ready)
        self.project: str = ""
        self.last_ingest_outcome: FilesIngested | None = None  # the last multi-file Add data
        self.overview: ProductionOverview | None = None  # of the current project, read on a worker
        self.window_filled: Callable[[], bool] = lambda: True  # the window says when its first view is filled
        self._shut_down = False
        self.runner = JobRunner(self)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.runner.busy_changed.connect(self.jobs_changed)
        # each job's on_done and on_error; a job's result is of its own type (run ties the two together)
        self._callbacks: dict[int, tuple[Callable[[Any], object] | None, ErrorCallback | None]] = {}
        self._stamp: tuple[object, ...] | None = None  # the registry's change stamp when last read
        self._polling = False  # a read of the change stamp is on a worker
        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self.poll_registry)
        self.scheduler: MonitorScheduler | None = None
        self.server: ServerHandle | None = None
        self._scheduled.connect(self._scheduled_monitor, Qt.ConnectionType.QueuedConnection)
        self._inbox_waiting.connect(self._sweep_inbox, Qt.ConnectionType.QueuedConnection)
        self._demo_timer = QTimer(self)
        self._demo_timer.setInterval(DEMO_BATCH_MS)
        self._demo_timer.timeout.connect(self.drop_demo_batch)
        self.project_changed.connect(self.read_overview)
        self.registry_changed.connect(self.read_overview)
        self.keel_ready.connect(self.read_overview)

    @property
    def opened_keel(self) -> "Keel":
        """The workspace's Keel, for work started once it is open (the actions are disabled before)."""
        if self.keel is None:
            raise RuntimeError("the workspace is not open yet")
        return self.keel

    # ------------------------------------------------------------------ opening / closing
    def open_keel(self) -> None:
        """Construct Keel (imports pandas and the registry) on a worker; keel_ready fires on the GUI thread."""
        def load(job: Job) -> "tuple[Keel, tuple[object, ...]]":
            from app.core.services.lifecycle import Keel

            keel = Keel.open(self.workspace_dir)
            return keel, keel.change_stamp()

        self.run("workspace", "open", "Opening the workspace", load, on_done=self._keel_loaded)

    def _keel_loaded(self, opened: "tuple[Keel, tuple[object, ...]]") -> None:
        from app.logs import setup_logging

        keel, self._stamp = opened
        setup_logging(keel.log_path)  # tracebacks of failed jobs go to this workspace's log
        self.keel = keel
        self.workspace_dir = str(keel.root)
        self._poll.start()
        self.keel_ready.emit()
        self._start_deferrals, self._filled_before = 0, False
        QTimer.singleShot(0, self._after_first_reads)

    def _after_first_reads(self) -> None:
        """What the GUI thread does once the first reads have filled the window (waiting up to 2 s), not
        before: start the monitoring scheduler (importing and starting APScheduler, ~0.25 s), then import
        pyqtgraph (~0.5 s) once, when the workspace has been shown, not when a plot opens."""
        if self._shut_down:
            return
        reading = any(job.kind in ("open", "read") for job in self.runner.active_jobs())
        filled = not reading and self.window_filled()
        if not (filled and self._filled_before) and self._start_deferrals < STARTUP_DEFERRALS:
            self._filled_before = filled  # filled at two checks in a row: the filled window has painted between
            self._start_deferrals += 1
            QTimer.singleShot(STARTUP_CHECK_MS, self._after_first_reads)
            return
        self._start_scheduler()
        QTimer.singleShot(0, self._import_plotting)  # a turn of the event loop between the two

    def _import_plotting(self) -> None:
        """pyqtgraph in slices: first the Qt classes its import asks for (PySide6 creates each on first
        access; a few ms per event-loop turn), then the import itself (~70-80 ms: the part that cannot
        be split; ~150-200 ms unsliced). On the GUI thread: importing pyqtgraph on a worker while the
        window created Qt enums (PySide6 creates them lazily, not thread-safely) crashed the process."""
        from app.frontends.gui import plots

        pending = plots.qt_binding_names()

        def next_slice() -> None:
            if self._shut_down:
                return
            if not plots.warm_qt_bindings(pending, PLOT_WARM_SLICE_SECONDS):
                QTimer.singleShot(0, self, next_slice)
                return
            importlib.import_module("pyqtgraph")
            gc.freeze()  # what start-up loaded stays: full collections need not scan it again
            self.plots_ready.emit()

        QTimer.singleShot(0, self, next_slice)

    def stop_scheduler(self) -> None:
        if self.scheduler is not None:
            scheduler, self.scheduler = self.scheduler, None
            try:
                scheduler.shutdown()
            except Exception:
                log.exception("scheduler shutdown failed")

    def restart_after_restore(self) -> None:
        """The registry and files were replaced under this window: schedules and views start over."""
        self._start_scheduler()
        self._changed()

    def shutdown(self) -> None:
        self._shut_down = True  # the start-up work still waiting for the window is dropped
        self._poll.stop()
        self._demo_timer.stop()
        self.stop_scheduler()
        self.stop_server()
        self.runner.shutdown()
        if self.keel is not None:
            self.keel.close()

    # ------------------------------------------------------------------ state
    def set_project(self, name: str) -> None:
        if name != self.project:
            self.project = name or ""
            self.project_changed.emit(self.project)

    def read_overview(self, *_: object) -> None:
        """Read what the production actions depend on off the GUI thread; overview_changed when it is in."""
        name = self.project
        if self.overview is None or name != self.overview.project:
            self.overview = None
            self.overview_changed.emit()
        if self.keel is None or not name:
            return

        def done(overview: ProductionOverview) -> None:
            if name == self.project:
                self.overview = overview
                self.overview_changed.emit()

        def failed(message: str, details: str) -> None:  # e.g. deleted by another process meanwhile
            log.warning("reading the production state of %s failed: %s", name, message)

        keel = self.keel
        self.run("overview", "read", f"Reading {name}", lambda job: keel.production_overview(name),
                 on_done=done, on_error=failed)

    def busy(self, kinds: tuple[str, ...] = WRITE_KINDS, project: str | None = None) -> bool:
        return self.runner.is_busy(project if project is not None else self.project, kinds)

    def can_write(self) -> bool:
        return self.keel is not None and not self.read_only

    def poll_registry(self) -> None:
        """Another process (CLI, server, runner) may have written: refresh when the stamp moves.
        The stamp is read on a worker (it counts rows); one read at a time."""
        self._read_stamp(announce_change=True)

    def _changed(self) -> None:
        """This window wrote: every view refreshes now, and the stamp is brought up to date quietly,
        so that the next poll does not take this window's own write for another process's."""
        self.registry_changed.emit()
        self._read_stamp(announce_change=False)

    def _read_stamp(self, announce_change: bool) -> None:
        if self.keel is None or (self._polling and announce_change):
            return
        keel = self.keel
        self._polling = True

        def done(stamp: tuple[object, ...]) -> None:
            self._polling = False
            if keel is not self.keel or stamp == self._stamp:
                return
            self._stamp = stamp
            if announce_change:
                self.registry_changed.emit()

        def failed(message: str, details: str) -> None:
            self._polling = False
            log.warning("registry poll failed: %s", message)

        self.run(POLL_QUEUE, "read", "Checking the registry for changes", lambda job: keel.change_stamp(),
                 on_done=done, on_error=failed, announce=False)

    def read_for_click(self, title: str, read: "Callable[[Keel], Result]", then: Callable[[Result], object]) -> Job | None:
        """What a click needs before it can show anything (a dialog's choices, a confirmation's counts),
        read on a worker: read(keel) there, then(result) on the GUI thread, unless the workspace or the
        project changed meanwhile (the answer would be about something no longer on show)."""
        keel, name = self.keel, self.project
        if keel is None:
            return None

        def done(result: Result) -> None:
            if keel is self.keel and name == self.project:
                then(result)

        return self.run(CLICK_READS_QUEUE, "read", title, lambda job: read(keel), project=name or None, on_done=done)

    # ------------------------------------------------------------------ jobs
    def run(self, queue: str, kind: str, title: str, fn: Callable[[Job], Result], project: str | None = None,
            cancellable: bool = False, on_done: Callable[[Result], object] | None = None,
            on_error: ErrorCallback | None = None, announce: bool = True) -> Job:
        """A job; announce=False: one the window need not redraw for (jobs_changed is not emitted)."""
        job = self.runner.submit(queue, kind, title, fn, project=project, cancellable=cancellable, announce=announce)
        self._callbacks[job.id] = (on_done, on_error)
        return job

    def _on_finished(self, job: Job, result: object) -> None:
        on_done, _ = self._callbacks.pop(job.id, (None, None))
        if on_done is not None:
            on_done(result)
        if job.kind in WRITE_KINDS:
            self._changed()

    def _on_failed(self, job: Job, message: str, details: str) -> None:
        _, on_error = self._callbacks.pop(job.id, (None, None))
        if on_error is not None:
            on_error(message, details)
        else:
            self.error.emit(f"{job.title} failed: {message}", details)
        if job.kind in WRITE_KINDS:
            self._changed()

    def _on_cancelled(self, job: Job) -> None:
        self._callbacks.pop(job.id, None)
        saved = "a retrain under way was stopped, none of it saved" if job.kind == "monitor" else "nothing was saved"
        self.notify.emit("info", f"{job.title}: cancelled; {saved}")

    def _write(self, kind: str, title: str, fn: Callable[[Job], Result],
               on_done: Callable[[Result], object] | None = None, cancellable: bool = False,
               project: str | None = None, on_error: ErrorCallback | None = None) -> Job | None:
        """A job that changes the workspace: refused in read-only mode, serial per project."""
        if not self.can_write():
            self.notify.emit("warning", "This window is read-only: another Keel window holds the workspace.")
            return None
        project = self.project if project is None else project
        return self.run(project or "workspace", kind, title, fn, project=project or None,
                        cancellable=cancellable, on_done=on_done, on_error=on_error)

    # ------------------------------------------------------------------ actions
    def create_demo(self) -> Job | None:
        def work(job: Job) -> "DemoCreated":
            from app.demo.demo_project import create_demo

            return create_demo(self.opened_keel, progress=job.report)

        def done(result: "DemoCreated") -> None:
            self.notify.emit("info", f"Demo project {result.project} is ready: v{result.version} in production. "
                                     "New batches arrive every few seconds (Model > Play demo stream stops them).")
            self.set_project(result.project)
            if self.start_scheduler:
                self.set_demo_stream(True)

        return self._write("demo", "Building the demo project", work, on_done=done, project="")

    def create_project(self, name: str, path: str, target: str, task: str, settings: dict,
                       on_done: Callable[[ProjectCreated], object] | None = None,
                       on_error: ErrorCallback | None = None) -> Job | None:
        def work(job: Job) -> ProjectCreated:
            job.report(0.1, "reading and validating the file")
            return self.opened_keel.create_project(name, path, target, task, settings)

        def done(result: ProjectCreated) -> None:
            self.notify.emit("info", f"Project {name} created ({result.rows} rows).")
            self.set_project(name)
            if on_done:
                on_done(result)

        return self._write("create", f"Creating project {name}", work, on_done=done, project=name, on_error=on_error)

    def retrain(self) -> Job | None:
        name = self.project

        def work(job: Job) -> tuple[TrainResult, str]:
            # in a child process: choosing an adaptive window fits candidate models, and that, the
            # imports it needs and the reading of the rows would hold this process's GIL for long stretches
            job.report(0.01, "starting the training process")
            trained: TrainResult = call_in_child(job, str(self.opened_keel.root), "train", name,
                                                 reason="retrained from the desktop app", takes_cancel_event=True)
            return trained, self.opened_keel.project(name).metric  # the metric for the notice, read here

        def done(outcome: tuple[TrainResult, str]) -> None:
            trained, metric = outcome
            value = trained.metrics.get(metric)
            shown = f"{value:.4f}" if isinstance(value, float) else "n/a"
            self.notify.emit("info", f"{name}: v{trained.version} trained ({metric} {shown}). Deploy it from Models.")

        return self._write("train", f"Training {name}", work, on_done=done, cancellable=True)

    def deploy(self, version: int) -> Job | None:
        name = self.project

        def done(result: ProductionChange) -> None:
            self.notify.emit("info", f"{name}: v{result.production_version} is now in production.")

        return self._write("deploy", f"Deploying {name} v{version}",
                           lambda job: self.opened_keel.deploy(name, version, by="user", reason="deployed from the desktop app"),
                           on_done=done)

    def rollback(self, to_version: int | None = None) -> Job | None:
        name = self.project

        def done(result: ProductionChange) -> None:
            self.notify.emit("info", f"{name}: rolled back from v{result.previous_version} "
                                     f"to v{result.production_version}.")

        return self._write("rollback", f"Rolling back {name}",
                           lambda job: self.opened_keel.rollback(name, to_version=to_version), on_done=done)

    def ingest(self, path: str) -> Job | None:
        name = self.project

        def work(job: Job) -> IngestResult:
            job.report(0.0, f"reading {Path(path).name}")
            return self.opened_keel.ingest(name, path, progress=job.report, cancel_event=job.cancel_event)

        def done(result: IngestResult) -> None:
            if result.duplicate_of:
                self.notify.emit("info", f"{Path(path).name}: same content as dataset v{result.duplicate_of}; nothing stored.")
            else:
                warnings = f" ({len(result.warnings)} warning(s), see Data)" if result.warnings else ""
                self.notify.emit("info", f"{name}: dataset v{result.dataset_version} added, {result.rows} rows{warnings}.")

        return self._write("ingest", f"Adding {Path(path).name} to {name}", work, on_done=done, cancellable=True)

    def add_labels(self, path: str) -> Job | None:
        """Late labels (`keel labels`): joined by ID; the counts reported as one notice."""
        name = self.project

        def work(job: Job) -> LabelsAdded:
            job.report(0.1, f"joining {Path(path).name} by ID")
            return self.opened_keel.labels.add_labels(name, path)

        def done(result: LabelsAdded) -> None:
            stored = f"dataset v{result.dataset_version}" if result.dataset_version else "nothing stored"
            self.notify.emit("info", f"{name}: {result.joined} label(s) joined ({stored}); "
                                     f"{result.unknown} unknown, {result.duplicate} duplicate, "
                                     f"{result.already_labelled} already labelled.")

        return self._write("labels", f"Adding labels from {Path(path).name} to {name}", work, on_done=done)

    def ingest_files(self, paths: list[str]) -> Job | None:
        """Each file its own batch, in the order given, under one progress bar; a summary at the end."""
        name = self.project
        files = [str(p) for p in paths]
        if len(files) == 1:
            return self.ingest(files[0])

        def done(outcome: FilesIngested) -> None:
            text = f"{name}: {outcome.summary()}."
            if outcome.refused:
                refused = "; ".join(f"{r.file}: {r.reason}" for r in outcome.refused[:3])
                more = f" (and {len(outcome.refused) - 3} more)" if len(outcome.refused) > 3 else ""
                text += f" Refused — {refused}{more}. Each refusal is in Activity."
            self.last_ingest_outcome = outcome
            self.notify.emit("warning" if outcome.refused else "info", text)

        return self._write("ingest", f"Adding {len(files)} files to {name}",
                           lambda job: self.opened_keel.batches.ingest_files(name, files, progress=job.report,
                                                            cancel_event=job.cancel_event),
                           on_done=done, cancellable=True)

    def train_and_deploy_first(self, name: str) -> Job | None:
        """A new project's first model: train v1 and put it in production (the wizard's default). The
        training runs in a child process, as Retrain's: Cancel ends it, nothing saved."""
        def work(job: Job) -> TrainResult:
            job.report(0.01, "starting the training process")
            result: TrainResult = call_in_child(job, str(self.opened_keel.root), "train", name, takes_cancel_event=True,
                                                reason="first model, from the new-project wizard")
            job.report(0.97, f"deploying v{result.version}")
            self.opened_keel.deploy(name, result.version, by="user", reason="first model, from the new-project wizard")
            return result

        def done(result: TrainResult) -> None:
            self.notify.emit("info", f"{name}: v{result.version} trained and in production.")

        return self._write("train", f"Training and deploying the first model of {name}", work, on_done=done,
                           cancellable=True, project=name)

    def monitor_now(self) -> Job | None:
        return self.monitor(self.project, by="user")

    def monitor(self, name: str, by: str = "user") -> Job | None:
        """A monitoring cycle (inbox sweep first). Also what the scheduler submits."""
        def work(job: Job) -> MonitorOutcome:
            job.report(0.02, "starting the monitoring process")
            # cancellable (Cancel, closing the window): a policy retrain under way stops, none of it saved
            return call_in_child(job, str(self.opened_keel.root), "policy.monitor", name, by=by,
                                 takes_cancel_event=True)

        def done(result: MonitorOutcome) -> None:
            text = f"{name}: monitoring checked {len(result.batches)} new batch(es)"
            if result.alerts_opened:
                text += f"; {len(result.alerts_opened)} alert(s) opened"
                self.notify.emit("warning", text + ".")
            elif result.batches or by == "user":
                self.notify.emit("info", text + f"; decision: {result.decision}.")

        return self._write("monitor", f"Monitoring {name}", work, on_done=done, project=name, cancellable=True)

    def approve(self) -> Job | None:
        name = self.project
        return self._write("approve", f"Approving the challenger of {name}", lambda job: self.opened_keel.policy.approve(name),
                           on_done=lambda r: self.notify.emit("info", f"{name}: v{r.production_version} deployed."))

    def acknowledge(self, alert_id: int) -> Job | None:
        name = self.project
        return self._write("acknowledge", f"Acknowledging alert {alert_id}",
                           lambda job: self.opened_keel.acknowledge_alert(name, alert_id))

    def archive(self, version: int, archived: bool = True) -> Job | None:
        name = self.project
        return self._write("archive", f"{'Archiving' if archived else 'Restoring'} v{version}",
                           lambda job: self.opened_keel.archive_version(name, version, archived))

    def export(self, version: int, destination: str) -> Job | None:
        name = self.project
        return self.run(name, "export", f"Exporting v{version}",
                        lambda job: self.opened_keel.export_model(name, version, destination), project=name,
                        on_done=lambda r: self.notify.emit("info", f"v{version} exported to {r.path}."))

    def export_report(self, destination: str) -> Job:
        """The production model's report (model card, then its monitoring) written to destination."""

        name = self.project
        return self.run(name, "export", f"Writing the report of {name}",
                        lambda job: self.opened_keel.reports.write_report(name, destination), project=name,
                        on_done=lambda r: self.notify.emit("info", f"Report of v{r.version} written to {r.output}."))

    def export_mlflow(self, version: int, destination: str) -> Job:

        name = self.project
        return self.run(name, "export", f"Exporting v{version} as an MLflow model",
                        lambda job: self.opened_keel.mlflow.export_mlflow(name, version, destination), project=name,
                        on_done=lambda r: self.notify.emit("info", f"v{version} exported as an MLflow model to {r.path}."))

    def push_mlflow(self, tracking_uri: str) -> Job:
        from app.adapters import mlflow_push

        name = self.project

        def done(result: "PushResult") -> None:
            self.notify.emit("info", f"{name}: {len(result.versions)} version(s) on {result.tracking_uri}, "
                                     f"{result.added} change(s).")

        return self.run(name, "export", f"Pushing {name} to MLflow",
                        lambda job: mlflow_push.push(self.opened_keel, name, tracking_uri, all_versions=True), project=name,
                        on_done=done)

    def check_model_file(self, path: str, on_done: Callable[[list[str]], object]) -> Job:
        """The types in a model file outside Keel's trusted list (read on a worker: skops is slow to import)."""
        def work(job: Job) -> list[str]:
            from app.core.ml.artifacts import untrusted_types

            return untrusted_types(Path(path))

        return self.run(self.project or "workspace", "read", f"Checking {Path(path).name}", work,
                        project=self.project, on_done=on_done)

    def import_model(self, path: str, accept_types: list[str] | None = None) -> Job | None:
        name = self.project
        return self._write("import", f"Importing {Path(path).name}",
                           lambda job: self.opened_keel.import_model(name, path, accept_types),
                           on_done=lambda r: self.notify.emit("info", f"{name}: imported as v{r.version}."))

    def delete_project(self, name: str) -> Job | None:
        def done(_: None) -> None:
            self.notify.emit("info", f"Project {name} deleted.")
            if self.project == name:
                self.set_project("")

        return self._write("delete", f"Deleting {name}", lambda job: self.opened_keel.delete_project(name), on_done=done,
                           project=name)

    def check_settings(self, name: str, changes: dict, answer: Callable[[str], object]) -> Job | None:
        """The core's check of a settings change, on a worker: answer("") when it passes, else
        answer(what is wrong), on the GUI thread."""
        from app.core.domain.errors import KeelError

        keel = self.keel
        if keel is None:
            return None

        def check(job: Job) -> str:
            try:
                keel.check_settings(name, changes, replace_params=True)
            except KeelError as exc:  # a value to fix, not a failed job
                return str(exc)
            return ""

        return self.run(CLICK_READS_QUEUE, "read", f"Checking the settings of {name}", check, project=name,
                        on_done=answer, on_error=lambda message, details: answer(message))

    def save_settings(self, changes: dict) -> Job | None:
        name = self.project

        def done(_: object) -> None:
            self.notify.emit("info", f"{name}: settings saved.")
            self._rebuild_scheduler()

        return self._write("settings", f"Saving settings of {name}", lambda job: self.opened_keel.set_project(name, changes, replace_params=True),
                           on_done=done)

    # ------------------------------------------------------------------ the demo stream
    def set_demo_stream(self, playing: bool) -> None:
        """Drop the demo project's next batch into its inbox every few seconds; the schedule monitors it."""
        if playing and not self.can_write():
            self.notify.emit("warning", "The demo data stream needs a writable window (this one is read-only).")
            playing = False
        if playing:
            self._demo_timer.start()
            self.drop_demo_batch()
        else:
            self._demo_timer.stop()
        self.demo_stream_changed.emit(playing)

    def demo_stream_playing(self) -> bool:
        return self._demo_timer.isActive()

    def drop_demo_batch(self) -> Job | None:
        if not self.can_write():
            return None
        if self.runner.is_busy(DEMO_PROJECT, ("demo_drop",)):
            return None

        def done(dropped: bool) -> None:
            if not dropped:
                self.set_demo_stream(False)
                self.notify.emit("info", "The demo stream has played all its batches. Model > Reset demo replays it.")

        from app.demo import demo_stream  # numpy and pandas: kept off the start-up path

        return self.run("demo-stream", "demo_drop", "Dropping a demo batch into the inbox",
                        lambda job: demo_stream.drop_next_demo_batch(self.opened_keel), project=DEMO_PROJECT, on_done=done)

    def reset_demo(self) -> Job | None:
        from app.demo import demo_stream

        def done(result: "DemoCreated") -> None:
            self.notify.emit("info", f"Demo reset: v{result.version} in production, the stream starts over.")
            self.set_project(result.project)

        return self._write("demo", "Resetting the demo project", lambda job: demo_stream.reset_demo(self.opened_keel, progress=job.report),
                           on_done=done, project=DEMO_PROJECT)

    # ------------------------------------------------------------------ scheduler and server
    def _start_scheduler(self) -> None:
        if self.read_only or not self.start_scheduler:
            return
        from app.adapters.scheduling import MonitorScheduler

        try:
            self.scheduler = MonitorScheduler(self.opened_keel, self._scheduled_submit,
                                              submit_sweep=self._inbox_waiting.emit)
            self.scheduler.start()
        except Exception:
            log.exception("the monitoring scheduler did not start")
            self.scheduler = None
            self.notify.emit("warning", "The monitoring scheduler did not start (see logs/keel.log).")

    def _scheduled_submit(self, project_name: str) -> None:
        """Called on a scheduler thread: only hand the request to the GUI thread."""
        self._scheduled.emit(project_name)

    @Slot(str)
    def _scheduled_monitor(self, project_name: str) -> None:
        if self.scheduler is None:  # stopped (the window is closing) after this request was queued
            return
        if self.runner.is_busy(project_name, ("monitor",)):
            return  # one monitoring cycle per project at a time; the next tick catches up
        if self.can_write():
            self.monitor(project_name, by="scheduler")  # as the headless runner records it

    @Slot(str)
    def _sweep_inbox(self, project_name: str) -> Job | None:
        """Every few seconds while a project's inbox holds files: a sweep in a child process (a big
        file is read there, not on this thread's GIL). A monitoring cycle sweeps first anyway."""
        if self.scheduler is None or not self.can_write():
            return None
        if self.runner.is_busy(project_name, ("monitor", "inbox")):
            return None

        def work(job: Job) -> list[SweptFile] | None:
            swept: list[SweptFile] | None = call_in_child(job, str(self.opened_keel.root), "inbox.sweep", project_name,
                                                          by="scheduler")
            return swept

        def done(results: list[SweptFile] | None) -> None:
            taken = [r for r in results or [] if r.status != "rejected"]
            rejected = [r for r in results or [] if r.status == "rejected"]
            if rejected:
                self.notify.emit("warning", f"{project_name}: inbox file(s) rejected: "
                                            + ", ".join(f"{r.file} ({r.reason})" for r in rejected))
            elif taken:
                self.notify.emit("info", f"{project_name}: " + ", ".join(
                    f"{r.file} -> dataset v{r.dataset_version}" for r in taken) + ".")

        def failed(message: str, details: str) -> None:  # busy elsewhere, or a full disk: the next tick tries again
            log.warning("inbox sweep of %s: %s", project_name, message)

        return self._write("inbox", f"Inbox of {project_name}", work, on_done=done, project=project_name,
                           on_error=failed)

    def _rebuild_scheduler(self) -> None:
        if self.scheduler is not None:
            try:
                self.scheduler.rebuild()
            except Exception:
                log.exception("scheduler rebuild failed")

    def next_run_times(self) -> dict[str, datetime | None]:
        if self.scheduler is None:
            return {}
        try:
            return dict(self.scheduler.next_run_times())
        except Exception:
            log.exception("next_run_times failed")
            return {}

    def start_server(self) -> None:
        from app.adapters.serving import start_server

        name = self.project
        self.stop_server()

        def work(job: Job) -> "ServerHandle":
            return start_server(self.workspace_dir, name)

        def done(handle: "ServerHandle") -> None:
            self.server = handle
            self.notify.emit("info", f"Serving {name} at {handle.url}")
            self.registry_changed.emit()

        self.run("server", "serve", f"Starting the scoring server for {name}", work, project=name, on_done=done)

    def stop_server(self) -> None:
        if self.server is not None:
            handle, self.server = self.server, None
            handle.stop()
