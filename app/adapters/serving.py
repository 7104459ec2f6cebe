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

from __future__ import annotations

import dataclasses
import http.server
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from app import __version__
from app.adapters import serving_protocol as protocol
from app.adapters.serving_protocol import RequestError
from app.core.domain.entities import Project, Schema
from app.core.domain.errors import KeelError
from app.core.services.prediction_log import LogPolicy, PredictionLogWriter, complete_ids

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

    from app.core.services.lifecycle import Keel

log = logging.getLogger("keel.serving")

OnChange = Callable[["ServedModel | None", str], None]  # (the model now served, what happened)

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
POLL_SECONDS = 0.5
IDLE_CONNECTION_SECONDS = 30.0
LINGER_SECONDS = 1.0  # after refusing a body: discard what the client still sends, so it reads our answer
MODEL_THREADS = 1
DEFAULT_MAX_CONNECTIONS = 64
BUSY_ANSWER_SECONDS = 1.0  # how long the accepting thread may spend answering 503 to one connection over the cap


class OpenMPLimit:
    """Caps the native threads (OpenMP, and BLAS) of the model calls of each request thread.

    Requests run in parallel already; a model that also starts an OpenMP team per call
    (histogram gradient boosting does) or a multi-threaded BLAS call (a linear model on a large
    request) oversubscribes the cores, and its spinning threads make a 1-row predict several
    times slower on a busy machine (bench/serve_bench.py). OpenMP's setting is per calling
    thread, so each request thread sets it once (~0.1 ms); BLAS's is the process's.
    """

    def __init__(self, threads: int | None):
        self.threads = threads
        self._controller: ThreadpoolController | None = None  # made on first use: importing it costs
        self._local = threading.local()

    def apply(self) -> None:
        if not self.threads or getattr(self._local, "done", False):
            return
        if self._controller is None:
            from threadpoolctl import ThreadpoolController  # a scikit-learn dependency

            self._controller = ThreadpoolController()
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
    schema: Schema
    model: object
    log_policy: LogPolicy = LogPolicy(0.0, 1, 1.0, None)  # the project's prediction log settings


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

    def __init__(self, keel: Keel, project: Project, on_change: OnChange | None = None,
                 poll_seconds: float = POLL_SECONDS, log_share: float | None = None) -> None:
        self.keel = keel
        self.log_share = log_share  # overrides the project's prediction_log share (serve --sample-rate)
        self.project = project
        self.on_change = on_change or (lambda served, message: None)
        self.poll_seconds = poll_seconds
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self.last_exception: Exception | None = None
        self.first_check_done = threading.Event()
        self._refused_deployment_id: int | None = None  # a deployment whose model failed its checks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"keel-serve-watch-{project.name}", daemon=True)

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
                log.exception("serving %s: checking the production model failed", self.project.name)
            finally:
                self.first_check_done.set()
            self._stop.wait(self.poll_seconds)

    def check(self) -> None:
        deployment = self.keel.deployment_in_production(self.project.id)
        current = self.current
        if deployment is None:
            if current is not None:
                self._publish(None, f"{self.project.name} has no production model any more; /ping answers 503")
            return
        policy = self._log_policy()
        if current is not None and deployment.model_version_id == current.model_version_id:
            if policy != current.log_policy:  # `project set` changed the log: no reload, same model
                self.current = dataclasses.replace(current, log_policy=policy)
            return
        if deployment.id == self._refused_deployment_id:
            return
        try:
            loaded = self.keel.load_version(self.project.name, deployment.version)
        except KeelError as exc:
            self._refused_deployment_id = deployment.id
            self.last_error = f"v{deployment.version} was not loaded: {exc}"
            self.last_exception = exc
            log.error("serving %s: %s", self.project.name, self.last_error)
            kept = f"; still serving v{current.version}" if current else ""
            self.on_change(current, f"refused v{deployment.version}: {exc}{kept}")
            return
        served = ServedModel(
            project=self.project.name, version=deployment.version, sha256=loaded.model_version.sha256,
            model_version_id=deployment.model_version_id, project_id=self.project.id,
            deployed_at=deployment.deployed_at, task=loaded.project.task, schema=loaded.project.schema,
            model=loaded.model, log_policy=policy)
        self.last_error = self.last_exception = None
        was = f" (was v{current.version})" if current else ""
        self._publish(served, f"now serving {served.project} v{served.version}{was}")

    def _log_policy(self) -> LogPolicy:
        settings = self.keel.project(self.project.name).settings
        policy = LogPolicy.of(settings)
        return policy if self.log_share is None else dataclasses.replace(policy, share=self.log_share)

    def _publish(self, served: ServedModel | None, message: str) -> None:
        self.current = served  # one reference assignment: requests see the old model or the new, never a mix
        log.info("serving %s: %s", self.project.name, message)
        self.on_change(served, message)


