"""The scoring server against hostile input: numbers JSON cannot mean, a fuzzed request
parser that never answers 500, broken request lines, too many connections, and requests
from web pages (foreign Origin, DNS rebinding)."""

import json
import socket
import string
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from serving_helpers import FEATURES, ROW, ready_server

from app.adapters import serving, serving_protocol
from app.adapters.serving_protocol import RequestError
from app.core.services.lifecycle import Keel
from app.demo.simulator import make_batch

HUGE_INTEGER = "9" * 5000  # past Python's 4,300-digit int-string limit


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening") / "workspace"
    data = tmp_path_factory.getbasetemp() / "credit-hardening.csv"
    make_batch(300, seed=8).to_csv(data, index=False)
    keel = Keel.open(root)
    try:
        keel.create_project("credit", data, "default", settings={"preset": "logreg"})
        keel.train("credit")
        keel.deploy("credit", 1)
    finally:
        keel.close()
    return root


@pytest.fixture(scope="module")
def loaded(ws):
    keel = Keel.open(ws)
    try:
        yield keel.load_production("credit")
    finally:
        keel.close()


@pytest.fixture(scope="module")
def server(ws):
    with ready_server(ws, "credit", max_connections=4) as handle:
        yield handle


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read the answer until the server closes (or a complete answer arrives)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                part = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not part:
                break
            received += part
            head, _, body = received.partition(b"\r\n\r\n")
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
            if length and len(body) >= length[0]:
                break
        return received


def post(port: int, body: bytes, headers: dict | None = None, content_type: str = "application/json") -> tuple[int, dict]:
    fields = {"Host": f"127.0.0.1:{port}", "Content-Type": content_type, "Content-Length": str(len(body)),
              "Connection": "close", **(headers or {})}
    head = "POST /invocations HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    answer = exchange(port, head.encode() + body)
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


# --------------------------------------------------------------------------- numbers
NOT_A_FLOAT64 = [HUGE_INTEGER, "-" + HUGE_INTEGER, "1" + "0" * 400, "1e999", "-1e400", "NaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize("number", NOT_A_FLOAT64)
@pytest.mark.parametrize("layout", ["dataframe_records", "dataframe_split", "instances_rows", "inputs_columns"])
def test_a_number_outside_float64_is_a_400_naming_its_column(loaded, number, layout):
    other = json.dumps({k: v for k, v in ROW.items() if k != "age"})[1:-1]
    if layout == "dataframe_records":
        body = f'{{"dataframe_records": [{json.dumps(ROW)}, {{{other}, "age": {number}}}]}}'
    elif layout == "dataframe_split":
        cells = ", ".join(number if f == "age" else json.dumps(ROW[f]) for f in FEATURES)
        body = f'{{"dataframe_split": {{"columns": {json.dumps(FEATURES)}, "data": [[{cells}]]}}}}'
    elif layout == "instances_rows":
        cells = ", ".join(number if f == "age" else json.dumps(ROW[f]) for f in FEATURES)
        body = f'{{"instances": [[{cells}]]}}'
    else:
        columns = ", ".join(f'"{f}": [{number if f == "age" else json.dumps(ROW[f])}]' for f in FEATURES)
        body = f'{{"inputs": {{{columns}}}}}'
    with pytest.raises(RequestError) as caught:
        table = serving_protocol.parse_body(body.encode(), "application/json", FEATURES)
        serving_protocol.model_frame(table, loaded.project.schema)
    assert caught.value.status == 400
    assert "'age'" in caught.value.message and "float64" in caught.value.message
    assert len(caught.value.message) < 300


def test_a_5000_digit_integer_over_http_is_a_400_not_a_500(server):
    body = f'{{"dataframe_records": [{{"income": {HUGE_INTEGER}, "age": 30}}]}}'.encode()
    status, answer = post(server.port, body)
    assert status == 400 and "'income'" in answer["message"]


def test_csv_requests_keep_the_file_rule_for_infinities(loaded):
    table = serving_protocol.parse_body(b"income,age,debt_ratio,tenure_months,region,has_mortgage\n"
                                        b"1e999,30,0.2,12,north,yes\n", "text/csv", FEATURES)
    frame = serving_protocol.model_frame(table, loaded.project.schema)
    assert frame["income"].isna().all()


# --------------------------------------------------------------------------- fuzz: no body gets a 500
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["", " ", "nan", "yes", "north", "1e999", "-0", "+5", "1_000", "٣"]),
)
json_values = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.sampled_from(FEATURES + ["x", ""]), children, max_size=6)),
    max_leaves=20)
row_objects = st.dictionaries(st.sampled_from(FEATURES + ["extra"]), json_scalars, max_size=7)
documents = st.one_of(
    json_values,
    st.fixed_dictionaries({"dataframe_records": st.lists(row_objects, max_size=4)}),
    st.fixed_dictionaries({"dataframe_split": st.fixed_dictionaries(
        {"columns": st.lists(st.sampled_from(FEATURES), max_size=7), "data": st.lists(st.lists(json_scalars, max_size=7), max_size=3)})}),
    st.fixed_dictionaries({"instances": st.one_of(st.lists(row_objects, max_size=3),
                                                  st.lists(st.lists(json_scalars, max_size=7), max_size=3),
                                                  st.dictionaries(st.sampled_from(FEATURES), st.lists(json_scalars, max_size=3)))}),
    st.fixed_dictionaries({"inputs": json_values, "params": json_values}),
)


