"""Monitoring schedules: APScheduler 3.x jobs rebuilt from the registry's schedules table.

Qt-free: the GUI and the headless runner both use MonitorScheduler, each with its
own `submit(project_name)` that only puts a monitoring job on that project's queue
and returns. A BackgroundScheduler, not QtScheduler: the latter still runs jobs on
pool threads, and on PySide6 its wake-up timer cannot be cancelled.

* One job per project (id "monitor:<name>", replace_existing), coalesce=True,
  max_instances=1, a generous misfire_grace_time.
* rebuild() re-reads the schedules; a watch job calls it when the table changes
  (e.g. `keel project set NAME --schedule ...` from another process).
* start() catches up: a project whose last run is older than one period (the
  machine slept, the app was closed) or that never ran gets a run at once.
* A project without a production model is not submitted (nothing to monitor);
  its run is still recorded.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from app.core.domain.entities import Schedule
from app.core.domain.upkeep import UpkeepDone
from app.core.services.lifecycle import Keel

log = logging.getLogger("keel.scheduling")

JOB_PREFIX = "monitor:"
WATCH_JOB = "keel:watch-schedules"
INBOX_JOB = "keel:sweep-inboxes"
WATCH_SECONDS = 5
UPKEEP_JOB = "keel:upkeep"
UPKEEP_SECONDS = 60
INBOX_SWEEP_SECONDS = 3.0
INBOX_SWEEP_ENV = "KEEL_INBOX_SWEEP_SECONDS"
MISFIRE_GRACE_SECONDS = 3600


def make_trigger(kind: str, expression: str) -> IntervalTrigger | CronTrigger:
    if kind == "interval":
        return IntervalTrigger(seconds=int(expression))
    return CronTrigger.from_crontab(expression)


def parse_utc(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def missed_run(schedule: Schedule, now: datetime) -> bool:
    """True when a run fell due between the last run and now (or there was never one)."""
    last = parse_utc(schedule.last_run_at)
    if last is None:
        return True
    if schedule.kind == "interval":
        return now - last >= timedelta(seconds=int(schedule.expression))
    due = make_trigger(schedule.kind, schedule.expression).get_next_fire_time(None, last + timedelta(seconds=1))
    return due is not None and due <= now


def inbox_sweep_seconds() -> float:
    """How often the inboxes are looked at: $KEEL_INBOX_SWEEP_SECONDS, default 3."""
    import os

    text = os.environ.get(INBOX_SWEEP_ENV, "").strip()
    try:
        value = float(text) if text else INBOX_SWEEP_SECONDS
    except ValueError:
        log.warning("$%s=%r is not a number of seconds: using %g", INBOX_SWEEP_ENV, text, INBOX_SWEEP_SECONDS)
        return INBOX_SWEEP_SECONDS
    return value if value > 0 else INBOX_SWEEP_SECONDS


class MonitorScheduler:
    """submit(project) queues a monitoring cycle. submit_sweep(project), if given, queues an inbox
    sweep: every few seconds each monitored project whose inbox holds files gets one, so a finished
    file waits seconds for its ingestion, not a schedule period."""

    def __init__(self, keel: Keel, submit: Callable[[str], object], watch_seconds: float = WATCH_SECONDS,
                 submit_sweep: Callable[[str], object] | None = None, sweep_seconds: float | None = None) -> None:
        self.keel = keel
        self.submit = submit
        self.submit_sweep = submit_sweep
        self.sweep_seconds = inbox_sweep_seconds() if sweep_seconds is None else sweep_seconds
        self.watch_seconds = watch_seconds
        self.scheduler = BackgroundScheduler(job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS})
        self._fingerprint: list[tuple] | None = None  # the schedules the jobs were built from

    # ----------------------------------------------------------------- lifecycle
    def start(self, catch_up: bool = True) -> list[str]:
        """Build the jobs, start the scheduler, and submit the missed runs; returns those projects."""
        self.rebuild()
        self.scheduler.add_job(self.refresh_if_changed, IntervalTrigger(seconds=self.watch_seconds),
                               id=WATCH_JOB, replace_existing=True)
        # scheduled backups and retention (workspace settings); the first check a minute after start
        self.scheduler.add_job(self._upkeep, IntervalTrigger(seconds=UPKEEP_SECONDS), id=UPKEEP_JOB,
                               replace_existing=True)
        if self.submit_sweep is not None:
            self.scheduler.add_job(self.sweep_waiting_inboxes, IntervalTrigger(seconds=self.sweep_seconds),
                                   id=INBOX_JOB, replace_existing=True)
        self.scheduler.start()
        caught_up = self.catch_up() if catch_up else []
        log.info("scheduler started: %d monitoring job(s), catch-up for %s", len(self._project_jobs()), caught_up or "none")
        return caught_up

    def shutdown(self, wait: bool = True) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)

    @property
    def running(self) -> bool:
        return self.scheduler.running

    # ----------------------------------------------------------------- jobs
    def schedules(self) -> list[Schedule]:
        return self.keel.schedules()

    def rebuild(self) -> None:
        """Make the jobs match the registry: add, replace or remove one job per project."""
        schedules = self.schedules()
        wanted = set()
        for schedule in schedules:
            if not schedule.enabled:
                continue
            job_id = JOB_PREFIX + schedule.project
            wanted.add(job_id)
            current = self.scheduler.get_job(job_id)
            if current is not None and current.kwargs.get("signature") == _signature(schedule):
                continue  # unchanged: keep its next run time
            self.scheduler.add_job(self._fire, make_trigger(schedule.kind, schedule.expression), id=job_id,
                                   kwargs={"project": schedule.project, "signature": _signature(schedule)},
                                   replace_existing=True, name=f"monitor {schedule.project}")
        for job in self._project_jobs():
            if job.id not in wanted:
                job.remove()
        self._fingerprint = [_signature(s) for s in schedules]

    def refresh_if_changed(self) -> bool:
        try:
            fingerprint = [_signature(s) for s in self.schedules()]
        except Exception:  # noqa: BLE001 - a busy or closing registry: try again at the next tick
            log.exception("could not read the schedules")
            return False
        if fingerprint == self._fingerprint:
            return False
        self.rebuild()
        return True

    def catch_up(self, now: datetime | None = None) -> list[str]:
        now = now or self.keel.clock.moment()
        missed = [s.project for s in self.schedules() if s.enabled and missed_run(s, now)]
        for project in missed:
            self._fire(project)
        return missed

    def next_run_times(self) -> dict[str, datetime | None]:
        """project -> its next scheduled run (None: disabled, or not started yet)."""
        jobs = {job.id: job for job in self._project_jobs()}
        result = {}
        for schedule in self.schedules():
            job = jobs.get(JOB_PREFIX + schedule.project)
            result[schedule.project] = getattr(job, "next_run_time", None) if job is not None else None
        return result

    def _upkeep(self) -> UpkeepDone:
        return self.keel.upkeep.run_due()

    def _project_jobs(self) -> list:
        return [job for job in self.scheduler.get_jobs() if job.id.startswith(JOB_PREFIX)]

    def sweep_waiting_inboxes(self) -> list[str]:
        """Queue a sweep for each monitored project (schedule on, a production model) whose inbox
        holds files; returns those projects. Never blocks on the sweep itself."""
        queued: list[str] = []
        submit_sweep = self.submit_sweep
        if submit_sweep is None:
            return queued
        try:
            for schedule in self.schedules():
                project = schedule.project
                if not schedule.enabled or not self.keel.inbox.has_waiting_files(project):
                    continue
                if self.keel.production_version(project) is None:
                    continue  # as for monitoring: its inbox waits for the first deployment
                submit_sweep(project)
                queued.append(project)
        except Exception:  # noqa: BLE001 - a busy registry: the next tick tries again
            log.exception("could not look at the inboxes")
        return queued

    def _fire(self, project: str, signature: tuple | None = None) -> None:
        """The scheduled job: record the run and hand the work to the project's queue. Never blocks."""
        try:
            if not self.keel.record_scheduled_run(project):
                log.debug("%s has no production model yet: nothing to monitor", project)
                return  # its inbox waits for the first cycle after a deployment
            self.submit(project)
        except Exception:  # noqa: BLE001 - a failing submit must not kill the scheduler thread
            log.exception("scheduled monitoring of %s could not be queued", project)


def _signature(schedule: Schedule) -> tuple:
    return (schedule.project, schedule.kind, str(schedule.expression), bool(schedule.enabled))