# --------------------------------------------------------------------------- HTTP
class OriginGuard:
    """Who may talk to the server from a browser. A web page can send a "simple" POST (text/csv)
    to 127.0.0.1 without a preflight, and a DNS-rebinding page reaches it under its own name: so
    the Host header must name this server (a loopback name or address, or the address it is bound
    to; any IP address when bound to all of them) with its bound port, and a request that carries
    an Origin must come from the server's own origin."""

    LOOPBACK_NAMES = ("localhost", "localhost.")

    def __init__(self, bound_host: str, port: int):
        self.port = port
        self.bound_host = bound_host.strip("[]").lower()
        self.all_addresses = self.bound_host in ("0.0.0.0", "::", "")

    def host_allowed(self, host_header: str | None) -> bool:
        if host_header is None:
            return True  # HTTP/1.0 clients and scripts; browsers always send Host
        parsed = _split_host(host_header)
        if parsed is None:
            return False
        host, port = parsed
        if port != self.port:
            return False
        if host in self.LOOPBACK_NAMES or host.endswith(".localhost"):
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False  # a name: a rebinding page's, or one we cannot vouch for
        return address.is_loopback or self.all_addresses or host == self.bound_host

    def origin_allowed(self, origin: str | None) -> bool:
        if origin is None:
            return True
        scheme, _, rest = origin.strip().partition("://")
        return scheme.lower() == "http" and "/" not in rest and self.host_allowed(rest)