def _encoded(document, huge: bool) -> bytes:
    text = json.dumps(document)  # NaN and Infinity as Python writes them (the server must still say 400)
    if huge:
        text = text.replace("0", HUGE_INTEGER, 1) if "0" in text else text
    return text.encode()


def _score(loaded, body: bytes, content_type: str):
    table = serving_protocol.parse_body(body, content_type, FEATURES)
    X = serving_protocol.model_frame(table, loaded.project.schema)
    return serving_protocol.predictions_payload(loaded.model, loaded.project.task, X, probabilities=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=documents, huge=st.booleans())
def test_fuzzed_json_bodies_get_predictions_or_a_4xx(loaded, document, huge):
    try:
        payload = _score(loaded, _encoded(document, huge), "application/json")
    except RequestError as exc:
        assert 400 <= exc.status < 500, exc
    else:
        json.dumps(payload, allow_nan=False)  # an answer is always strict JSON


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=200),
                      st.text(alphabet=string.printable + "é\x00;|\t", max_size=200).map(str.encode)),
       content_type=st.sampled_from(["application/json", "text/csv", "application/json; format=pandas-split",
                                     "application/json; format=pandas-records", "text/plain", ""]))
@example(body=b"!\t#\r!", content_type="text/csv")  # a bare carriage return inside a short row
def test_fuzzed_raw_bodies_get_predictions_or_a_4xx(loaded, body, content_type):
    try:
        _score(loaded, body, content_type)
    except RequestError as exc:
        assert 400 <= exc.status < 500, exc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=documents, huge=st.booleans())
def test_fuzzed_bodies_over_http_never_get_a_500(server, document, huge):
    status, answer = post(server.port, _encoded(document, huge))
    assert status == 200 or 400 <= status < 500, answer
    assert "error_code" in answer or "predictions" in answer


# --------------------------------------------------------------------------- the request line
@pytest.mark.parametrize("line, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # a TLS hello to a plain HTTP port
    (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505),
    (b"GET /ping HTTP/1.1 extra words\r\n\r\n", 400),
    (b"GET /ping HTTP/x.y\r\n\r\n", 400),
])
def test_a_broken_request_line_gets_a_status_line_and_a_json_body(server, line, status):
    answer = exchange(server.port, line)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 ") and int(status_line.split()[1]) == status, answer[:200]
    head, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower()
    assert "error_code" in json.loads(body)


# --------------------------------------------------------------------------- too many connections
def test_connections_over_the_cap_get_503_and_the_server_recovers(server):
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(4)]
    try:
        deadline = time.monotonic() + 5
        while server._server.active_connections < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server._server.active_connections == 4
        answer = exchange(server.port, f"GET /ping HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["error_code"] == "TOO_MANY_CONNECTIONS"
        assert server._server.active_connections == 4  # the refused one took no thread
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while server._server.active_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    status, answer = post(server.port, json.dumps({"dataframe_records": [ROW]}).encode())
    assert status == 200 and len(answer["predictions"]) == 1


def test_the_connection_cap_is_a_serve_flag(ws, capsys):
    from app.frontends.cli import build_parser

    args = build_parser().parse_args(["serve", "credit", "--max-connections", "8"])
    assert args.max_connections == 8
    with pytest.raises(Exception, match="at least 1"):
        serving.start_server(ws, "credit", max_connections=0)


# --------------------------------------------------------------------------- web pages
@pytest.mark.parametrize("headers, allowed", [
    ({}, True),
    ({"Host": "localhost:{port}"}, True),
    ({"Host": "127.0.0.1:{port}", "Origin": "http://127.0.0.1:{port}"}, True),
    ({"Host": "localhost:{port}", "Origin": "http://localhost:{port}"}, True),
    ({"Host": "evil.example:{port}"}, False),  # DNS rebinding: the page's own name
    ({"Host": "127.0.0.1:1"}, False),
    ({"Host": "127.0.0.1:{port}", "Origin": "http://evil.example"}, False),
    ({"Host": "127.0.0.1:{port}", "Origin": "null"}, False),
    ({"Host": "127.0.0.1:{port}", "Origin": "http://127.0.0.1:1"}, False),
    ({"Host": "127.0.0.1:{port}", "Origin": "https://127.0.0.1:{port}"}, False),
])
def test_requests_from_web_pages_are_refused_with_403(server, headers, allowed):
    headers = {k: v.format(port=server.port) for k, v in headers.items()}
    csv = b"income,age,debt_ratio,tenure_months,region,has_mortgage\n42000,35,0.31,30,north,yes\n"
    status, answer = post(server.port, csv, headers, content_type="text/csv")
    if allowed:
        assert status == 200, answer
    else:
        assert status == 403 and answer["error_code"] in ("FORBIDDEN_HOST", "FORBIDDEN_ORIGIN"), answer
    head = "GET /version HTTP/1.1\r\nConnection: close\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in {"Host": f"127.0.0.1:{server.port}", **headers}.items()) + "\r\n"
    assert exchange(server.port, head.encode()).split()[1] == (b"200" if allowed else b"403")


@pytest.mark.parametrize("body", [
    '{"dataframe_records": [{"income": "\\ud800", "age": 3}]}',
    '{"dataframe_records": [{"\\udc00": 1, "income": 5, "age": 3}]}',
    '{"dataframe_split": {"columns": ["income", "\\ud800x"], "data": [[1, 2]]}}',
    '{"inputs": {"\\ud800": [1], "income": [2]}}',
])
def test_unpaired_surrogate_escapes_are_a_400(loaded, body):
    with pytest.raises(RequestError) as caught:
        _score(loaded, body.encode(), "application/json")
    assert caught.value.status == 400
