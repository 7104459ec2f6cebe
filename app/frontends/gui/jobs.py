"""The job runner: core calls on worker threads, results back on the GUI thread.

One serial queue per key (a project name, usually), so two retrains of the same
project never race; different projects run side by side. Workers never touch a
widget: they post events through a queued signal to the runner, which lives on
the GUI thread and re-emits them as started / progress / finished / failed /
cancelled.

A job function takes the Job and returns a result. Long work checks
`job.cancel_event` (or hands it to the core, e.g. `Keel.train(cancel_event=...)`),
and reports with `job.report(fraction, message)`.
"""

import gc
import itertools
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from app.core.domain.errors import Cancelled, KeelError

if TYPE_CHECKING:
    from app.core.ml.childproc import ChildQueue

log = logging.getLogger("keel.jobs")

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
# While workers run Python code beside the GUI thread, they hand the GIL back after 1 ms, so
# the GUI thread waits at most that long for it (Python's default, 5 ms, is a third of a frame).
WORKER_SWITCH_INTERVAL = 0.001
# how often the GUI thread collects what automatic collection would have: the young objects of 100 ms of
# every thread's allocations take a few ms (those of 250 ms took up to 16 ms in one turn)
GARBAGE_COLLECTION_MS = 100


@dataclass(eq=False)
class Job:
    queue: str
    kind: str
    title: str
    fn: Callable[["Job"], object]
    project: str | None = None
    cancellable: bool = False
    id: int = 0  # numbered by its runner: 1, 2, ...
    state: str = QUEUED
    fraction: float = 0.0
    message: str = ""
    result: object = None  # what fn returned (its caller, Controller.run, knows its type)
    error: str = ""
    details: str = ""
    cancel_event: threading.Event = field(default_factory=threading.Event)
    started_at: float | None = None  # time.monotonic() when it started running
    announce: bool = True  # busy_changed is emitted when it starts and ends (False: a routine background read)
    _post: Callable | None = field(default=None, repr=False)

    def report(self, fraction: float, message: str = "") -> None:
        """Called from the worker thread: forwarded to the GUI thread."""
        if self._post is not None:
            self._post(self, "progress", (max(0.0, min(1.0, float(fraction))), message))

    @property
    def active(self) -> bool:
        return self.state in (QUEUED, RUNNING)


class _WhileRunnersAreOpen:
    """Two process-wide interpreter settings that hold while any job runner is open, and are put back
    once the last one is shut down:

    - the switch interval is WORKER_SWITCH_INTERVAL, so the GUI thread waits at most that long for
      the GIL while workers run Python code;
    - automatic garbage collection is off, and each runner collects on the GUI thread from a timer
      (as pyqtgraph's GarbageCollector does). An automatic collection runs on whichever thread
      allocates; on a worker it can free a Qt wrapper whose QObject::disconnect takes Qt's connection
      lock and then waits for the GIL, while the GUI thread holds the GIL and waits for that same lock
      (connecting a new label's signals): both threads stop for good."""

    _open_runners = 0
    _switch_interval_before: float | None = None
    _gc_was_enabled = True
    _guard = threading.Lock()

    @classmethod
    def runner_started(cls) -> None:
        with cls._guard:
            if cls._open_runners == 0:
                cls._switch_interval_before = sys.getswitchinterval()
                sys.setswitchinterval(min(cls._switch_interval_before, WORKER_SWITCH_INTERVAL))
                cls._gc_was_enabled = gc.isenabled()
                gc.disable()
            cls._open_runners += 1

    @classmethod
    def runner_stopped(cls) -> None:
        with cls._guard:
            cls._open_runners -= 1
            if cls._open_runners == 0:
                if cls._switch_interval_before is not None:
                    sys.setswitchinterval(cls._switch_interval_before)
                if cls._gc_was_enabled:
                    gc.enable()

    @staticmethod
    def collect_garbage() -> None:
        """The collections the interpreter would have made by now (same thresholds), here."""
        threshold, count = gc.get_threshold(), gc.get_count()
        for generation in (2, 1, 0):
            if count[generation] > threshold[generation]:
                gc.collect(generation)
                return


