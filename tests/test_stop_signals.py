"""SIGTERM / Ctrl-C stop the headless loops even when they land at an awkward moment."""

import signal
import threading

from app.frontends.signals import stop_on_signal


def test_a_signal_landing_while_the_loop_holds_the_events_lock_still_stops_it():
    stop = threading.Event()
    handler = stop_on_signal(stop)

    def signal_inside_event_bookkeeping():
        # Where the main thread is when the handler runs between bytecodes of Event.wait():
        # holding the event's own (non-reentrant) lock.
        with stop._cond:
            handler(signal.SIGTERM, None)

    landing = threading.Thread(target=signal_inside_event_bookkeeping, daemon=True)
    landing.start()
    landing.join(5)
    assert not landing.is_alive(), "the handler deadlocked on the event's lock"
    assert stop.wait(5)
