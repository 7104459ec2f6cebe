"""The scoring server: one project's production model over HTTP on 127.0.0.1, in MLflow's protocol.

    handle = start_server(workspace_dir, "credit")      # returns at once
    handle.url, handle.port, handle.request_count, handle.model_version
    handle.stop()                                       # clean shutdown, joins the threads

The server is the standard library's ThreadingHTTPServer speaking HTTP/1.1 with
keep-alive: a thread per connection, no extra dependency, and nothing between the
socket and the model that we cannot see. The scoring work (pandas, scikit-learn)
holds the GIL for most of a request, so an asynchronous or multi-worker server would
not buy throughput inside one process; the per-request cost of the stdlib server is
measured in bench/serve_bench.py.

Hot swap: a watcher thread polls the registry (its own connection) every POLL_SECONDS
for the project's current deployment. A new deployment is loaded with
Keel.load_version (sha256 and allow-list checked) and then published by replacing one
immutable ServedModel reference; each request reads that reference once, so a request
in flight finishes on the model it started with. A version that fails to load is
refused and logged; the server keeps answering with the model it had.
"""

import http.server
import ipaddress
import json
import logging
import queue
import random
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from app import __version__
from app.adapters import serving_protocol as protocol
from app.adapters.serving_protocol import RequestError
from app.core.domain.errors import KeelError

log = logging.getLogger("keel.serving")

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
POLL_SECONDS = 0.5
IDLE_CONNECTION_SECONDS = 30.0
LINGER_SECONDS = 1.0  # after refusing a body: discard what the client still sends, so it reads our answer
SAMPLE_MAX_ROWS = 1000
SAMPLE_QUEUE_SIZE = 256
SAMPLE_FLUSH_SECONDS = 0.5
MODEL_THREADS = 1


class OpenMPLimit:
    """Caps OpenMP threads for the model calls of each request thread.

    Requests run in parallel already; a model that also starts an OpenMP team per call
    (histogram gradient boosting does) oversubscribes the cores, and its spinning threads
    make a 1-row predict several times slower on a busy machine (bench/serve_bench.py).
    OpenMP's setting is per calling thread, so each request thread sets it once (~0.1 ms).
    """

    def __init__(self, threads: int | None):
        self.threads = threads
        self._controller = None
        self._local = threading.local()

    def apply(self) -> None:
        if not self.threads or getattr(self._local, "done", False):
            return
        if self._controller is None:
            from threadpoolctl import ThreadpoolController  # a scikit-learn dependency

            self._controller = ThreadpoolController().select(user_api="openmp")
        self._controller.limit(limits=self.threads)
        self._local.done = True


@dataclass(frozen=True)
class ServedModel:
    """What answers requests. Immutable: a deploy replaces the whole reference."""

    project: str
    version: int
    sha256: str
    model_version_id: int
    project_id: int
    deployed_at: str
    task: str
    schema: dict
    model: object


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- following the registry
class ProductionWatcher:
    """Keeps `current` equal to the project's production model, checking every POLL_SECONDS."""

    def __init__(self, keel, project: dict, on_change=None, poll_seconds: float = POLL_SECONDS):
        self.keel = keel
        self.project = project
        self.on_change = on_change or (lambda served, message: None)
        self.poll_seconds = poll_seconds
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self.last_exception: Exception | None = None
        self.first_check_done = threading.Event()
        self._refused_deployment_id = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"keel-serve-watch-{project['name']}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as exc:  # a locked or damaged registry must not end the watch
                self.last_error = f"cannot read the registry: {exc}"
                self.last_exception = exc
                log.exception("serving %s: checking the production model failed", self.project["name"])
            finally:
                self.first_check_done.set()
            self._stop.wait(self.poll_seconds)

    def check(self) -> None:
        deployment = self.keel.deployment_in_production(self.project["id"])
        current = self.current
        if deployment is None:
            if current is not None:
                self._publish(None, f"{self.project['name']} has no production model any more; /ping answers 503")
            return
        if current is not None and deployment["model_version_id"] == current.model_version_id:
            return
        if deployment["id"] == self._refused_deployment_id:
            return
        try:
            loaded = self.keel.load_version(self.project["name"], deployment["version"])
        except KeelError as exc:
            self._refused_deployment_id = deployment["id"]
            self.last_error = f"v{deployment['version']} was not loaded: {exc}"
            self.last_exception = exc
            log.error("serving %s: %s", self.project["name"], self.last_error)
            kept = f"; still serving v{current.version}" if current else ""
            self.on_change(current, f"refused v{deployment['version']}: {exc}{kept}")
            return
        served = ServedModel(
            project=self.project["name"], version=deployment["version"], sha256=loaded.model_version["sha256"],
            model_version_id=deployment["model_version_id"], project_id=self.project["id"],
            deployed_at=deployment["deployed_at"], task=loaded.project["task"], schema=loaded.project["schema"],
            model=loaded.model)
        self.last_error = self.last_exception = None
        was = f" (was v{current.version})" if current else ""
        self._publish(served, f"now serving {served.project} v{served.version}{was}")

    def _publish(self, served: ServedModel | None, message: str) -> None:
        self.current = served  # one reference assignment: requests see the old model or the new, never a mix
        log.info("serving %s: %s", self.project["name"], message)
        self.on_change(served, message)


