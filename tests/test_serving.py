"""The scoring server: real HTTP on an ephemeral 127.0.0.1 port (app/adapters/serving.py)."""

import dataclasses
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from serving_helpers import FEATURES, ROW, ready_server

from app.adapters import serving, serving_protocol
from app.core.domain.errors import KeelError, ValidationError
from app.core.ml import datasets
from app.core.services.lifecycle import Keel
from app.demo.simulator import make_batch

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace: `credit` (v1 in production, v2 trained), `fresh` (v1 trained, not deployed),
    `nodeploy` (nothing trained)."""
    root = tmp_path_factory.mktemp("serving") / "workspace"
    data = tmp_path_factory.getbasetemp() / "credit.csv"
    make_batch(600, seed=5).to_csv(data, index=False)
    keel = Keel.open(root)
    try:
        for name in ("credit", "fresh", "nodeploy"):
            keel.create_project(name, data, "default", settings={"preset": "logreg"})
        keel.train("credit")
        keel.set_project("credit", {"params": {"C": 0.01}})
        keel.train("credit")
        keel.deploy("credit", 1)
        keel.train("fresh")
    finally:
        keel.close()
    return root


@pytest.fixture(scope="module")
def server(ws):
    with ready_server(ws, "credit") as handle:
        yield handle


def request(url, path="/invocations", body=None, content_type="application/json", method=None, timeout=10):
    """A plain HTTP call: (status, headers, parsed JSON body)."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    headers = {"Content-Type": content_type} if data is not None else {}
    req = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            return answer.status, answer.headers, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def direct_scores(ws, frame: pd.DataFrame, version=1) -> pd.DataFrame:
    """What the model says when called directly, through the project's own batch scoring."""
    keel = Keel.open(ws)
    try:
        loaded = keel.load_version("credit", version)
        scores, _ = keel.score_frame(loaded, datasets.RawTable(frame, "direct"))
        return scores
    finally:
        keel.close()


