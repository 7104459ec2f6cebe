"""A small client for MLflow's documented REST API (tracking, model registry, and the
artifact proxy), over urllib: Keel needs no MLflow runtime.

Endpoints used (MLflow REST API 2.0): experiments/get-by-name, experiments/create,
runs/search, runs/create, runs/log-batch, runs/update, runs/delete,
registered-models/get, registered-models/create, registered-models/alias,
model-versions/search, model-versions/create, model-versions/get, and the artifact
proxy's `PUT /api/2.0/mlflow-artifacts/artifacts/<path>`.

Authentication, as MLflow's own client reads it: $MLFLOW_TRACKING_TOKEN (a bearer
token) or $MLFLOW_TRACKING_USERNAME and $MLFLOW_TRACKING_PASSWORD (basic auth).
"""

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request

from app.core.domain.errors import KeelError

API = "/api/2.0/mlflow/"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts/"
TIMEOUT_SECONDS = 60


class MlflowServerError(KeelError):
    """The server refused a request (a 4xx: a name, a permission, a setting to fix) or failed (a 5xx)."""

    def __init__(self, message: str, status: int = 400, error_code: str = ""):
        super().__init__(message)
        self.status = status
        self.error_code = error_code

    @property
    def server_failed(self) -> bool:
        return self.status >= 500


class MlflowRestClient:
    def __init__(self, tracking_uri: str, timeout: float = TIMEOUT_SECONDS):
        parsed = urllib.parse.urlparse(tracking_uri)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise KeelError(f"--tracking-uri {tracking_uri!r}: give the server's http(s) address, "
                            "such as http://127.0.0.1:5000")
        self.base = tracking_uri.rstrip("/")
        self.timeout = timeout
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request sent, for the record

    # ------------------------------------------------------------------ transport
    def _headers(self) -> dict[str, str]:
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if token:
            return {"Authorization": f"Bearer {token}"}
        if user and password:
            return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
        return {}

    def _send(self, method: str, path: str, data: bytes | None, content_type: str) -> bytes:
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": content_type, **self._headers()})
        self.requests.append((method, path.split("?")[0]))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            raise self._refusal(method, path, exc) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise KeelError(f"cannot reach the MLflow tracking server at {self.base}: {reason}") from None

    def _refusal(self, method: str, path: str, exc: urllib.error.HTTPError) -> MlflowServerError:
        body = exc.read().decode("utf-8", "replace")
        try:
            payload = json.loads(body)
            code, message = payload.get("error_code", ""), payload.get("message", body)
        except ValueError:
            code, message = "", body.strip()[:200] or exc.reason
        where = path.split("?")[0]
        return MlflowServerError(f"MLflow server at {self.base} answered {exc.code} to {method} {where}: "
                                 f"{code + ': ' if code else ''}{message}", exc.code, code)

    def call(self, method: str, endpoint: str, body: dict | None = None, query: dict | None = None) -> dict:
        path = API + endpoint + (("?" + urllib.parse.urlencode(query)) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        raw = self._send(method, path, data, "application/json")
        return json.loads(raw) if raw.strip() else {}

    def upload(self, artifact_path: str, data: bytes) -> None:
        """PUT one file through the server's artifact proxy (relative to its artifact root)."""
        quoted = "/".join(urllib.parse.quote(part) for part in artifact_path.strip("/").split("/"))
        self._send("PUT", ARTIFACTS_API + quoted, data, "application/octet-stream")

    # ------------------------------------------------------------------ tracking
    def get_experiment_by_name(self, name: str) -> dict | None:
        try:
            return self.call("GET", "experiments/get-by-name", query={"experiment_name": name})["experiment"]
        except MlflowServerError as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or exc.status == 404:
                return None
            raise

    def create_experiment(self, name: str, tags: dict[str, str]) -> str:
        body = {"name": name, "tags": _pairs(tags)}
        return self.call("POST", "experiments/create", body)["experiment_id"]

    def search_runs(self, experiment_id: str, tags: dict[str, str]) -> list[dict]:
        """Active runs of the experiment whose tags have these values (the first 100)."""
        clauses = " and ".join(f"tags.`{key}` = '{_quoted(value)}'" for key, value in tags.items())
        body = {"experiment_ids": [experiment_id], "filter": clauses, "max_results": 100, "run_view_type": "ACTIVE_ONLY"}
        return self.call("POST", "runs/search", body).get("runs", [])

    def create_run(self, experiment_id: str, run_name: str, start_ms: int, tags: dict[str, str]) -> dict:
        body = {"experiment_id": experiment_id, "run_name": run_name, "start_time": start_ms, "tags": _pairs(tags)}
        return self.call("POST", "runs/create", body)["run"]

    def log_batch(self, run_id: str, params: dict[str, str], metrics: dict[str, float], timestamp_ms: int) -> None:
        body = {"run_id": run_id, "params": _pairs(params),
                "metrics": [{"key": k, "value": v, "timestamp": timestamp_ms, "step": 0} for k, v in metrics.items()]}
        self.call("POST", "runs/log-batch", body)

    def finish_run(self, run_id: str, end_ms: int) -> None:
        self.call("POST", "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": end_ms})

    def delete_run(self, run_id: str) -> None:
        self.call("POST", "runs/delete", {"run_id": run_id})

    # ------------------------------------------------------------------ model registry
    def get_registered_model(self, name: str) -> dict | None:
        try:
            return self.call("GET", "registered-models/get", query={"name": name})["registered_model"]
        except MlflowServerError as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or exc.status == 404:
                return None
            raise

    def create_registered_model(self, name: str, description: str, tags: dict[str, str]) -> dict:
        body = {"name": name, "description": description, "tags": _pairs(tags)}
        return self.call("POST", "registered-models/create", body)["registered_model"]

    def search_model_versions(self, name: str) -> list[dict]:
        versions, token = [], None
        while True:
            query = {"filter": f"name = '{_quoted(name)}'", "max_results": 200}
            if token:
                query["page_token"] = token
            page = self.call("GET", "model-versions/search", query=query)
            versions.extend(page.get("model_versions", []))
            token = page.get("next_page_token")
            if not token:
                return versions

    def create_model_version(self, name: str, source: str, run_id: str, tags: dict[str, str],
                             description: str) -> dict:
        body = {"name": name, "source": source, "run_id": run_id, "tags": _pairs(tags), "description": description}
        return self.call("POST", "model-versions/create", body)["model_version"]

    def get_model_version(self, name: str, version: str) -> dict:
        return self.call("GET", "model-versions/get", query={"name": name, "version": version})["model_version"]

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.call("POST", "registered-models/alias", {"name": name, "alias": alias, "version": version})


def _pairs(values: dict[str, str]) -> list[dict]:
    return [{"key": key, "value": str(value)} for key, value in values.items()]


def _quoted(value: str) -> str:
    """A value inside a single-quoted filter string."""
    return str(value).replace("\\", "\\\\").replace("'", "\\'")


def tags_of(entity: dict) -> dict[str, str]:
    """{key: value} from an MLflow entity's tag list (runs keep theirs under data.tags)."""
    pairs = entity.get("tags") or entity.get("data", {}).get("tags") or []
    return {pair["key"]: pair.get("value", "") for pair in pairs}
