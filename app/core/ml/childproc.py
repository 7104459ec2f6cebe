"""Run a function in a spawned child process that can be cancelled for real.

A thread cannot be killed, and pure-Python parts of a fit hold the GIL; a child process
can be terminated at once and cannot stall the caller's threads. The child is spawned
(forking after Qt or OpenMP threads exist is unsafe) with capped BLAS/OpenMP threads, so
the parent (the GUI) keeps a core. The caps travel to the child with its arguments and the
child applies them itself, before its work runs: the parent's os.environ is never changed, so
two threads starting children at once cannot undo each other's caps.

The child function receives a queue as its first argument and posts
("progress", fraction, message), then ("done", result) or ("error", ...) via `report_failure`.

One depth: a child whose termination is its cancel (`cancel_on_terminate`: the GUI's Retrain runs
the whole Keel.train in one) does the work it would hand to a child of its own (the fit, the
candidate windows) in its main thread instead: its SIGTERM interrupts it there, so the work
stops at once, the way a terminated grandchild would, and the usual clean-up removes the files
written halfway. No second process start per call (a spawn costs 0.5-2 s).
"""

import logging
import multiprocessing
import os
import queue as queue_module
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from app.core.domain.errors import Cancelled, IntegrityError, KeelError

log = logging.getLogger("keel.childproc")
ChildQueue = Any  # a spawn context's multiprocessing.Queue (its class is not importable for hints)
CHILD_THREADS = 1
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")


def capped_threads_environment(threads: int = 1) -> dict[str, str]:
    """The environment variables that cap a child's BLAS/OpenMP threads."""
    return {name: str(threads) for name in THREAD_VARIABLES}


def threads_left() -> int:
    """The cores other work leaves free (the 1-minute load average), at least one.

    Native OpenMP/BLAS pools default to every core; next to a server, a monitoring cycle or a
    training they oversubscribe, and spinning threads made a 0.1 s fit take 10-56 s."""
    cpus = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:  # no load average on this platform
        busy = 0.0
    return max(1, min(cpus, round(cpus - busy)))


def native_pool_limits() -> dict[str, int] | int:
    """Each native pool at most threads_left(), and never above its current size (a child process
    capped to one thread stays at one)."""
    from threadpoolctl import threadpool_info  # a scikit-learn dependency

    left = threads_left()
    limits: dict[str, int] = {}
    for pool in threadpool_info():
        limits[pool["user_api"]] = min(limits.get(pool["user_api"], left), pool["num_threads"])
    return limits or left


@contextmanager
def capped_native_threads() -> Iterator[None]:
    """For the block, the native thread pools (OpenMP, BLAS) of a fit or a prediction are capped to
    the cores the machine has left (a library loaded during the block gets its cap when it is next
    asked: load the model before entering)."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    with threadpool_limits(limits=native_pool_limits()):
        yield


def _child_main(channel: ChildQueue, threads: int, target: Callable[..., Any], args: tuple) -> None:
    """The child's entry point: its thread caps, then the work, then a quick exit. A library that
    loads from now on reads the caps from the environment; one already loaded with the work's
    arguments (numpy, for a data frame) is capped by threadpoolctl."""
    os.environ.update(capped_threads_environment(threads))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    target(channel, *args)
    _exit_at_once(channel)


def _exit_at_once(channel: ChildQueue) -> None:
    """End the child once what it sent has gone down the pipe, without the interpreter's finalisation:
    with pandas and scikit-learn loaded that took 0.9-1.6 s on a busy machine (5 s once), and the
    parent waits for the child's end (a cancel is reported once the files written halfway are gone)."""
    channel.close()
    channel.join_thread()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def report_failure(queue: ChildQueue, exc: BaseException) -> None:
    """Called by a child function in its `except BaseException` block."""
    user_fixable = isinstance(exc, KeelError) and not isinstance(exc, (IntegrityError, Cancelled))
    queue.put(("error", type(exc).__name__, str(exc), traceback.format_exc(), user_fixable))


class Terminated(BaseException):
    """Raised by SIGTERM in work run_in_child does in a process whose SIGTERM is its cancel. Not an
    Exception, as KeyboardInterrupt is not: library code that catches Exception (scikit-learn's fit
    did, once in ten cancels) must not swallow it and fit on."""


class _TerminateCancels:
    """The cancel event of a process whose SIGTERM is its cancel, and whether the main thread is
    in work that the signal may interrupt (run_in_child's work done here)."""

    event: threading.Event | None = None
    interruptible = False


