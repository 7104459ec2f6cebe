"""The headless runner (`keel run`) and the monitoring commands of the CLI.

`run` holds the workspace lock (keel.lock: one writer per workspace, docs/design.md), runs
the monitoring schedules (app/adapters/scheduling.py) and one serial queue per project until
Ctrl-C or SIGTERM, then stops cleanly: no new jobs, a policy retrain under way is cancelled
(its fits run in child processes that stop at once; no challenger is left half-registered), the
rest of the running jobs finish (a deployment is never cut half-way), the scheduler shuts down,
the lock is freed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_jobs
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.core.domain.errors import KeelError
from app.core.domain.results import MonitorOutcome, SweptFile
from app.core.services.session import WorkspaceLock
from app.frontends.signals import stop_on_signal

if TYPE_CHECKING:
    from app.adapters.scheduling import MonitorScheduler
    from app.core.services.lifecycle import Keel

# (project, its result or None, the error or None): how a finished job is reported
Report = Callable[[str, Any, Exception | None], None]

log = logging.getLogger("keel.runner")


class ProjectQueues:
    """One single-worker executor per project, running its jobs (monitoring cycles, inbox
    sweeps) one at a time.

    A project with a job of the same kind already waiting does not get a second one (the
    scheduler's coalesce, kept across the queue)."""

    def __init__(self, work: Callable[[str], Any], on_result: Report | None = None,
                 sweep: Callable[[str], list] | None = None, on_sweep: Report | None = None) -> None:
        self.work = work  # work(project) -> result: a monitoring cycle
        self.on_result = on_result or (lambda project, result, error: None)
        self.sweep = sweep  # sweep(project) -> list of inbox results
        self.on_sweep = on_sweep or (lambda project, result, error: None)
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._jobs: set[Future] = set()
        self._waiting: set[tuple[str, str]] = set()
        self._guard = threading.Lock()
        self._closed = False

    def submit(self, project: str) -> bool:
        return self._submit(project, "monitor")

    def submit_sweep(self, project: str) -> bool:
        return self._submit(project, "sweep") if self.sweep is not None else False

    def _submit(self, project: str, kind: str) -> bool:
        with self._guard:
            if self._closed or (project, kind) in self._waiting:
                return False
            self._waiting.add((project, kind))
            executor = self._executors.get(project)
            if executor is None:
                executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"keel-monitor-{project}")
                self._executors[project] = executor
            job = executor.submit(self._run, project, kind)
            self._jobs.add(job)
        job.add_done_callback(self._forget)
        return True

    def _forget(self, job: Future) -> None:
        with self._guard:
            self._jobs.discard(job)

    def _run(self, project: str, kind: str = "monitor") -> None:
        with self._guard:
            self._waiting.discard((project, kind))
        work, report = (self.work, self.on_result) if kind == "monitor" else (self.sweep, self.on_sweep)
        if work is None:  # no sweep function: submit_sweep queues none
            return
        try:
            result, error = work(project), None
        except Exception as exc:  # noqa: BLE001 - report and keep the worker alive
            result, error = None, exc
            if not isinstance(exc, KeelError):
                log.exception("%s of %s failed", "monitoring" if kind == "monitor" else "inbox sweep", project)
        try:
            report(project, result, error)
        except Exception:  # noqa: BLE001
            log.exception("reporting the result of %s failed", project)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop taking jobs, drop the waiting ones, let the running ones finish (up to timeout)."""
        with self._guard:
            self._closed = True
            executors, jobs = list(self._executors.values()), list(self._jobs)
        for executor in executors:
            executor.shutdown(wait=False, cancel_futures=True)
        # A future cancelled by shutdown(cancel_futures=True) never counts as done for
        # concurrent.futures.wait (it is CANCELLED, not CANCELLED_AND_NOTIFIED): waiting on it
        # would never return. Only the jobs that are still to finish are waited for.
        wait_for_jobs([job for job in jobs if not job.cancelled()], timeout=timeout)


def acquire_workspace_lock(keel: Keel) -> WorkspaceLock:
    return WorkspaceLock(keel.root).acquire_or_refuse()


def run(keel: Keel, stop_event: threading.Event | None = None, echo: Callable[[str], None] = print,
        ready: threading.Event | None = None) -> dict:
    """Run the schedules until stop_event is set (or Ctrl-C / SIGTERM in the main thread)."""
    from app.adapters.scheduling import MonitorScheduler

    stop_event = stop_event or threading.Event()
    lock = acquire_workspace_lock(keel)
    try:
        return _run_holding_lock(keel, stop_event, echo, ready, MonitorScheduler)
    finally:
        lock.release()


def _run_holding_lock(keel: Keel, stop_event: threading.Event, echo: Callable[[str], None],
                      ready: threading.Event | None, MonitorScheduler: type[MonitorScheduler]) -> dict:
    restore = _install_signal_handlers(stop_event)
    # stopping cancels a policy retrain under way: its fits are stopped, nothing of it is saved
    queues = ProjectQueues(lambda project: keel.policy.monitor(project, by="scheduler", cancel_event=stop_event),
                           on_result=lambda project, result, error: _echo_monitor(echo, project, result, error),
                           sweep=lambda project: keel.inbox.sweep(project, by="scheduler"),
                           on_sweep=lambda project, result, error: _echo_sweep(echo, project, result, error))
    scheduler = MonitorScheduler(keel, queues.submit, submit_sweep=queues.submit_sweep)
    try:
        projects = sorted(s.project for s in scheduler.schedules() if s.enabled)
        echo(f"Keel runner on {keel.root}: monitoring {len(projects)} project(s) on their schedules. "
             "Ctrl-C to stop.")
        caught_up = scheduler.start()
        if caught_up:
            echo(f"catching up missed runs: {', '.join(caught_up)}")
        if ready is not None:
            ready.set()
        while not stop_event.wait(0.5):
            pass
        echo("Stopping: cancelling a retrain under way, finishing the running jobs...")
    finally:
        scheduler.shutdown(wait=True)
        queues.shutdown()
        restore()
    echo("Keel runner stopped.")
    return {"stopped": True, "projects": projects}


def _install_signal_handlers(stop_event: threading.Event) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, stop_on_signal(stop_event))

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _echo_sweep(echo: Callable[[str], None], project: str, result: list[SweptFile] | None,
                error: Exception | None) -> None:
    """An inbox sweep between monitoring cycles: a line per file taken, nothing when none was."""
    if error is not None or result:
        echo(_describe(project, "\n".join(format_inbox(result or [])), error))


def _echo_monitor(echo: Callable[[str], None], project: str, result: MonitorOutcome | None, error: Exception | None) -> None:
    echo(_describe(project, "" if result is None else format_monitor(result), error))


def _describe(project: str, text: str, error: Exception | None) -> str:
    stamp = datetime.now().strftime("%H:%M:%S")
    if error is not None:
        return f"{stamp} {project}: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    return f"{stamp} {project}: " + text


# --------------------------------------------------------------------------- CLI commands
def format_inbox(items: Iterable[SweptFile]) -> list[str]:
    """A line per file an inbox sweep took or rejected."""
    lines = []
    for item in items:
        if item.status == "rejected":
            lines.append(f"inbox: {item.file} rejected: {item.reason}")
        else:
            lines.append(f"inbox: {item.file} -> dataset v{item.dataset_version}"
                         + (f" (same content as v{item.duplicate_of})" if item.duplicate_of else ""))
    return lines


def format_monitor(result: MonitorOutcome) -> str:
    lines = format_inbox(result.inbox)
    for batch in result.batches:
        measured = f"{batch.metric} {batch.value:.4f}" if batch.value is not None else "no labels"
        estimated = f", estimated {batch.estimated_value:.4f}" if batch.estimated_value is not None else ""
        drifted = ", ".join(batch.drifted_features) or "none"
        lines.append(f"dataset v{batch.dataset_version} ({batch.rows} rows): {measured}{estimated}; "
                     f"drifted: {drifted}")
    for window in result.traffic:
        estimated = (f", estimated {window.metric} {window.estimated_value:.4f}"
                     if window.estimated_value is not None else "")
        drift = f"prediction PSI {window.prediction_drift:.3f}" if window.prediction_drift is not None else ""
        lines.append(f"traffic window {window.id} ({window.rows} rows): {drift}{estimated}; "
                     f"drifted: {', '.join(window.drifted_features) or 'none'}")
    for late in result.late_labels:
        measured = f"{late.metric} {late.value:.4f}" if late.value is not None else "no metric"
        lines.append(f"{late.where}: {measured} on {late.labelled_rows} of {late.rows} rows")
    for alert in result.alerts_opened:
        lines.append(f"alert {alert.id} ({alert.severity}): {alert.message}")
    for recovered in result.alerts_recovered:
        lines.append(f"alert {recovered.id} ({recovered.rule}) recovered")
    if not result.batches:
        lines.append("no new batches to monitor")
    production = f"v{result.production_version}" if result.production_version else "none"
    lines.append(f"decision: {result.decision}" + (f" - {result.message}" if result.message else "")
                 + f"; production {production}")
    return "\n".join(lines)


def register_parser(commands: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    monitor = command("monitor", "sweep the inbox, then one monitoring cycle with the policy applied")
    monitor.add_argument("name")
    monitor.add_argument("--once", action="store_true", required=True,
                         help="one cycle now (the schedules run under `keel run` or the GUI)")
    approve = command("approve", "deploy the challenger waiting for approval")
    approve.add_argument("name")
    command("run", "headless: run the monitoring schedules and inboxes until Ctrl-C")


def _monitor(keel: Keel, args: argparse.Namespace) -> MonitorOutcome | None:
    result = keel.policy.monitor(args.name, by="user")
    if args.json:
        return result
    print(format_monitor(result), flush=True)
    return None


def _run(keel: Keel, args: argparse.Namespace) -> dict | None:
    outcome = run(keel, echo=(lambda line: None) if args.json else (lambda line: print(line, flush=True)))
    return outcome if args.json else None


HANDLERS = {
    ("monitor", None): _monitor,
    ("approve", None): lambda keel, args: keel.policy.approve(args.name),
    ("run", None): _run,
}
