"""Turning SIGTERM / Ctrl-C into a stop request for a headless loop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import FrameType


def stop_on_signal(stop: threading.Event) -> Callable[[int, FrameType | None], None]:
    """A signal handler that sets `stop` from a short-lived thread.

    Python runs a handler in the main thread between two bytecodes, possibly while that thread
    holds the plain lock inside `stop` (Event.wait takes it around its bookkeeping); calling
    stop.set() there would wait for that lock forever (the same deadlock as CPython issue 126434).
    Another thread simply waits until the main thread lets the lock go."""

    def handler(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=stop.set, name="keel-stop-signal", daemon=True).start()

    return handler