# --------------------------------------------------------------------------- sampling served traffic
class ServedSampler:
    """Logs a random share of scored requests into served_samples, off the request path.

    A request thread only draws a random number and, for a sampled request, puts a
    reference on a bounded queue (dropped when full: serving never waits on the disk).
    A writer thread stores each sample as one row, in one transaction per batch.
    """

    def __init__(self, keel, rate: float, max_rows: int = SAMPLE_MAX_ROWS):
        if not 0.0 <= rate <= 1.0:
            raise KeelError(f"sample rate {rate} is outside 0..1")
        self.keel = keel
        self.rate = rate
        self.max_rows = max_rows
        self._queue: queue.Queue = queue.Queue(SAMPLE_QUEUE_SIZE)
        self._thread = threading.Thread(target=self._run, name="keel-serve-samples", daemon=True)
        if rate > 0:
            self._thread.start()

    def offer(self, served: ServedModel, X, predictions: list) -> None:
        if self.rate <= 0 or random.random() >= self.rate:
            return
        try:
            self._queue.put_nowait((served, X, predictions))
        except queue.Full:
            pass  # a sample, not a record: never make a request wait for the registry

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        from app.core.domain.clock import utc_now

        while True:
            items = self._next_batch()
            done = items[-1] is None
            rows = [self._row(item, utc_now()) for item in items if item is not None]
            if rows:
                try:
                    self.keel.record_served_samples(rows)
                except Exception:
                    log.exception("serving: storing %d served sample(s) failed", len(rows))
            if done:
                return

    def _next_batch(self) -> list:
        """Samples arriving within SAMPLE_FLUSH_SECONDS of the first: one commit for them all."""
        items = [self._queue.get()]
        deadline = time.monotonic() + SAMPLE_FLUSH_SECONDS
        while items[-1] is not None and len(items) < SAMPLE_QUEUE_SIZE:
            try:
                items.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return items

    def _row(self, item, at: str) -> dict:
        served, X, predictions = item
        head = X.iloc[: self.max_rows]
        return {"project_id": served.project_id, "model_version_id": served.model_version_id, "at": at,
                "inputs_json": head.to_json(orient="split", index=False),
                "predictions_json": json.dumps(predictions[: self.max_rows])}


