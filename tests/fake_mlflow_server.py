"""A small in-memory MLflow tracking server for tests: real HTTP (stdlib), the subset of MLflow's
REST API 2.0 that `push` uses, with MLflow's JSON shapes and error codes.

    with FakeMlflowServer() as server:
        server.uri            # http://127.0.0.1:<port>
        server.requests       # [(method, path)] in order
        server.artifacts      # {artifact path: bytes} uploaded through the artifact proxy
"""

import json
import re
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "/api/2.0/mlflow/"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts/"
TAG_CLAUSE = re.compile(r"tags\.`([^`]+)` = '((?:[^'\\]|\\.)*)'")
WRITE_ENDPOINTS = {"experiments/create", "runs/create", "runs/log-batch", "runs/update", "runs/delete",
                   "registered-models/create", "model-versions/create", "registered-models/alias"}


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeMlflowServer:
    def __init__(self, artifact_root: str = "mlflow-artifacts:"):
        self.artifact_root = artifact_root
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.registered: dict[str, dict] = {}
        self.versions: dict[str, list[dict]] = {}
        self.artifacts: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.fail_upload_of: str | None = None  # a file name whose upload answers 500 (once)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-mlflow", daemon=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests
                if m == "PUT" or p.removeprefix(API) in WRITE_ENDPOINTS]

    def active_runs(self) -> list[dict]:
        return [r for r in self.runs.values() if r["info"]["lifecycle_stage"] == "active"]

    # ------------------------------------------------------------------ HTTP
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _serve(self, method: str) -> None:
                parsed = urllib.parse.urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                with fake._lock:
                    fake.requests.append((method, parsed.path))
                    try:
                        if parsed.path.startswith(ARTIFACTS) and method == "PUT":
                            payload = fake._upload(urllib.parse.unquote(parsed.path[len(ARTIFACTS):]), data)
                        elif parsed.path.startswith(API):
                            query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
                            body = json.loads(data) if data else {}
                            payload = fake._route(method, parsed.path[len(API):], query, body)
                        else:
                            raise Refusal(404, "ENDPOINT_NOT_FOUND", f"no endpoint {parsed.path}")
                    except Refusal as refusal:
                        return self._answer(refusal.status, {"error_code": refusal.code, "message": refusal.message})
                self._answer(200, payload)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

            def do_PUT(self):
                self._serve("PUT")

        return Handler

    def _route(self, method: str, endpoint: str, query: dict, body: dict) -> dict:
        routes = {
            ("GET", "experiments/get-by-name"): lambda: self._experiment_by_name(query["experiment_name"]),
            ("POST", "experiments/create"): lambda: self._create_experiment(body),
            ("POST", "runs/search"): lambda: self._search_runs(body),
            ("POST", "runs/create"): lambda: self._create_run(body),
            ("POST", "runs/log-batch"): lambda: self._log_batch(body),
            ("POST", "runs/update"): lambda: self._update_run(body),
            ("POST", "runs/delete"): lambda: self._delete_run(body),
            ("GET", "registered-models/get"): lambda: {"registered_model": self._registered_model(query["name"])},
            ("POST", "registered-models/create"): lambda: self._create_registered_model(body),
            ("GET", "model-versions/search"): lambda: self._search_versions(query),
            ("POST", "model-versions/create"): lambda: self._create_version(body),
            ("GET", "model-versions/get"): lambda: {"model_version": self._version(query["name"], query["version"])},
            ("POST", "registered-models/alias"): lambda: self._set_alias(body),
        }
        if (method, endpoint) not in routes:
            raise Refusal(404, "ENDPOINT_NOT_FOUND", f"no endpoint {method} {endpoint}")
        return routes[(method, endpoint)]()

    # ------------------------------------------------------------------ tracking
    def _experiment_by_name(self, name: str) -> dict:
        for experiment in self.experiments.values():
            if experiment["name"] == name:
                return {"experiment": experiment}
        raise Refusal(404, "RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name '{name}'")

    def _create_experiment(self, body: dict) -> dict:
        if any(e["name"] == body["name"] for e in self.experiments.values()):
            raise Refusal(400, "RESOURCE_ALREADY_EXISTS", f"Experiment '{body['name']}' already exists.")
        experiment_id = str(len(self.experiments) + 1)
        location = (f"mlflow-artifacts:/{experiment_id}" if self.artifact_root == "mlflow-artifacts:"
                    else f"{self.artifact_root}/{experiment_id}")
        self.experiments[experiment_id] = {"experiment_id": experiment_id, "name": body["name"],
                                           "artifact_location": location, "lifecycle_stage": "active",
                                           "tags": body.get("tags", [])}
        return {"experiment_id": experiment_id}

    def _search_runs(self, body: dict) -> dict:
        wanted = {k: v.replace("\\'", "'") for k, v in TAG_CLAUSE.findall(body.get("filter", ""))}
        found = [r for r in self.active_runs() if r["info"]["experiment_id"] in body["experiment_ids"]
                 and all(_tags(r["data"]["tags"]).get(k) == v for k, v in wanted.items())]
        return {"runs": found} if found else {}

    def _run(self, run_id: str) -> dict:
        if run_id not in self.runs:
            raise Refusal(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found")
        return self.runs[run_id]

    def _create_run(self, body: dict) -> dict:
        experiment = self.experiments[body["experiment_id"]]
        run_id = uuid.uuid4().hex
        run = {"info": {"run_id": run_id, "run_uuid": run_id, "experiment_id": experiment["experiment_id"],
                        "run_name": body.get("run_name", ""), "status": "RUNNING", "start_time": body["start_time"],
                        "artifact_uri": f"{experiment['artifact_location']}/{run_id}/artifacts",
                        "lifecycle_stage": "active"},
               "data": {"params": [], "metrics": [], "tags": list(body.get("tags", []))}}
        self.runs[run_id] = run
        return {"run": run}

    def _log_batch(self, body: dict) -> dict:
        run = self._run(body["run_id"])
        params = _tags(run["data"]["params"])
        for param in body.get("params", []):
            if param["key"] in params and params[param["key"]] != param["value"]:
                raise Refusal(400, "INVALID_PARAMETER_VALUE", f"Changing param values is not allowed: {param['key']}")
            if param["key"] not in params:
                run["data"]["params"].append(param)
        run["data"]["metrics"].extend(body.get("metrics", []))
        run["data"]["tags"].extend(body.get("tags", []))
        return {}

    def _update_run(self, body: dict) -> dict:
        run = self._run(body["run_id"])
        run["info"].update(status=body["status"], end_time=body.get("end_time"))
        return {"run_info": run["info"]}

    def _delete_run(self, body: dict) -> dict:
        self._run(body["run_id"])["info"]["lifecycle_stage"] = "deleted"
        return {}

    def _upload(self, path: str, data: bytes) -> dict:
        if self.artifact_root != "mlflow-artifacts:":
            raise Refusal(503, "ENDPOINT_NOT_FOUND", "artifact proxy disabled (--no-serve-artifacts)")
        if self.fail_upload_of and path.endswith("/" + self.fail_upload_of):
            self.fail_upload_of = None
            raise Refusal(500, "INTERNAL_ERROR", "disk full")
        self.artifacts[path] = data
        return {}

    # ------------------------------------------------------------------ registry
    def _registered_model(self, name: str) -> dict:
        if name not in self.registered:
            raise Refusal(404, "RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={name} not found")
        return self.registered[name]

    def _create_registered_model(self, body: dict) -> dict:
        if body["name"] in self.registered:
            raise Refusal(400, "RESOURCE_ALREADY_EXISTS", f"Registered Model (name={body['name']}) already exists.")
        self.registered[body["name"]] = {"name": body["name"], "description": body.get("description", ""),
                                         "tags": body.get("tags", []), "aliases": []}
        self.versions[body["name"]] = []
        return {"registered_model": self.registered[body["name"]]}

    def _search_versions(self, query: dict) -> dict:
        name = re.fullmatch(r"name = '(.*)'", query["filter"]).group(1)
        found = self.versions.get(name, [])
        return {"model_versions": found} if found else {}

    def _create_version(self, body: dict) -> dict:
        model = self._registered_model(body["name"])
        run = self._run(body["run_id"])
        if not body["source"].startswith(run["info"]["artifact_uri"]):
            raise Refusal(400, "INVALID_PARAMETER_VALUE", "Invalid model version source")
        version = {"name": model["name"], "version": str(len(self.versions[model["name"]]) + 1),
                   "source": body["source"], "run_id": body["run_id"], "status": "READY",
                   "tags": body.get("tags", []), "description": body.get("description", "")}
        self.versions[model["name"]].append(version)
        return {"model_version": version}

    def _version(self, name: str, version: str) -> dict:
        for candidate in self.versions.get(name, []):
            if candidate["version"] == version:
                return candidate
        raise Refusal(404, "RESOURCE_DOES_NOT_EXIST", f"Model Version (name={name}, version={version}) not found")

    def _set_alias(self, body: dict) -> dict:
        model = self._registered_model(body["name"])
        self._version(body["name"], body["version"])
        model["aliases"] = [a for a in model["aliases"] if a["alias"] != body["alias"]]
        model["aliases"].append({"alias": body["alias"], "version": body["version"]})
        return {}


def _tags(pairs: list[dict]) -> dict[str, str]:
    return {pair["key"]: pair.get("value", "") for pair in pairs}
