"""Child processes start with capped BLAS/OpenMP threads, passed to them explicitly: the
parent's environment is never changed, so threads starting children at once cannot race."""

import os
import threading

import pytest

from app.core.ml import childproc


def report_thread_caps(queue, *work_arguments):
    """Runs in the child: its thread variables, and the threads numpy's BLAS really uses."""
    import numpy  # noqa: F401  (loads BLAS, which reads its caps now)
    import threadpoolctl

    blas_threads = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    queue.put(("done", ({name: os.environ.get(name) for name in childproc.THREAD_VARIABLES}, blas_threads)))


@pytest.fixture
def environment_writes(monkeypatch):
    """Every thread variable set or removed in os.environ of this process during the test."""
    written = []
    environ_type = type(os.environ)
    set_item, del_item = environ_type.__setitem__, environ_type.__delitem__

    def recording_set(self, key, value):
        if key in childproc.THREAD_VARIABLES:
            written.append(key)
        set_item(self, key, value)

    def recording_del(self, key):
        if key in childproc.THREAD_VARIABLES:
            written.append(key)
        del_item(self, key)

    monkeypatch.setattr(environ_type, "__setitem__", recording_set)
    monkeypatch.setattr(environ_type, "__delitem__", recording_del)
    return written


def test_a_child_starts_with_capped_threads_whatever_the_parent_has(monkeypatch, environment_writes):
    for name in childproc.THREAD_VARIABLES:
        monkeypatch.setenv(name, "3")
    environment_writes.clear()
    variables, blas_threads = childproc.run_in_child(report_thread_caps, (), name="caps")
    assert variables == {name: "1" for name in childproc.THREAD_VARIABLES}
    assert blas_threads and set(blas_threads) == {1}
    assert environment_writes == []  # the parent's environment was not touched
    assert os.environ["OMP_NUM_THREADS"] == "3"


def test_a_child_whose_arguments_load_numpy_first_is_capped_too(monkeypatch, environment_writes):
    """Unpickling a numpy argument loads BLAS with the parent's setting before the child's code runs."""
    import numpy

    for name in childproc.THREAD_VARIABLES:
        monkeypatch.setenv(name, "3")
    environment_writes.clear()
    variables, blas_threads = childproc.run_in_child(report_thread_caps, (numpy.zeros(3),), name="caps")
    assert blas_threads and set(blas_threads) == {1}
    assert environment_writes == []


def test_two_threads_start_children_at_once_and_both_are_capped(environment_writes):
    results, errors = [], []

    def start_child():
        try:
            results.append(childproc.run_in_child(report_thread_caps, (), name="caps"))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start_child) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(results) == 2
    assert all(variables["OMP_NUM_THREADS"] == "1" and set(blas) == {1} for variables, blas in results)
    assert environment_writes == []


def a_frame_of(filename: str):
    """A real frame of code compiled as if it came from `filename`."""
    namespace: dict = {}
    exec(compile("import sys\ndef here():\n    return sys._getframe()\n", filename, "exec"), namespace)
    return namespace["here"]()


def test_a_terminate_during_an_import_cancels_the_work_once_the_import_is_done():
    """Terminated raised inside importlib could leave the import lock held and the process unable to
    end: during an import the signal re-arms itself (SIGALRM) and the work is interrupted after it."""
    import signal

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGALRM)}
    saved_state = (childproc._TerminateCancels.event, childproc._TerminateCancels.interruptible)
    try:
        event = childproc.cancel_on_terminate()
        on_terminate = signal.getsignal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGALRM) is on_terminate
        childproc._TerminateCancels.interruptible = True
        on_terminate(signal.SIGTERM, a_frame_of("<frozen importlib._bootstrap>"))  # does not raise
        assert event.is_set() and signal.getitimer(signal.ITIMER_REAL)[0] > 0  # the retry is armed
        signal.setitimer(signal.ITIMER_REAL, 0)
        with pytest.raises(childproc.Terminated):
            on_terminate(signal.SIGALRM, a_frame_of(__file__))  # the retry, out of the import
        on_terminate(signal.SIGTERM, a_frame_of(__file__))  # once cancelled, a second signal changes nothing
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        childproc._TerminateCancels.event, childproc._TerminateCancels.interruptible = saved_state


def work_that_swallows_exceptions(queue):
    """Runs where run_in_child puts it: says in which process, then loops the way library code that
    catches Exception would, until something stops it."""
    import time

    queue.put(("progress", 0.5, f"working in {os.getpid()}"))
    while True:
        try:
            time.sleep(0.01)
        except Exception:  # noqa: BLE001 - the point: a cancel must not be an Exception
            pass


def child_whose_terminate_is_its_cancel(queue):
    from app.core.domain.errors import Cancelled

    cancel_event = childproc.cancel_on_terminate()
    queue.put(("progress", 0.0, f"child {os.getpid()}"))
    try:
        childproc.run_in_child(work_that_swallows_exceptions, (), cancel_event=cancel_event,
                               progress=lambda fraction, message: queue.put(("progress", fraction, message)))
    except Cancelled:
        queue.put(("done", "cancelled"))


def test_a_child_whose_terminate_is_its_cancel_does_nested_work_itself_and_stops_it_at_once():
    import multiprocessing
    import time

    from app.core.domain.errors import Cancelled

    cancel, messages, errors = threading.Event(), [], []

    def run():
        try:
            childproc.run_in_child(child_whose_terminate_is_its_cancel, (), cancel_event=cancel, name="one depth",
                                   may_start_children=True, progress=lambda fraction, message: messages.append(message))
        except Cancelled as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not any(m.startswith("working") for m in messages) and time.monotonic() < deadline:
        time.sleep(0.01)
    [child] = [p for p in multiprocessing.active_children() if p.name == "one depth"]
    cancel.set()
    started = time.monotonic()
    thread.join(10)
    assert time.monotonic() - started < 2.0 and len(errors) == 1
    assert messages == [f"child {child.pid}", f"working in {child.pid}"]  # the nested work ran in the child itself
    assert child.exitcode == 0  # it stopped on its SIGTERM, cleanly; it was not killed
