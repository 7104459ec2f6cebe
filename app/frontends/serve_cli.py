"""`keel serve NAME [--port P] [--host ADDR]`: the scoring server in the foreground until Ctrl-C or SIGTERM.

The first line of stdout says where it serves (scripts read the port from it when
they pass --port 0), and is printed once the production model is loaded:

    Serving credit v3 at http://127.0.0.1:5000
    Serving credit (no production model yet) at http://127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from app.frontends.exit_codes import CommandError, exit_code_for
from app.frontends.signals import stop_on_signal

if TYPE_CHECKING:
    from app.adapters.serving import ServedModel, ServerHandle
    from app.core.services.lifecycle import Keel


def register_parser(commands: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    serve = command("serve", "score requests with the production model on 127.0.0.1 (MLflow's protocol)")
    serve.add_argument("name")
    serve.add_argument("--port", type=int, default=5000, help="TCP port (0: any free port; default 5000)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; anything else is reachable from other machines)")
    serve.add_argument("--max-body-mb", type=float, default=16.0, dest="max_body_mb",
                       help="largest request body in MiB (default 16)")
    serve.add_argument("--max-connections", type=int, default=64, dest="max_connections",
                       help="connections served at once; more get 503 (default 64)")
    serve.add_argument("--sample-rate", type=float, default=None, dest="sample_rate",
                       help="share of scored rows recorded in the prediction log for this run, overriding the "
                            "project's --prediction-log setting (0..1)")


def serve_command(keel: Keel, args: argparse.Namespace) -> None:
    from app.adapters import serving

    want_json = bool(getattr(args, "json", False))
    if not serving.is_loopback(args.host):
        print(f"keel: warning: serving on {args.host}: other machines can reach this server, "
              "and it has no authentication", file=sys.stderr, flush=True)

    def announce(served: ServedModel | None, message: str) -> None:
        if not want_json and ready.is_set():
            print(message, flush=True)

    ready = threading.Event()
    stop = threading.Event()
    with _stop_on_sigterm(stop):
        handle = serving.start_server(keel.root, args.name, host=args.host, port=args.port,
                                      max_body_bytes=int(args.max_body_mb * 1024 * 1024),
                                      sample_rate=args.sample_rate, on_change=announce,
                                      max_connections=args.max_connections)
        try:
            while not handle.wait_ready(0.2):
                if stop.is_set():
                    return
            failure = handle.last_exception  # set with last_error
            if handle.model_version is None and failure is not None:
                raise CommandError(f"cannot serve {args.name}: {handle.last_error}",
                                   exit_code_for(failure))  # an integrity failure is 1
            ready.set()
            print(_first_line(handle, want_json), flush=True)
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:  # Ctrl-C is how a user stops a foreground server: not an error
            pass
        finally:
            handle.stop()
    if not want_json:
        print(f"Stopped serving {args.name} after {handle.request_count} request(s)", flush=True)


def _first_line(handle: ServerHandle, want_json: bool) -> str:
    if want_json:
        return json.dumps({"project": handle.project, "version": handle.model_version, "url": handle.url,
                           "port": handle.port})
    what = f"v{handle.model_version}" if handle.model_version is not None else "(no production model yet)"
    return f"Serving {handle.project} {what} at {handle.url}"


@contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    """SIGTERM sets `stop` (a signal handler can only be set in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, stop_on_signal(stop))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


HANDLERS = {("serve", None): serve_command}
