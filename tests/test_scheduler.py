"""The monitoring scheduler (jobs rebuilt from the registry, catch-up, shutdown), the
per-project queues, and the headless runner's workspace lock."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from loop_helpers import cli, make_project
from store_helpers import opened_store

from app.adapters.scheduling import JOB_PREFIX, MonitorScheduler, missed_run
from app.core.domain.entities import Schedule
from app.core.domain.errors import BusyError
from app.core.services.lifecycle import Keel
from app.frontends import runner


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def keel(workspace):
    keel = make_project(workspace, "alpha", rows=200)
    make_project(workspace, "beta", rows=200).close()
    yield keel
    keel.close()


def mark(keel, name, at: datetime):
    with opened_store(keel) as registry:
        registry.mark_schedule_run(keel.project(name).id, at.isoformat(timespec="milliseconds"))


@pytest.fixture
def started(keel):
    submitted = []
    scheduler = MonitorScheduler(keel, submitted.append, watch_seconds=0.2)
    yield scheduler, submitted
    scheduler.shutdown(wait=True)


def test_jobs_are_built_from_the_registry_and_rebuilt_on_change(keel, started):
    scheduler, submitted = started
    now = datetime.now(UTC)
    mark(keel, "alpha", now)
    mark(keel, "beta", now)
    scheduler.start()
    times = scheduler.next_run_times()
    assert set(times) == {"alpha", "beta"}
    assert timedelta(minutes=9) < times["alpha"] - datetime.now(UTC) <= timedelta(minutes=10)
    job = scheduler.scheduler.get_job(JOB_PREFIX + "alpha")
    assert job.coalesce and job.max_instances == 1 and job.misfire_grace_time >= 600

    keel.set_project("alpha", {"schedule": "cron 0 3 * * *"})
    keel.set_project("beta", {"schedule_enabled": False})
    scheduler.rebuild()
    times = scheduler.next_run_times()
    assert times["beta"] is None and scheduler.scheduler.get_job(JOB_PREFIX + "beta") is None
    assert times["alpha"].astimezone().hour == 3 and times["alpha"].minute == 0
    assert submitted == []


def test_a_change_from_another_process_is_picked_up_by_the_watch(keel, started):
    scheduler, _ = started
    scheduler.start(catch_up=False)
    other = Keel.open(keel.root)  # as another process would: its own connection
    other.set_project("beta", {"schedule": "every 2h"})
    other.close()
    assert wait_for(lambda: scheduler.next_run_times()["beta"] - datetime.now(UTC) > timedelta(hours=1))


def test_catch_up_runs_missed_and_never_run_projects_at_start(keel, started, store):
    scheduler, submitted = started
    mark(keel, "alpha", datetime.now(UTC) - timedelta(hours=1))  # every 10m: missed
    mark(keel, "beta", datetime.now(UTC) - timedelta(minutes=1))  # not due yet
    assert scheduler.start() == ["alpha"]
    assert submitted == ["alpha"]
    assert store(keel).schedule(keel.project("alpha").id).last_run_at > (
        datetime.now(UTC) - timedelta(minutes=1)).isoformat()


def test_a_project_without_a_production_model_is_not_submitted(keel, started, store):
    scheduler, submitted = started
    make_project(keel.root, "gamma", rows=200, deploy=False).close()
    scheduler.start()  # none has run yet: all are due
    assert sorted(submitted) == ["alpha", "beta"]
    assert store(keel).schedule(keel.project("gamma").id).last_run_at is not None


def test_missed_run_rules():
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def schedule(kind: str, expression: str, last_run_at: str | None) -> Schedule:
        return Schedule(project_id=1, project="p", kind=kind, expression=expression, enabled=True,
                        last_run_at=last_run_at)

    assert missed_run(schedule("interval", "600", None), now)
    assert missed_run(schedule("interval", "600", "2026-11-26T11:49:00+00:00"), now)
    assert not missed_run(schedule("interval", "600", "2026-11-26T11:55:00+00:00"), now)
    two_days_ago = (now - timedelta(days=2)).isoformat()
    assert missed_run(schedule("cron", "0 3 * * *", two_days_ago), now)
    assert not missed_run(schedule("cron", "0 3 1 1 *", two_days_ago), now)


def test_an_interval_job_submits_and_shutdown_stops_it(keel, started):
    scheduler, submitted = started
    keel.set_project("alpha", {"schedule": "every 1s"})
    keel.set_project("beta", {"schedule_enabled": False})
    mark(keel, "alpha", datetime.now(UTC))
    scheduler.start()
    assert wait_for(lambda: len(submitted) >= 1)
    assert set(submitted) == {"alpha"}
    scheduler.shutdown(wait=True)
    assert not scheduler.running
    count = len(submitted)
    time.sleep(1.3)  # a whole period: nothing may fire after shutdown
    assert len(submitted) == count


def test_project_queues_run_one_job_at_a_time_and_coalesce():
    release = threading.Event()
    running, finished = [], []

    def work(project):
        running.append(project)
        release.wait(5)
        finished.append(project)
        return {"project": project}

    queues = runner.ProjectQueues(work)
    assert queues.submit("a")
    assert wait_for(lambda: running == ["a"])
    assert queues.submit("a")  # waits behind the running one
    assert not queues.submit("a")  # one waiting job per project is enough
    assert queues.submit("b")
    assert wait_for(lambda: sorted(running) == ["a", "b"])  # another project runs beside it
    release.set()
    assert wait_for(lambda: finished.count("a") == 2 and finished.count("b") == 1)
    queues.shutdown(timeout=5)
    assert not queues.submit("a")


def test_stopping_returns_when_a_job_was_still_waiting_in_a_queue():
    release, started = threading.Event(), threading.Event()

    def work(project):
        started.set()
        release.wait(10)

    queues = runner.ProjectQueues(work, sweep=lambda project: [])
    assert queues.submit("a")
    assert started.wait(5)
    assert queues.submit_sweep("a")  # waits behind the running cycle: cancelled by the stop
    stopping = threading.Thread(target=queues.shutdown, daemon=True)  # no timeout, as `keel run` stops
    stopping.start()
    release.set()
    stopping.join(10)
    assert not stopping.is_alive()


def test_the_runner_holds_the_workspace_lock_and_stops_cleanly(keel, capsys):
    stop, ready, lines = threading.Event(), threading.Event(), []
    thread = threading.Thread(target=runner.run, args=(keel,), kwargs={"stop_event": stop, "ready": ready,
                                                                       "echo": lines.append})
    thread.start()
    try:
        assert ready.wait(10)
        with pytest.raises(BusyError, match="already in use"):
            runner.acquire_workspace_lock(keel)
        code, out = cli(capsys, keel.root, "run")
        assert code == 2 and "already in use by another Keel" in out["error"]["message"]
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert lines[0].startswith("Keel runner on") and lines[-1] == "Keel runner stopped."
    runner.acquire_workspace_lock(keel).release()  # free again


def test_run_as_a_process_stops_cleanly_on_sigterm(keel):
    import signal
    import subprocess
    import sys

    from loop_helpers import ROOT

    process = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--workspace", str(keel.root), "run"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        assert first.startswith("Keel runner on"), first + process.stderr.read()
        with pytest.raises(BusyError):
            runner.acquire_workspace_lock(keel)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert out.rstrip().endswith("Keel runner stopped.")
    runner.acquire_workspace_lock(keel).release()


@pytest.mark.parametrize("stopped_in", ["window choice", "window fit", "training"])
def test_stopping_the_runner_cancels_a_policy_retrain_and_leaves_no_challenger(workspace, monkeypatch, store,
                                                                             stopped_in):
    """A retrain fits the candidate windows ("window choice", under --window adaptive), the window it
    tests against the champion ("window fit"), then the challenger it registers ("training");
    stopping `keel run` in any of them ends it at once and leaves no challenger."""
    import multiprocessing

    from loop_helpers import batch, drop

    from app.core.ml import training

    keel = make_project(workspace, "loan", rows=300, settings={"policy": "auto", "window": "adaptive"})
    keel.set_project("loan", {"preset": "random_forest", "params": {"n_estimators": 5000},  # fits of minutes
                              "window": "adaptive" if stopped_in == "window choice" else None})  # None: all rows
    if stopped_in == "training":  # the tested window fitted at once, here: the challenger's fit is the long one
        monkeypatch.setattr(training, "fit_window_cancellable", lambda frame, schema, preset, params, seed, cancel:
                            training.fit_window(frame, schema, "logreg", {}, seed))
    drop(keel, "loan", batch(2, concept=1.0), "drift.csv")  # the runner's catch-up cycle retrains on it
    files_before = sorted(p.name for p in (workspace / "artifacts").rglob("*"))
    stop, lines = threading.Event(), []
    thread = threading.Thread(target=runner.run, args=(keel,), kwargs={"stop_event": stop, "echo": lines.append})
    thread.start()
    try:
        assert wait_for(lambda: any(p.name == stopped_in for p in multiprocessing.active_children()), timeout=60), lines
    finally:
        stop.set()
        started = time.monotonic()
        thread.join(30)
    assert not thread.is_alive() and time.monotonic() - started < 5.0
    assert multiprocessing.active_children() == []
    assert any("loan: " in line and "cancelled" in line for line in lines) and lines[-1] == "Keel runner stopped.", lines
    assert [v.version for v in keel.status("loan").versions] == [1]
    assert sorted(p.name for p in (workspace / "artifacts").rglob("*")) == files_before  # no model, no .partial
    events = store(keel).events(keel.project("loan").id)
    assert [e.kind for e in events if e.kind in ("model_trained", "retrain_decision")] == ["model_trained"]
    assert any(e.kind == "retrain_cancelled" and e.by == "policy" for e in events)
    keel.close()
