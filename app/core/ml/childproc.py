"""Run a function in a spawned child process that can be cancelled for real.

A thread cannot be killed, and pure-Python parts of a fit hold the GIL; a child process
can be terminated at once and cannot stall the caller's threads. The child is spawned
(forking after Qt or OpenMP threads exist is unsafe) with capped BLAS/OpenMP threads, so
the parent (the GUI) keeps a core.

The child function receives a queue as its first argument and posts
("progress", fraction, message), then ("done", result) or ("error", ...) via `report_failure`.
"""

import logging
import multiprocessing
import os
import queue as queue_module
import traceback
from contextlib import contextmanager

from app.core.domain.errors import Cancelled, KeelError

log = logging.getLogger("keel.childproc")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")


@contextmanager
def capped_threads_environment(threads: int = 1):
    """os.environ with BLAS/OpenMP capped while a child is started (it inherits the environment)."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def report_failure(queue, exc: BaseException) -> None:
    """Called by a child function in its `except BaseException` block."""
    queue.put(("error", type(exc).__name__, str(exc), traceback.format_exc(), getattr(exc, "exit_code", 1)))


def run_in_child(target, args: tuple, *, cancel_event=None, progress=None, cancelled_message: str = "cancelled",
                 name: str | None = None, poll_seconds: float = 0.1):
    """target(queue, *args) in a spawned child; returns its result. Setting cancel_event
    terminates the child within ~poll_seconds and raises Cancelled."""
    context = multiprocessing.get_context("spawn")
    channel = context.Queue()
    with capped_threads_environment():
        child = context.Process(target=target, args=(channel, *args), daemon=True, name=name)
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
            elif message[0] == "done":
                child.join(5)
                return message[1]
            else:
                _, error_name, text, trace, exit_code = message
                log.error("%s in a child process failed:\n%s", name or "work", trace)
                if exit_code == 2:
                    raise KeelError(text)
                raise RuntimeError(f"{error_name}: {text}")
    finally:
        if child.is_alive():
            child.terminate()
            child.join(2)
            if child.is_alive():
                child.kill()
                child.join(1)
        channel.close()
        channel.join_thread()