def wait_for(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --------------------------------------------------------------------------- the protocol
def test_ping_health_and_version_answer_with_the_production_model(server):
    for path in ("/ping", "/health"):
        status, headers, body = request(server.url, path)
        assert status == 200 and body["version"] == 1
        assert headers["X-Keel-Model-Version"] == "1"
    status, headers, body = request(server.url, "/version")
    assert status == 200
    assert body["project"] == "credit" and body["version"] == 1 and re.fullmatch(r"[0-9a-f]{64}", body["sha256"])
    assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0


def test_an_mlflow_client_body_gets_the_same_predictions_as_calling_the_model(server, ws):
    batch = make_batch(40, seed=21)
    expected = direct_scores(ws, batch)
    # what MLflow's documentation tells a client to send, built with pandas and sent with a plain HTTP client
    body = {"dataframe_split": json.loads(batch.to_json(orient="split"))}
    status, headers, answer = request(server.url, body=body)
    assert status == 200, answer
    assert headers["X-Keel-Model-Version"] == "1"
    assert answer["predictions"] == expected["prediction"].tolist()
    assert len(set(answer["predictions"])) == 2  # a real mix of answers, not a constant


def test_every_input_format_gives_the_same_predictions(server, ws):
    batch = make_batch(25, seed=8).drop(columns=["default"])
    expected = direct_scores(ws, batch)["prediction"].tolist()
    records = json.loads(batch.to_json(orient="records"))
    rows = [[record[f] for f in FEATURES] for record in records]
    columns = {f: [record[f] for record in records] for f in FEATURES}
    bodies = {
        "dataframe_split": {"dataframe_split": {"columns": FEATURES, "data": rows}},
        "dataframe_records": {"dataframe_records": records},
        "instances (rows as objects)": {"instances": records},
        "instances (rows as lists)": {"instances": rows},
        "inputs (rows as lists)": {"inputs": rows},
        "inputs (columns)": {"inputs": columns},
        "inputs with params": {"inputs": records, "params": {}},
    }
    for name, body in bodies.items():
        status, _, answer = request(server.url, body=body)
        assert status == 200, (name, answer)
        assert answer["predictions"] == expected, name
    legacy = batch.to_json(orient="split", index=False).encode()
    status, _, answer = request(server.url, body=legacy, content_type="application/json; format=pandas-split")
    assert status == 200 and answer["predictions"] == expected
    status, _, answer = request(server.url, body={"inputs": records[0]})  # one row as an object
    assert status == 200 and answer["predictions"] == expected[:1]


def test_text_csv(server, ws):
    batch = make_batch(30, seed=9)
    expected = direct_scores(ws, batch)["prediction"].tolist()
    csv_body = batch.to_csv(index=False).encode()
    status, headers, answer = request(server.url, body=csv_body, content_type="text/csv; charset=utf-8")
    assert status == 200, answer
    assert answer["predictions"] == expected and headers["X-Keel-Model-Version"] == "1"


def test_probabilities(server, ws):
    batch = make_batch(20, seed=10)
    expected = direct_scores(ws, batch)
    status, _, answer = request(server.url, "/invocations?probabilities=true",
                                body={"dataframe_records": json.loads(batch.to_json(orient="records"))})
    assert status == 200, answer
    assert answer["classes"] == [0, 1]
    assert answer["predictions"] == expected["prediction"].tolist()
    probabilities = np.array(answer["probabilities"])
    assert probabilities.shape == (20, 2)
    np.testing.assert_allclose(probabilities, expected[["proba_0", "proba_1"]].to_numpy(), rtol=0, atol=1e-12)
    status, _, answer = request(server.url, "/invocations?probabilities=false", body={"inputs": [ROW]})
    assert status == 200 and set(answer) == {"predictions"}


def test_cells_are_read_like_csv_text_and_nulls_are_missing(server):
    variants = [ROW, {**ROW, "income": "42000", "age": " 35 ", "has_mortgage": True},
                {**ROW, "has_mortgage": 1}, {**ROW, "region": " north "}]
    answers = [request(server.url, body={"inputs": [row]})[2]["predictions"] for row in variants]
    assert all(a == answers[0] for a in answers)
    status, _, answer = request(server.url, body={"inputs": [{**ROW, "income": None, "region": "NA"}]})
    assert status == 200, answer  # missing cells are imputed, as in a batch file


BAD_REQUESTS = [
    ("malformed JSON", b'{"inputs": [1,', "application/json", 400, "MALFORMED_REQUEST", "malformed JSON"),
    ("empty body", b"", "application/json", 400, "MALFORMED_REQUEST", "empty"),
    ("not UTF-8", b"\xff\xfe\xfa", "application/json", 400, "MALFORMED_REQUEST", "JSON"),
    ("a list, not an object", b"[1, 2]", "application/json", 400, "MALFORMED_REQUEST", "object"),
    ("unknown format key", {"rows": [ROW]}, "application/json", 400, "MALFORMED_REQUEST", "'rows'"),
    ("two format keys", {"inputs": [ROW], "instances": [ROW]}, "application/json", 400, "MALFORMED_REQUEST",
     "exactly one"),
    ("no format key", {"params": {}}, "application/json", 400, "MALFORMED_REQUEST", "exactly one"),
    ("split without data", {"dataframe_split": {"columns": FEATURES}}, "application/json", 400,
     "MALFORMED_REQUEST", "'data'"),
    ("missing feature column", {"dataframe_records": [{k: v for k, v in ROW.items() if k != "age"}]},
     "application/json", 400, "BAD_REQUEST", "missing feature column(s) 'age'"),
    ("number column given text", {"inputs": [{**ROW, "income": "lots"}]}, "application/json", 400, "BAD_REQUEST",
     "column 'income'"),
    ("number column given true", {"inputs": [ROW, {**ROW, "debt_ratio": True}]}, "application/json", 400,
     "BAD_REQUEST", "column 'debt_ratio': 1 cell(s) not readable as numbers (first: row 2, 'true')"),
    ("boolean column given text", {"inputs": [{**ROW, "has_mortgage": "maybe"}]}, "application/json", 400,
     "BAD_REQUEST", "column 'has_mortgage'"),
    ("a nested value", {"inputs": [{**ROW, "region": ["north"]}]}, "application/json", 400, "BAD_REQUEST",
     "column 'region'"),
    ("a short row", {"inputs": [[1, 2]]}, "application/json", 400, "BAD_REQUEST", "row 1 has 2 value(s)"),
    ("no rows", {"dataframe_records": []}, "application/json", 400, "BAD_REQUEST", "no rows"),
    ("unsupported media type", b"income=1", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE",
     "text/csv"),
    ("CSV without a feature", b"income,age\n1,2\n", "text/csv", 400, "BAD_REQUEST", "'debt_ratio'"),
    ("CSV with a bad cell", (b"income,age,debt_ratio,tenure_months,region,has_mortgage\n"
                             b"1,abc,0.1,3,north,no\n"), "text/csv", 400, "BAD_REQUEST", "column 'age'"),
    ("probabilities=maybe", {"inputs": [ROW]}, "application/json", 400, "BAD_REQUEST", "probabilities"),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_a_json_4xx_that_says_what_is_wrong(server, case):
    name, body, content_type, status, code, fragment = case
    path = "/invocations?probabilities=maybe" if name.startswith("probabilities") else "/invocations"
    got, headers, answer = request(server.url, path, body=body, content_type=content_type)
    assert got == status, answer
    assert answer["error_code"] == code and fragment in answer["message"], answer
    assert "Traceback" not in answer["message"] and headers["X-Keel-Model-Version"] == "1"


def test_refused_requests_leave_a_keep_alive_connection_in_step(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for name, body, content_type, status, _, _ in BAD_REQUESTS:
            path = "/invocations?probabilities=maybe" if name.startswith("probabilities") else "/invocations"
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            connection.request("POST", path, body=data, headers={"Content-Type": content_type})
            answer = connection.getresponse()
            assert answer.status == status and json.loads(answer.read())["error_code"], name
        connection.request("POST", "/invocations", body=json.dumps({"inputs": [ROW]}),
                           headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        assert answer.status == 200 and "predictions" in json.loads(answer.read())
    finally:
        connection.close()


def test_wrong_paths_and_methods(server):
    assert request(server.url, "/nope")[0] == 404
    assert request(server.url, "/invocations")[0] == 405  # GET
    assert request(server.url, "/ping", body={"inputs": [ROW]})[0] == 405
    status, headers, answer = request(server.url, "/invocations", body=b"{}", method="PUT")
    assert status == 405 and answer["error_code"] == "METHOD_NOT_ALLOWED"
    # a broken request line gets JSON too, and the server carries on
    too_many_headers = b"".join(b"X-%d: y\r\n" % i for i in range(120))
    reply = raw_exchange(server.port, b"GET /ping HTTP/1.1\r\n" + too_many_headers + b"\r\n")
    assert reply.startswith("HTTP/1.1 431") and '"error_code"' in reply
    assert '"error_code"' in raw_exchange(server.port, b"GARBAGE\r\n\r\n")  # not HTTP: still a status line and a JSON body
    assert request(server.url, "/ping")[0] == 200


def test_a_failing_model_is_a_500_with_a_message_and_the_server_carries_on(server):
    class Broken:
        def predict(self, X):
            raise RuntimeError("the model fell over")

    watcher = server._watcher
    real = watcher.current
    watcher.current = dataclasses.replace(real, model=Broken())
    try:
        status, _, answer = request(server.url, body={"inputs": [ROW]})
    finally:
        watcher.current = real
    assert status == 500 and answer["error_code"] == "INTERNAL_ERROR" and "fell over" in answer["message"]
    assert request(server.url, body={"inputs": [ROW]})[0] == 200


# --------------------------------------------------------------------------- size limit
@pytest.fixture(scope="module")
def small_server(ws):
    with ready_server(ws, "credit", max_body_bytes=4096) as handle:
        yield handle


def raw_exchange(port, data: bytes, timeout=5.0) -> str:
    """Send raw bytes (`Host: HOST` becomes this server's own Host header); read until closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data.replace(b"Host: HOST", f"Host: 127.0.0.1:{port}".encode()))
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("latin-1")


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(small_server):
    started = time.monotonic()
    reply = raw_exchange(small_server.port, b"POST /invocations HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\n"
                                            b"Content-Length: 1000000000\r\n\r\n")
    assert reply.startswith("HTTP/1.1 413") and "REQUEST_TOO_LARGE" in reply and "4096 byte limit" in reply
    assert time.monotonic() - started < 3  # answered at once, without waiting for a gigabyte


def test_expect_100_continue_over_the_limit_gets_413_not_continue(small_server):
    reply = raw_exchange(small_server.port, b"POST /invocations HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\n"
                                            b"Expect: 100-continue\r\nContent-Length: 50000\r\n\r\n")
    assert reply.startswith("HTTP/1.1 413") and "100 Continue" not in reply
    body = json.dumps({"inputs": [ROW]}).encode()
    with socket.create_connection(("127.0.0.1", small_server.port), timeout=5) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                     b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                     % (small_server.port, len(body)))
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")  # at once, not after the client gives up waiting
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_a_real_oversized_body_reads_413_not_a_connection_reset(small_server):
    body = json.dumps({"inputs": [ROW] * 400}).encode()
    assert len(body) > 4096
    connection = http.client.HTTPConnection("127.0.0.1", small_server.port, timeout=10)
    try:
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        assert answer.status == 413 and json.loads(answer.read())["error_code"] == "REQUEST_TOO_LARGE"
    finally:
        connection.close()


def chunked(body: bytes, size=1000) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def test_chunked_bodies_are_read_under_the_limit_and_refused_over_it(small_server):
    head = b"POST /invocations HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    small = json.dumps({"inputs": [ROW]}).encode()
    reply = raw_exchange(small_server.port, head + b"Connection: close\r\n\r\n" + chunked(small, 40))
    assert reply.startswith("HTTP/1.1 200") and '"predictions"' in reply
    big = json.dumps({"inputs": [ROW] * 400}).encode()
    reply = raw_exchange(small_server.port, head + b"\r\n" + chunked(big))
    assert reply.startswith("HTTP/1.1 413") and "chunked" in reply
    reply = raw_exchange(small_server.port, head + b"\r\nzz\r\n")
    assert reply.startswith("HTTP/1.1 400") and "chunk" in reply


def test_a_post_without_a_length_gets_411(small_server):
    reply = raw_exchange(small_server.port, b"POST /invocations HTTP/1.1\r\nHost: HOST\r\nContent-Type: application/json\r\n\r\n")
    assert reply.startswith("HTTP/1.1 411")
    assert request(small_server.url, "/ping")[0] == 200


# --------------------------------------------------------------------------- deployments
def test_without_a_deployment_ping_is_503_until_a_deploy(ws):
    with ready_server(ws, "fresh") as handle:
        status, headers, answer = request(handle.url, "/ping")
        assert status == 503 and answer["error_code"] == "NO_PRODUCTION_MODEL" and "deploy" in answer["message"]
        assert headers["X-Keel-Model-Version"] == "none"
        status, _, answer = request(handle.url, body={"inputs": [ROW]})
        assert status == 503 and handle.request_count == 1
        assert request(handle.url, "/version")[2]["version"] is None
        keel = Keel.open(ws)
        try:
            keel.deploy("fresh", 1)
        finally:
            keel.close()
        deployed = time.monotonic()
        assert wait_for(lambda: request(handle.url, "/ping")[0] == 200, timeout=2.0)
        assert time.monotonic() - deployed <= 2.0
        status, headers, answer = request(handle.url, body={"inputs": [ROW]})
        assert status == 200 and headers["X-Keel-Model-Version"] == "1" and handle.model_version == 1


def run_cli(ws, *args):
    result = subprocess.run([sys.executable, "main.py", "--workspace", str(ws), *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def test_deploy_and_rollback_from_another_process_switch_models_without_a_failed_request(server, ws):
    seen: list[tuple[float, str]] = []
    failures: list[str] = []
    stop = threading.Event()

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        body = json.dumps({"inputs": [ROW]})
        deadline = time.monotonic() + 40
        for _ in range(20000):  # bounded in count and in time
            if stop.is_set() or time.monotonic() > deadline:
                break
            try:
                connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
                answer = connection.getresponse()
                payload = answer.read()
                if answer.status != 200:
                    failures.append(f"{answer.status} {payload[:200]!r}")
                seen.append((time.monotonic(), answer.headers["X-Keel-Model-Version"]))
            except Exception as exc:
                failures.append(repr(exc))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            time.sleep(0.002)
        connection.close()

    thread = threading.Thread(target=client)
    thread.start()
    try:
        assert wait_for(lambda: len(seen) > 5, 5)
        run_cli(ws, "deploy", "credit", "--version", "2")
        deployed = time.monotonic()
        assert wait_for(lambda: seen and seen[-1][1] == "2", 2.0), "v2 not picked up within 2 s"
        switch_seconds = next(t for t, v in seen if v == "2") - deployed
        run_cli(ws, "rollback", "credit")  # (the switch may land before the process has even exited)
        assert wait_for(lambda: seen[-1][1] == "1", 2.0), "rollback not picked up within 2 s"
    finally:
        stop.set()
        thread.join(30)
    assert not failures, failures[:5]
    versions = [v for _, v in seen]
    changes = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
    assert changes == ["1", "2", "1"], changes
    assert switch_seconds <= 2.0
    assert server.request_count >= len(seen)


def test_a_request_in_flight_finishes_on_the_model_it_started_with(server):
    class Slow:
        def __init__(self, model):
            self.model = model

        def predict(self, X):
            time.sleep(0.4)
            return self.model.predict(X)

    watcher = server._watcher
    real = watcher.current
    watcher.current = dataclasses.replace(real, model=Slow(real.model))
    answers = {}
    thread = threading.Thread(target=lambda: answers.update(slow=request(server.url, body={"inputs": [ROW]})))
    thread.start()
    time.sleep(0.15)
    watcher.current = dataclasses.replace(real, version=99)  # what a deploy does: one new reference
    try:
        fresh = request(server.url, body={"inputs": [ROW]})
        thread.join(10)
    finally:
        watcher.current = real
    assert answers["slow"][0] == 200 and answers["slow"][1]["X-Keel-Model-Version"] == str(real.version)
    assert fresh[0] == 200 and fresh[1]["X-Keel-Model-Version"] == "99"


def test_a_version_that_fails_its_integrity_check_is_refused_and_the_old_one_kept(ws, capsys, store):
    keel = Keel.open(ws)
    try:
        keel.train("nodeploy")
        keel.train("nodeploy")
        keel.deploy("nodeploy", 1)
        with ready_server(ws, "nodeploy", poll_seconds=0.1) as handle:
            assert handle.model_version == 1
            project = keel.project("nodeploy")
            v2 = store(keel).model_version(project.id, 2)
            # v2 is deployed, but its file no longer matches the registry by the time the server loads it
            with store(keel).transaction():
                store(keel).insert_deployment(project_id=project.id, model_version_id=v2.id,
                                                replaced_deployment_id=None, by="user", reason="test", is_rollback=0)
                store(keel).conn.execute("UPDATE model_versions SET sha256 = ? WHERE id = ?", ("0" * 64, v2.id))
            artifact = ws / "artifacts" / "nodeploy" / "v2.skops"
            assert wait_for(lambda: handle.last_error is not None, 3)
            assert "integrity" in handle.last_error and handle.model_version == 1
            assert request(handle.url, body={"inputs": [ROW]})[1]["X-Keel-Model-Version"] == "1"
            assert artifact.exists()
    finally:
        keel.close()
    from app.frontends.cli import main

    # a fresh `serve` has no model to keep: it refuses to start, with the integrity exit code
    assert main(["--workspace", str(ws), "serve", "nodeploy", "--port", "0"]) == 1
    assert "integrity" in capsys.readouterr().err


# --------------------------------------------------------------------------- the CLI
def start_cli_server(ws, name, *extra):
    process = subprocess.Popen([sys.executable, "main.py", "--workspace", str(ws), "serve", name, "--port", "0",
                                *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, process.stdout.readline()


def stop_cli_server(process) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=15)
    return out, err


def test_cli_serve_prints_where_it_serves_and_stops_cleanly_on_sigterm(server, ws):
    process, first_line = start_cli_server(ws, "credit")
    try:
        match = re.fullmatch(r"Serving credit v(\d+) at http://127\.0\.0\.1:(\d+)\n", first_line)
        assert match, first_line
        url = f"http://127.0.0.1:{match.group(2)}"
        status, headers, _ = request(url, "/ping")
        assert status == 200 and headers["X-Keel-Model-Version"] == match.group(1)
        assert request(url, body={"inputs": [ROW]})[0] == 200
    finally:
        out, err = stop_cli_server(process)
    assert process.returncode == 0, err
    assert "Stopped serving credit after 1 request(s)" in out and err == ""


def test_cli_serve_without_a_production_model_says_so(ws):
    keel = Keel.open(ws)
    try:
        keel.create_project("empty", ws.parent.parent / "credit.csv", "default", settings={"preset": "logreg"})
    finally:
        keel.close()
    process, first_line = start_cli_server(ws, "empty")
    try:
        assert re.fullmatch(r"Serving empty \(no production model yet\) at http://127\.0\.0\.1:\d+\n", first_line)
        assert request(first_line.split(" at ")[1].strip(), "/ping")[0] == 503
    finally:
        out, err = stop_cli_server(process)
    assert process.returncode == 0, err


def test_cli_serve_refuses_an_unknown_project_and_a_taken_port(server, ws, capsys):
    from app.frontends.cli import main

    assert main(["--workspace", str(ws), "serve", "nosuch", "--port", "0"]) == 2
    assert "nosuch" in capsys.readouterr().err
    assert main(["--workspace", str(ws), "serve", "credit", "--port", str(server.port)]) == 2
    assert f"cannot listen on 127.0.0.1:{server.port}" in capsys.readouterr().err


def test_only_loopback_addresses_count_as_local():
    assert serving.is_loopback("127.0.0.1") and serving.is_loopback("::1") and serving.is_loopback("localhost")
    assert not serving.is_loopback("0.0.0.0") and not serving.is_loopback("192.168.1.5")


# --------------------------------------------------------------------------- the prediction log
def test_sample_rate_records_served_rows_in_the_prediction_log(ws, store):
    keel = Keel.open(ws)
    try:
        project_id = keel.project("credit").id
        before = store(keel).prediction_log_summary(project_id).last_id
    finally:
        keel.close()
    with ready_server(ws, "credit", sample_rate=1.0) as handle:
        answers = [request(handle.url, body={"inputs": [ROW] * rows}) for rows in (1, 3)]
    assert [status for status, _, _ in answers] == [200, 200]
    assert [len(body["ids"]) for _, _, body in answers] == [1, 3]  # no ID column: Keel assigned them
    keel = Keel.open(ws)
    try:
        records = store(keel).predictions(project_id, after_id=before)
    finally:
        keel.close()
    assert [r.record_id for r in records] == answers[0][2]["ids"] + answers[1][2]["ids"]
    assert [r.prediction for r in records] == answers[0][2]["predictions"] + answers[1][2]["predictions"]
    assert records[-1].inputs[4] == "north" and len(records[-1].probabilities) == 2
    with pytest.raises(KeelError):
        serving.start_server(ws, "credit", sample_rate=2.0)


# --------------------------------------------------------------------------- the fast path agrees with clean()
NUMERIC_CELLS = [1, 0, -7, 1.5, -0.0, 1e-300, 10**20, 10**400, float("nan"), float("inf"), True, False, None,
                 "1", " 2 ", "+4", "++4", "-+1", "1e3", "1E-2", ".5", "5.", "1_000", "١٢", "１２", "\xa012",
                 "inf", "-Infinity", "iNf", "infinite", "nan", "-nan", "NA", "n/a", "?", "-", "--", "", "  ",
                 "abc", "1,5", "0x10", "1.2.3", "1e", "0.1"]
BOOLEAN_CELLS = [True, False, 1, 0, 1.0, 0.0, 2, 0.5, "yes", "No", " TRUE ", "t", "F", "y", "n", "1", "1.0",
                 "0.0", "01", "maybe", None, "", "NA", "null", float("nan")]
CATEGORICAL_CELLS = ["north", " south ", "unseen", "", None, "NA", "None", 1, 1.5, True, float("nan"), "ünï"]


@pytest.fixture(scope="module")
def schema(ws):
    keel = Keel.open(ws)
    try:
        return keel.project("credit").schema
    finally:
        keel.close()


def both_paths(table, schema):
    fast = serving_protocol.fast_model_frame(table, schema)
    try:
        strict = serving_protocol.strict_model_frame(table, schema)
    except serving_protocol.RequestError as exc:
        return fast, exc
    return fast, strict


@pytest.mark.parametrize("column,cells", [("income", NUMERIC_CELLS), ("has_mortgage", BOOLEAN_CELLS),
                                          ("region", CATEGORICAL_CELLS)])
def test_fast_path_and_clean_agree_cell_by_cell(schema, column, cells):
    fast_taken = 0
    for cell in cells:
        table = serving_protocol.RequestTable({k: [cell if k == column else v] for k, v in ROW.items()}, 1)
        fast, strict = both_paths(table, schema)
        if isinstance(strict, Exception):
            assert fast is None, (cell, str(strict))
        elif fast is not None:
            fast_taken += 1
            pd.testing.assert_frame_equal(fast, strict, check_exact=True, obj=repr(cell))
    assert fast_taken >= len(cells) // 2  # the fast path is really used, not always bailing out


def test_fast_path_and_clean_agree_on_mixed_columns(schema):
    table = serving_protocol.RequestTable({
        "income": [1, "2", None, " 3 ", 4.5, "NA"], "age": ["30", 40, 50.0, None, "+1", "1e1"],
        "debt_ratio": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "tenure_months": [1, 2, 3, 4, 5, 6],
        "region": ["north", 3, None, "east ", "", "x"], "has_mortgage": [True, "no", 1, 0.0, None, "Y"],
        "default": [1, 0, 1, 0, 1, "ignored"]}, 6)
    fast, strict = both_paths(table, schema)
    assert fast is not None
    pd.testing.assert_frame_equal(fast, strict, check_exact=True)


def test_strict_cleaning_names_the_column_where_batch_cleaning_warns(schema):
    frame = pd.DataFrame({**{k: [str(v)] * 2 for k, v in ROW.items()}, "age": ["31", "old"]})
    raw = datasets.RawTable(frame, "file.csv")
    batch = datasets.clean(raw, schema, purpose="predict")
    assert any("column 'age'" in w and "treated as missing" in w for w in batch.warnings)
    with pytest.raises(ValidationError, match=r"file.csv: column 'age': 1 cell\(s\) not readable as numbers "
                                              r"\(first: row 2, 'old'\)"):
        datasets.clean(raw, schema, purpose="predict", strict=True)