def _split_host(value: str) -> tuple[str, int] | None:
    """("host", port) of a Host header or an origin's authority; None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else ""
    else:
        host, _, port_text = value.partition(":")
    if not host:
        return None
    if not port_text:
        return host, 80
    if not port_text.isdigit() or len(port_text) > 5:
        return None
    return host, int(port_text)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], watcher: ProductionWatcher, max_body_bytes: int,
                 prediction_log: PredictionLogWriter, model_threads: int | None,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self.watcher = watcher
        self.max_body_bytes = max_body_bytes
        self.prediction_log = prediction_log
        self.openmp_limit = OpenMPLimit(model_threads)
        self.max_connections = max_connections
        self._count = 0
        self._answered = 0
        self._count_lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        self._active = 0  # connections with a thread, from accept to close
        self._active_lock = threading.Lock()
        self.refused_busy = 0
        super().__init__(address, _Handler)
        self.guard = OriginGuard(address[0], self.server_address[1])

    # -- at most max_connections threads: beyond, a 503 from the accepting thread, then close
    def process_request(self, request: Any, client_address: Any) -> None:
        with self._active_lock:
            admitted = self._active < self.max_connections
            if admitted:
                self._active += 1
            else:
                self.refused_busy += 1
        if not admitted:
            self._answer_busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release_slot()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release_slot()

    def _release_slot(self) -> None:
        with self._active_lock:
            self._active -= 1

    @property
    def active_connections(self) -> int:
        with self._active_lock:
            return self._active

    def _answer_busy(self, connection: socket.socket) -> None:
        body = json.dumps({"error_code": "TOO_MANY_CONNECTIONS",
                           "message": f"the server has {self.max_connections} connections open (its limit): "
                                      "try again in a moment"}).encode()
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n"
                f"X-Keel-Model-Version: none\r\n\r\n").encode()
        try:
            connection.settimeout(BUSY_ANSWER_SECONDS)
            connection.sendall(head + body)
            connection.shutdown(socket.SHUT_WR)
            connection.setblocking(False)
            try:  # what the client already sent: read, so that closing does not reset the connection
                while connection.recv(65536):
                    pass
            except OSError:
                pass
        except OSError:
            pass
        finally:
            self.shutdown_request(connection)

    def count_request(self) -> None:
        with self._count_lock:
            self._count += 1

    @property
    def request_count(self) -> int:
        with self._count_lock:
            return self._count

    def count_answer(self) -> None:
        with self._count_lock:
            self._answered += 1

    @property
    def answered_count(self) -> int:
        with self._count_lock:
            return self._answered

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

    def handle_error(self, request: Any, client_address: Any) -> None:
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

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def send_response(self, code: int, message: str | None = None) -> None:
        self.server.count_answer()  # every answer, whatever the route or status
        super().send_response(code, message)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    # ------------------------------------------------------------------ routes
    def _refused_as_foreign(self) -> bool:
        """A request from a web page (foreign Origin) or under a foreign name (Host): 403, closed."""
        guard = self.server.guard
        if not guard.host_allowed(self.headers.get("Host")):
            error = RequestError(f"Host {self.headers.get('Host')!r} is not this server: use "
                                 f"http://127.0.0.1:{guard.port}", 403, "FORBIDDEN_HOST")
        elif not guard.origin_allowed(self.headers.get("Origin")):
            error = RequestError(f"requests from the web page at {self.headers.get('Origin')!r} are refused: "
                                 "the scoring server answers local programs, not browsers", 403, "FORBIDDEN_ORIGIN")
        else:
            return False
        self.close_connection = True  # a body, if any, is not read
        self._send_error(error, self.server.watcher.current)
        return True

    def do_GET(self) -> None:
        if self._refused_as_foreign():
            return
        path, _ = self._route()
        served = self.server.watcher.current
        if path in ("/ping", "/health"):
            if served is None:
                self._send_error(self._no_model_error(), None)
            else:
                self._send_json(200, {"status": "ready", "project": served.project, "version": served.version}, served)
        elif path == "/version":
            self._send_json(200, {"project": self.server.watcher.project.name,
                                  "version": served.version if served else None,
                                  "sha256": served.sha256 if served else None,
                                  "deployed_at": served.deployed_at if served else None,
                                  "keel": __version__}, served)
        elif path == "/invocations":
            self._send_error(RequestError("use POST for /invocations", 405, "METHOD_NOT_ALLOWED"), served,
                             {"Allow": "POST"})
        else:
            self._send_error(self._not_found(path), served)

    def do_POST(self) -> None:
        if self._refused_as_foreign():
            return
        path, query = self._route()
        if path != "/invocations":
            self.close_connection = True  # the body is not read
            status = (RequestError(f"use GET for {path}", 405, "METHOD_NOT_ALLOWED")
                      if path in ("/ping", "/health", "/version") else self._not_found(path))
            self._send_error(status, self.server.watcher.current)
            return
        self._invocations(query)

    def _refuse_method(self) -> None:
        if self._refused_as_foreign():
            return
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
        name, problem = watcher.project.name, watcher.last_error
        if not watcher.first_check_done.is_set():
            message = f"project {name!r}: the production model is still loading; try again in a moment"
        elif problem:
            message = f"project {name!r} has no production model loaded ({problem})"
        else:
            message = f"project {name!r} has no production model yet: deploy a version"
        return RequestError(message, 503, "NO_PRODUCTION_MODEL")

    # ------------------------------------------------------------------ scoring
    def _invocations(self, query: dict) -> None:
        served = self.server.watcher.current  # read once: this request uses this model to the end
        body = None
        try:
            body = self._read_body()  # first: an unread body would be taken for the next request on the connection
            probabilities = protocol.parse_flag(query.get("probabilities", []), "probabilities")
            if served is None:
                raise self._no_model_error()
            table = protocol.parse_body(body, self.headers.get("Content-Type", ""), served.schema.features)
            X = protocol.model_frame(table, served.schema)
            self.server.openmp_limit.apply()  # after the model is loaded: its OpenMP runtime is in the process
            payload = protocol.predictions_payload(served.model, served.task, X, probabilities)
            policy = served.log_policy
            if policy.returns_ids:
                given = table.columns.get(policy.id_column) if policy.id_column else None
                payload["ids"] = complete_ids(given, len(X))
                if policy.enabled:  # recorded before the answer leaves: a shutdown after it cannot lose it
                    self.server.prediction_log.add(
                        served.project_id, served.model_version_id, served.model,
                        served.task == "classification" and hasattr(served.model, "predict_proba"),
                        payload["ids"], X, payload["predictions"], payload.get("probabilities"), policy)
            self._send_json(200, payload, served)
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

    def handle_expect_100(self) -> bool:
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
    def _send_json(self, status: int, payload: dict, served: ServedModel | None, headers: dict | None = None) -> None:
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

    def _send_error(self, error: RequestError, served: ServedModel | None, headers: dict | None = None) -> None:
        self._send_json(error.status, {"error_code": error.error_code, "message": error.message}, served, headers)
        if error.status == 413:
            self._linger()

    def _linger(self) -> None:
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

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's errors (bad request line, header too long...) as JSON too."""
        self.close_connection = True
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
            # a garbage request line leaves the version at HTTP/0.9, which would send the body with no
            # status line and no headers; HTTP/9.9 and the like get a 1.1 answer too
            self.request_version = "HTTP/1.1"
        status = HTTPStatus(code)
        error = RequestError(message or status.phrase, code, status.name)
        self._send_json(code, {"error_code": error.error_code, "message": error.message},
                        self.server.watcher.current)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", self.address_string(), format % args)