# --------------------------------------------------------------------------- HTTP
class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address, watcher: ProductionWatcher, max_body_bytes: int, sampler: ServedSampler,
                 model_threads: int | None):
        self.watcher = watcher
        self.max_body_bytes = max_body_bytes
        self.sampler = sampler
        self.openmp_limit = OpenMPLimit(model_threads)
        self._count = 0
        self._count_lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def count_request(self) -> None:
        with self._count_lock:
            self._count += 1

    @property
    def request_count(self) -> int:
        with self._count_lock:
            return self._count

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections[connection] = threading.current_thread()
            else:
                self._connections.pop(connection, None)

    def close_connections(self, timeout: float) -> None:
        """End keep-alive connections: an idle one sees end-of-file, a busy one finishes its request first."""
        with self._connections_lock:
            open_now = dict(self._connections)
        for connection in open_now:
            try:
                connection.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for thread in open_now.values():
            thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request, client_address):
        log.exception("serving: error on a connection from %s", client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"Keel/{__version__}"
    sys_version = ""
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024  # headers and body leave in one write
    timeout = IDLE_CONNECTION_SECONDS
    server: _Server

    def setup(self):
        super().setup()
        self.server.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    # ------------------------------------------------------------------ routes
    def do_GET(self):
        path, _ = self._route()
        served = self.server.watcher.current
        if path in ("/ping", "/health"):
            if served is None:
                self._send_error(self._no_model_error(), None)
            else:
                self._send_json(200, {"status": "ready", "project": served.project, "version": served.version}, served)
        elif path == "/version":
            self._send_json(200, {"project": self.server.watcher.project["name"],
                                  "version": served.version if served else None,
                                  "sha256": served.sha256 if served else None,
                                  "deployed_at": served.deployed_at if served else None,
                                  "keel": __version__}, served)
        elif path == "/invocations":
            self._send_error(RequestError("use POST for /invocations", 405, "METHOD_NOT_ALLOWED"), served,
                             {"Allow": "POST"})
        else:
            self._send_error(self._not_found(path), served)

    def do_POST(self):
        path, query = self._route()
        if path != "/invocations":
            self.close_connection = True  # the body is not read
            status = (RequestError(f"use GET for {path}", 405, "METHOD_NOT_ALLOWED")
                      if path in ("/ping", "/health", "/version") else self._not_found(path))
            self._send_error(status, self.server.watcher.current)
            return
        self._invocations(query)

    def _refuse_method(self):
        self.close_connection = True
        self._send_error(RequestError(f"method {self.command} is not supported: use GET or POST",
                                      405, "METHOD_NOT_ALLOWED"), self.server.watcher.current, {"Allow": "GET, POST"})

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _refuse_method

    def _route(self) -> tuple[str, dict]:
        parts = urlsplit(self.path)
        return parts.path.rstrip("/") or "/", parse_qs(parts.query)

    @staticmethod
    def _not_found(path: str) -> RequestError:
        return RequestError(f"no endpoint {path}: use POST /invocations, GET /ping, /health or /version",
                            404, "ENDPOINT_NOT_FOUND")

    def _no_model_error(self) -> RequestError:
        watcher = self.server.watcher
        name, problem = watcher.project["name"], watcher.last_error
        if not watcher.first_check_done.is_set():
            message = f"project {name!r}: the production model is still loading; try again in a moment"
        elif problem:
            message = f"project {name!r} has no production model loaded ({problem})"
        else:
            message = f"project {name!r} has no production model yet: deploy a version"
        return RequestError(message, 503, "NO_PRODUCTION_MODEL")

    # ------------------------------------------------------------------ scoring
    def _invocations(self, query: dict):
        served = self.server.watcher.current  # read once: this request uses this model to the end
        body = None
        try:
            body = self._read_body()  # first: an unread body would be taken for the next request on the connection
            probabilities = protocol.parse_flag(query.get("probabilities", []), "probabilities")
            if served is None:
                raise self._no_model_error()
            table = protocol.parse_body(body, self.headers.get("Content-Type", ""), served.schema["features"])
            X = protocol.model_frame(table, served.schema)
            self.server.openmp_limit.apply()  # after the model is loaded: its OpenMP runtime is in the process
            payload = protocol.predictions_payload(served.model, served.task, X, probabilities)
            self._send_json(200, payload, served)
            self.server.sampler.offer(served, X, payload["predictions"])
        except RequestError as exc:
            self._send_error(exc, served)
        except Exception as exc:  # the model itself failed: say so, keep serving, traceback to the log
            log.exception("serving: scoring failed")
            if body is None:
                self.close_connection = True
            self._send_error(RequestError(f"scoring failed: {type(exc).__name__}: {exc}", 500, "INTERNAL_ERROR"),
                             served)
        finally:
            self.server.count_request()

    def _read_body(self) -> bytes:
        encoding = self.headers.get("Transfer-Encoding", "").strip().lower()
        if encoding:
            if encoding != "chunked":
                self.close_connection = True
                raise RequestError(f"Transfer-Encoding {encoding!r} is not supported: use chunked or Content-Length",
                                   501, "NOT_IMPLEMENTED")
            return self._read_chunked()
        length = self._declared_length()
        if length is None:
            self.close_connection = True
            raise RequestError("a POST needs a Content-Length header (or chunked encoding)", 411, "LENGTH_REQUIRED")
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise RequestError(f"the body ended after {len(body)} of {length} bytes", 400, "MALFORMED_REQUEST")
        return body

    def _declared_length(self) -> int | None:
        """Content-Length, refused with 413 before anything is read when it is over the limit."""
        text = self.headers.get("Content-Length")
        if text is None:
            return None
        try:
            length = int(text)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise RequestError(f"Content-Length {text!r} is not a byte count", 400, "MALFORMED_REQUEST") from None
        if length > self.server.max_body_bytes:
            self.close_connection = True
            raise RequestError(self._too_large_message(f"{length} bytes"), 413, "REQUEST_TOO_LARGE")
        return length

    def _too_large_message(self, size: str) -> str:
        return f"the body ({size}) is over the {self.server.max_body_bytes} byte limit: send fewer rows per request"

    def _read_chunked(self) -> bytes:
        limit, parts, total = self.server.max_body_bytes, [], 0
        while True:
            line = self.rfile.readline(1026)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size < 0:
                    raise ValueError
            except ValueError:
                self.close_connection = True
                raise RequestError("malformed chunked body: bad chunk size line", 400, "MALFORMED_REQUEST") from None
            if size == 0:
                break
            total += size
            if total > limit:
                self.close_connection = True
                raise RequestError(self._too_large_message(f"over {limit} bytes, chunked"), 413, "REQUEST_TOO_LARGE")
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3).strip():
                self.close_connection = True
                raise RequestError("malformed chunked body: a chunk is shorter than its size", 400, "MALFORMED_REQUEST")
            parts.append(chunk)
        while self.rfile.readline(8194).strip():  # trailer fields, ignored
            pass
        return b"".join(parts)

    def handle_expect_100(self):
        """Refuse an oversized body before the client sends it (curl sends Expect for large bodies)."""
        try:
            self._declared_length()
        except RequestError as exc:
            self._send_error(exc, self.server.watcher.current)
            return False
        accepted = super().handle_expect_100()
        self.wfile.flush()  # the buffered "100 Continue" must leave now: the client waits for it
        return accepted

    # ------------------------------------------------------------------ answers
    def _send_json(self, status: int, payload: dict, served: ServedModel | None, headers: dict | None = None):
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Keel-Model-Version", str(served.version) if served else "none")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _send_error(self, error: RequestError, served: ServedModel | None, headers: dict | None = None):
        self._send_json(error.status, {"error_code": error.error_code, "message": error.message}, served, headers)
        if error.status == 413:
            self._linger()

    def _linger(self):
        """Answer first, then discard (not store) what is still arriving, so the client reads the 413
        instead of a connection reset; bounded in time."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            self.connection.settimeout(0.1)
            while time.monotonic() < deadline:
                try:
                    if not self.connection.recv(65536):
                        break
                except TimeoutError:
                    continue
        except OSError:
            pass

    def send_error(self, code, message=None, explain=None):
        """The base class's errors (bad request line, header too long...) as JSON too."""
        self.close_connection = True
        status = HTTPStatus(code)
        error = RequestError(message or status.phrase, code, status.name)
        self._send_json(code, {"error_code": error.error_code, "message": error.message},
                        self.server.watcher.current)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", self.address_string(), format % args)