def describe_error(exc: BaseException) -> str:
    """One line a user can act on."""
    if isinstance(exc, KeelError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"Unexpected error ({type(exc).__name__}){': ' + text if text else ''}. Details are in the log."


class JobRunner(QObject):
    started = Signal(object)
    progress = Signal(object)
    finished = Signal(object, object)
    failed = Signal(object, str, str)
    cancelled = Signal(object)
    busy_changed = Signal()  # the set of active jobs changed

    _event = Signal(object, str, object)  # worker -> GUI thread (queued)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._workers: list[threading.Thread] = []  # the threads of this runner's executors
        self._futures: list[Future] = []
        self._jobs: list[Job] = []
        self._job_numbers = itertools.count(1)
        self._closed = False
        self._event.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)
        _WhileRunnersAreOpen.runner_started()
        self._garbage_clock = QTimer(self)
        self._garbage_clock.setInterval(GARBAGE_COLLECTION_MS)
        self._garbage_clock.timeout.connect(_WhileRunnersAreOpen.collect_garbage)
        self._garbage_clock.start()

    # ---------------------------------------------------------------- public API
    def submit(self, queue: str, kind: str, title: str, fn: Callable[[Job], object], project: str | None = None,
               cancellable: bool = False, announce: bool = True) -> Job:
        if self._closed:
            raise RuntimeError("the job runner is shut down")
        job = Job(queue=queue, kind=kind, title=title, fn=fn, project=project, cancellable=cancellable,
                  announce=announce, id=next(self._job_numbers))
        job._post = self._event.emit
        self._jobs.append(job)
        executor = self._executors.get(queue)
        if executor is None:
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"keel-job-{queue}",
                                          initializer=self._register_worker)
            self._executors[queue] = executor
        self._futures = [future for future in self._futures if not future.done()]
        self._futures.append(executor.submit(self._run, job))
        if announce:
            self.busy_changed.emit()
        return job

    def cancel(self, job: Job) -> None:
        job.cancel_event.set()

    def active_jobs(self, project: str | None = None) -> list[Job]:
        return [j for j in self._jobs if j.active and (project is None or j.project == project)]

    def is_busy(self, project: str | None = None, kinds: tuple[str, ...] | None = None) -> bool:
        return any(kinds is None or j.kind in kinds for j in self.active_jobs(project))

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Cancel everything, wait for the workers to end. True when every thread has stopped."""
        if not self._closed:
            self._garbage_clock.stop()
            _WhileRunnersAreOpen.runner_stopped()
        self._closed = True
        for job in self._jobs:
            job.cancel_event.set()
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=False)
        # every job's future finishes on a worker that registered itself before running it
        _, pending = wait_for_futures(self._futures, timeout)
        stopped = not pending
        for thread in list(self._workers):
            thread.join(timeout)
            stopped = stopped and not thread.is_alive()
        self._executors.clear()
        return stopped

    def _register_worker(self) -> None:
        """Runs first on each new worker thread of this runner."""
        self._workers.append(threading.current_thread())

    # ---------------------------------------------------------------- worker side
    def _run(self, job: Job) -> None:
        post = self._event.emit
        if job.cancel_event.is_set():
            post(job, CANCELLED, None)
            return
        post(job, RUNNING, None)
        try:
            result = job.fn(job)
        except Cancelled:
            post(job, CANCELLED, None)
        except BaseException as exc:  # every failure reaches the GUI as a message, never a crash
            log.error("job %s (%s) failed:\n%s", job.title, job.kind, traceback.format_exc())
            post(job, FAILED, (describe_error(exc), traceback.format_exc()))
        else:
            post(job, DONE, result)

    # ---------------------------------------------------------------- GUI side
    @Slot(object, str, object)
    def _dispatch(self, job: Job, what: str, payload: Any) -> None:  # payload: by `what` (see _run)
        if self._closed:  # shut down: the window that asked for this result is gone
            job.state = what if what != "progress" else job.state
            return
        if what == "progress":
            if job.state == RUNNING:
                job.fraction, job.message = payload
                self.progress.emit(job)
            return
        job.state = what
        if what == RUNNING:
            job.started_at = time.monotonic()
            self.started.emit(job)
            return
        self._jobs.remove(job)
        if what == DONE:
            job.result, job.fraction = payload, 1.0
            self.finished.emit(job, payload)
        elif what == FAILED:
            job.error, job.details = payload
            self.failed.emit(job, job.error, job.details)
        elif what == CANCELLED:
            self.cancelled.emit(job)
        if job.announce:
            self.busy_changed.emit()


# --------------------------------------------------------------------------- work in a child process
# How long a child whose SIGTERM is its cancel may take to stop: a fit stops at once, other work (the rest
# of a monitoring cycle, the files of a training) runs on to its end or to the next fit, which it skips
CANCELLED_CHILD_SECONDS = 60.0


def _child_call(queue: "ChildQueue", workspace_dir: str, method: str, args: tuple[object, ...], kwargs: dict[str, object],
                takes_cancel_event: bool) -> None:
    """Runs in a spawned child: open the workspace, call one Keel method (or a service's: "policy.monitor"),
    send the result back. takes_cancel_event: the method gets a cancel_event that the parent's terminate
    (SIGTERM) sets, and the work it would start in a process of its own (Keel.train's fit, the candidate
    windows) runs in this one, where the SIGTERM interrupts it (childproc.cancel_on_terminate): it stops
    the way it would in-process, its files removed, with no second process start."""
    from app.core.ml.childproc import cancel_on_terminate, report_failure

    try:
        import os

        os.nice(5)  # background work: the GUI process keeps priority on a busy machine
        if takes_cancel_event:
            cancel_event = cancel_on_terminate()
            kwargs = {**kwargs, "cancel_event": cancel_event}
        from app.core.services.lifecycle import Keel
        from app.logs import setup_logging

        keel = Keel.open(workspace_dir)
        setup_logging(keel.log_path)
        if takes_cancel_event and cancel_event.is_set():
            raise Cancelled("cancelled before it started")
        service, _, action = method.rpartition(".")
        target = getattr(keel, service) if service else keel
        result = getattr(target, action)(*args, progress=lambda f, m: queue.put(("progress", f, m)), **kwargs)
        queue.put(("done", result))
    except BaseException as exc:  # every failure goes back to the parent as a message
        report_failure(queue, exc)


def call_in_child(job: Job, workspace_dir: str, method: str, *args: object, takes_cancel_event: bool = False,
                  **kwargs: object) -> Any:  # what the method returns: each caller knows which
    """Keel(workspace_dir).<method>(*args, progress=..., **kwargs) in a spawned process; method may name
    one of Keel's services' methods ("inbox.sweep").

    Work that is mostly Python or long native calls (a monitoring cycle with a policy retrain, the
    candidate windows a training fits to choose its rows) holds the GIL for long stretches; in a
    child process it cannot stall the GUI thread. takes_cancel_event: see _child_call (cancelling
    terminates the child, which then removes what it wrote halfway).
    """
    from app.core.ml.childproc import run_in_child

    return run_in_child(_child_call, (workspace_dir, method, args, kwargs, takes_cancel_event),
                        may_start_children=takes_cancel_event,
                        clean_up_seconds=CANCELLED_CHILD_SECONDS if takes_cancel_event else 2.0,
                        cancel_event=job.cancel_event if job.cancellable else None, progress=job.report,
                        name=f"keel-{method}", cancelled_message=f"{job.title}: cancelled")