# --------------------------------------------------------------------------- the handle
class ServerHandle:
    """A running server. Thread-safe to read; stop() once."""

    def __init__(self, keel: Keel, server: _Server, watcher: ProductionWatcher, prediction_log: PredictionLogWriter,
                 host: str) -> None:
        self._keel = keel
        self._server = server
        self._watcher = watcher
        self._prediction_log = prediction_log
        self.host = host
        self.port = server.server_address[1]
        shown_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown_host}:{self.port}"
        self.project = watcher.project.name
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"keel-serve-{self.project}", daemon=True)
        self._stopped = False

    @property
    def request_count(self) -> int:
        """Scoring requests answered (POST /invocations, whatever the outcome)."""
        return self._server.request_count

    @property
    def answered_count(self) -> int:
        """Every request answered: scoring, /ping, /health, /version, errors."""
        return self._server.answered_count

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
    def logged_rows(self) -> int:
        """Rows committed to the prediction log so far."""
        return self._prediction_log.written

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
        self._prediction_log.stop(timeout)  # after the connections: every answered request is in its buffer
        self._keel.close()
        log.info("serving %s: stopped after %d request(s)", self.project, self.request_count)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(keel_workspace_dir: str | os.PathLike | None, project: str, host: str = "127.0.0.1", port: int = 0,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, sample_rate: float | None = None,
                 on_change: OnChange | None = None, poll_seconds: float = POLL_SECONDS,
                 model_threads: int | None = MODEL_THREADS,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> ServerHandle:
    """Start serving `project`'s production model in background threads; return at once.

    The model loads in the background: /ping answers 503 until it is ready (wait_ready()
    waits for that). on_change(served_model_or_None, message) is called from the watcher
    thread whenever the served model changes or a new deployment is refused.
    model_threads: OpenMP threads per request (None: the library's default, all cores).
    sample_rate: the share of scored rows recorded in the prediction log, overriding the
    project's prediction_log setting (None: the setting).
    max_connections: open connections served at once; one more gets a 503 and is closed.
    """
    from app.core.services.lifecycle import Keel

    if max_body_bytes <= 0:
        raise KeelError(f"the body size limit must be positive, got {max_body_bytes}")
    if sample_rate is not None and not 0.0 <= sample_rate <= 1.0:
        raise KeelError(f"sample rate {sample_rate} is outside 0..1")
    if max_connections < 1:
        raise KeelError(f"the connection limit must be at least 1, got {max_connections}")
    keel = Keel.open(keel_workspace_dir)
    try:
        project_row = keel.project(project)
        watcher = ProductionWatcher(keel, project_row, on_change, poll_seconds, log_share=sample_rate)
        prediction_log = keel.prediction_log_writer()
        server_class = _Server6 if ":" in host else _Server
        try:
            server = server_class((host, port), watcher, max_body_bytes, prediction_log, model_threads,
                                  max_connections)
        except (OSError, OverflowError) as exc:
            prediction_log.stop()
            reason = getattr(exc, "strerror", None) or str(exc)
            raise KeelError(f"cannot listen on {host}:{port}: {reason}") from None
    except BaseException:
        keel.close()
        raise
    if not is_loopback(host):
        log.warning("serving %s on %s: reachable from other machines, with no authentication", project, host)
    handle = ServerHandle(keel, server, watcher, prediction_log, host)
    watcher.start()
    handle._thread.start()
    log.info("serving %s at %s", project, handle.url)
    return handle