# --------------------------------------------------------------------------- the handle
class ServerHandle:
    """A running server. Thread-safe to read; stop() once."""

    def __init__(self, keel, server: _Server, watcher: ProductionWatcher, sampler: ServedSampler, host: str):
        self._keel = keel
        self._server = server
        self._watcher = watcher
        self._sampler = sampler
        self.host = host
        self.port = server.server_address[1]
        shown_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown_host}:{self.port}"
        self.project = watcher.project["name"]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"keel-serve-{self.project}", daemon=True)
        self._stopped = False

    @property
    def request_count(self) -> int:
        """Scoring requests answered (POST /invocations, whatever the outcome)."""
        return self._server.request_count

    @property
    def model_version(self) -> int | None:
        served = self._watcher.current
        return served.version if served else None

    @property
    def last_error(self) -> str | None:
        return self._watcher.last_error

    @property
    def last_exception(self) -> Exception | None:
        return self._watcher.last_exception

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """True once the registry has been read and the production model (if any) loaded."""
        return self._watcher.first_check_done.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()  # no new connections; serve_forever returns
        self._server.close_connections(timeout)
        self._server.server_close()
        self._thread.join(timeout)
        self._watcher.stop(timeout)
        self._sampler.stop(timeout)
        self._keel.close()
        log.info("serving %s: stopped after %d request(s)", self.project, self.request_count)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_server(keel_workspace_dir, project: str, host: str = "127.0.0.1", port: int = 0,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, sample_rate: float = 0.0,
                 on_change=None, poll_seconds: float = POLL_SECONDS,
                 model_threads: int | None = MODEL_THREADS) -> ServerHandle:
    """Start serving `project`'s production model in background threads; return at once.

    The model loads in the background: /ping answers 503 until it is ready (wait_ready()
    waits for that). on_change(served_model_or_None, message) is called from the watcher
    thread whenever the served model changes or a new deployment is refused.
    model_threads: OpenMP threads per request (None: the library's default, all cores).
    """
    from app.core.services.lifecycle import Keel

    if max_body_bytes <= 0:
        raise KeelError(f"the body size limit must be positive, got {max_body_bytes}")
    keel = Keel.open(keel_workspace_dir)
    try:
        project_row = keel.project(project)
        watcher = ProductionWatcher(keel, project_row, on_change, poll_seconds)
        sampler = ServedSampler(keel, sample_rate)
        server_class = _Server6 if ":" in host else _Server
        try:
            server = server_class((host, port), watcher, max_body_bytes, sampler, model_threads)
        except (OSError, OverflowError) as exc:
            sampler.stop()
            reason = getattr(exc, "strerror", None) or str(exc)
            raise KeelError(f"cannot listen on {host}:{port}: {reason}") from None
    except BaseException:
        keel.close()
        raise
    if not is_loopback(host):
        log.warning("serving %s on %s: reachable from other machines, with no authentication", project, host)
    handle = ServerHandle(keel, server, watcher, sampler, host)
    watcher.start()
    handle._thread.start()
    log.info("serving %s at %s", project, handle.url)
    return handle