def cancel_on_terminate() -> threading.Event:
    """In a child started for cancellable work: SIGTERM sets the returned event (hand it to the work
    as its cancel_event) and ends the processes this one started. run_in_child called in the main
    thread with this event runs its target here, where SIGTERM interrupts it (Cancelled)."""
    event = threading.Event()

    def on_terminate(signum: int, frame: FrameType | None) -> None:
        if not event.is_set():
            event.set()
            for process in multiprocessing.active_children():
                process.terminate()
        if _TerminateCancels.interruptible:
            if _inside_an_import(frame):
                # raised here, Terminated could leave the interpreter's import lock held (the signal
                # lands in importlib's own lock handling), and the process could then never end:
                # the work is interrupted a moment later instead, once the import is done
                signal.setitimer(signal.ITIMER_REAL, IMPORT_RETRY_SECONDS)
                return
            _TerminateCancels.interruptible = False
            raise Terminated()

    signal.signal(signal.SIGTERM, on_terminate)
    signal.signal(signal.SIGALRM, on_terminate)  # the retry after an import
    _TerminateCancels.event = event
    return event


IMPORT_RETRY_SECONDS = 0.02


def _inside_an_import(frame: FrameType | None) -> bool:
    """Whether the interrupted code is in Python's import machinery (importlib's bootstrap)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


class _Channel:
    """The queue of work run here: progress is passed on as it comes, the last message kept."""

    def __init__(self, progress: Callable[[float, str], None] | None) -> None:
        self.progress = progress
        self.outcome: tuple | None = None

    def put(self, message: tuple) -> None:
        if message[0] == "progress":
            if self.progress:
                self.progress(message[1], message[2])
        else:
            self.outcome = message


def _run_here(target: Callable[..., Any], args: tuple, cancel_event: threading.Event,
              progress: Callable[[float, str], None] | None, cancelled_message: str, name: str | None) -> Any:
    """run_in_child's work in this process's main thread, interrupted by this process's SIGTERM."""
    channel = _Channel(progress)
    if cancel_event.is_set():
        raise Cancelled(cancelled_message)
    _TerminateCancels.interruptible = True
    try:
        target(channel, *args)
    except (Terminated, Cancelled):
        raise Cancelled(cancelled_message) from None
    finally:
        _TerminateCancels.interruptible = False
    if cancel_event.is_set() or channel.outcome is None:  # an interrupted target reports the Cancelled as an error
        raise Cancelled(cancelled_message)
    return _result(channel.outcome, name)


def _result(message: tuple, name: str | None) -> Any:
    """A child's last message: its result, or its failure raised here."""
    if message[0] == "done":
        return message[1]
    _, error_name, text, trace, user_fixable = message
    log.error("%s in a child process failed:\n%s", name or "work", trace)
    if user_fixable:
        raise KeelError(text)
    raise RuntimeError(f"{error_name}: {text}")


def run_in_child(target: Callable[..., Any], args: tuple, *, cancel_event: threading.Event | None = None,
                 progress: Callable[[float, str], None] | None = None, cancelled_message: str = "cancelled",
                 name: str | None = None, poll_seconds: float = 0.1, may_start_children: bool = False,
                 clean_up_seconds: float = 2.0) -> Any:
    """target(queue, *args) in a spawned child; returns its result. Setting cancel_event
    terminates the child within ~poll_seconds and raises Cancelled (a child still running
    clean_up_seconds after its SIGTERM is killed). may_start_children: the child
    is not a daemon process (a daemon may not start processes of its own); it ends all the same,
    as every child here does, when this call returns or is cancelled. In a process whose SIGTERM
    is its cancel (cancel_on_terminate), with that event, from its main thread: the target runs here
    (one depth, see the module's note)."""
    if (cancel_event is not None and cancel_event is _TerminateCancels.event
            and threading.current_thread() is threading.main_thread()):
        return _run_here(target, args, cancel_event, progress, cancelled_message, name)
    context = multiprocessing.get_context("spawn")
    channel = context.Queue()
    child = context.Process(target=_child_main, args=(channel, CHILD_THREADS, target, args),
                            daemon=not may_start_children, name=name)
    child.start()
    try:
        while True:
            if cancel_event is not None and cancel_event.is_set():
                raise Cancelled(cancelled_message)
            try:
                message = channel.get(timeout=poll_seconds)
            except queue_module.Empty:
                if not child.is_alive() and channel.empty():
                    raise RuntimeError(f"the {name or 'child'} process ended unexpectedly (exit code {child.exitcode})") from None
                continue
            if message[0] == "progress":
                if progress:
                    progress(message[1], message[2])
            else:
                if message[0] == "done":
                    child.join(5)
                return _result(message, name)
    finally:
        if child.is_alive():
            child.terminate()
            child.join(clean_up_seconds)
            if child.is_alive():
                child.kill()
                child.join(1)
        channel.close()
        channel.join_thread()
