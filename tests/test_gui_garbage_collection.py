"""While the window's job runner is open, Python's garbage collection runs on the GUI thread only:
a collection on a worker can free a Qt wrapper whose disconnect waits for the GIL while the GUI
thread, holding the GIL, waits for Qt's connection lock (seen as a frozen window in a test run)."""

import gc
import threading

from app.frontends.gui.jobs import JobRunner


def make_cyclic_garbage(job) -> int:
    for _ in range(60_000):
        cycle: list = []
        cycle.append(cycle)  # only the cyclic collector can free this
    return 60_000


def test_collections_happen_on_the_gui_thread_while_a_worker_allocates(qtbot):
    collected_on = []

    def record(phase, info):
        if phase == "start":
            collected_on.append(threading.current_thread() is threading.main_thread())

    runner = JobRunner()
    gc.callbacks.append(record)
    try:
        assert not gc.isenabled()
        with qtbot.waitSignal(runner.finished, timeout=20000):
            runner.submit("garbage", "allocate", "Allocate cycles", make_cyclic_garbage)
        qtbot.waitUntil(lambda: len(collected_on) > 0, timeout=5000)
    finally:
        gc.callbacks.remove(record)
        runner.shutdown()
    assert all(collected_on), "a collection ran on a worker thread"
