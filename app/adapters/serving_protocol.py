"""MLflow's scoring protocol, as Keel's server speaks it: request body -> model input -> JSON answer.

Accepted bodies (MLflow 2.x): `Content-Type: application/json` with exactly one of
`dataframe_split` ({"columns": [...], "data": [[...]]}), `dataframe_records` ([{...}]),
`instances` or `inputs` (a list of row objects, a list of rows in the schema's feature
order, or an object of columns), plus an optional `params` that Keel's models ignore;
MLflow 1.x's `application/json; format=pandas-split|pandas-records`; and `text/csv`.

Every cell is read by its text, exactly as a CSV file would be: JSON `1` is "1", `true`
is "true", `null` is missing. So one value means the same thing in JSON, in CSV and in
a batch file, whatever its neighbours are. The project's cleaning rules apply in strict
mode (datasets.clean(strict=True)): a missing feature column or a cell that cannot be
read as its column's kind is a 400 that names it, never a silently imputed value.

Requests take a fast path that applies the same rules cell by cell without pandas:
datasets.clean costs several milliseconds of fixed pandas overhead (more than a 1-row
predict) and is slower per row too (bench/serve_bench.py). The fast path only ever
accepts: on a cell it cannot vouch for, a missing column, or a datetime column, it hands
the request to datasets.clean(strict=True), which gives the answer or the error message.
tests/test_serving.py checks the two paths agree on a corpus of awkward cells.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.core.domain.entities import Schema
from app.core.domain.errors import ValidationError


class _ImportedOnFirstUse:
    """A module imported when one of its names is first read (each name is then kept here). The
    server binds and answers /ping with 503 before numpy and pandas (0.4-0.6 s of imports) are in."""

    def __init__(self, module: str):
        self._module = module

    def __getattr__(self, name: str) -> Any:
        value = getattr(importlib.import_module(self._module), name)
        setattr(self, name, value)
        return value


if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from app.core.ml import datasets
else:
    np = _ImportedOnFirstUse("numpy")
    pd = _ImportedOnFirstUse("pandas")
    datasets = _ImportedOnFirstUse("app.core.ml.datasets")

SOURCE = "request"
FORMAT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
IGNORED_KEYS = ("params",)
LEGACY_FORMATS = {"pandas-split": "dataframe_split", "pandas-records": "dataframe_records"}
FLOAT64_MAX = sys.float_info.max  # a float64's largest value
FLOAT64_MAX_DIGITS = 309  # every integer with more digits is beyond FLOAT64_MAX


class RequestError(Exception):
    """A request Keel refuses: answered with `status` and {"error_code", "message"}."""

    def __init__(self, message: str, status: int = 400, error_code: str = "BAD_REQUEST"):
        super().__init__(message)
        self.status = status
        self.error_code = error_code

    @property
    def message(self) -> str:
        return str(self)


@dataclass
class RequestTable:
    """The request's cells as sent (JSON scalars or CSV text), column by column."""

    columns: dict[str, list]
    rows: int


# --------------------------------------------------------------------------- parsing
def parse_body(body: bytes, content_type: str, features: list[str]) -> RequestTable:
    table = _parse_body(body, content_type, features)
    for name in table.columns:
        if not name.isascii():
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise RequestError("a column name holds an unpaired surrogate escape (\\ud800-\\udfff), "
                                   "which is not text", 400, "BAD_REQUEST") from None
    return table


def _parse_body(body: bytes, content_type: str, features: list[str]) -> RequestTable:
    media_type, parameters = _split_content_type(content_type)
    if media_type == "text/csv":
        return _parse_csv(body)
    if media_type != "application/json":
        raise RequestError(f"unsupported Content-Type {content_type or '(none)'!r}: send application/json or text/csv",
                           415, "UNSUPPORTED_MEDIA_TYPE")
    document = _load_json(body)
    legacy = parameters.get("format")
    if legacy:
        if legacy not in LEGACY_FORMATS:
            raise RequestError(f"unknown format={legacy!r} in Content-Type: use pandas-split or pandas-records",
                               400, "MALFORMED_REQUEST")
        return _parse_format(LEGACY_FORMATS[legacy], document, features)
    if not isinstance(document, dict):
        raise RequestError(f"the JSON body must be an object with one of the keys {', '.join(FORMAT_KEYS)}; "
                           f"got a {_json_type(document)}", 400, "MALFORMED_REQUEST")
    unknown = [k for k in document if k not in FORMAT_KEYS and k not in IGNORED_KEYS]
    if unknown:
        raise RequestError(f"unknown key(s) {', '.join(map(repr, unknown))} in the JSON body: "
                           f"use one of {', '.join(FORMAT_KEYS)}", 400, "MALFORMED_REQUEST")
    given = [k for k in FORMAT_KEYS if k in document]
    if len(given) != 1:
        found = f"got {', '.join(given)}" if given else "got none"
        raise RequestError(f"the JSON body needs exactly one of {', '.join(FORMAT_KEYS)} ({found})",
                           400, "MALFORMED_REQUEST")
    return _parse_format(given[0], document[given[0]], features)


def _split_content_type(content_type: str) -> tuple[str, dict]:
    parts = [p.strip() for p in (content_type or "").split(";")]
    parameters = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        parameters[key.strip().lower()] = value.strip().strip('"').lower()
    return parts[0].lower(), parameters


class OversizedNumber:
    """A JSON integer too long for Python to convert (over 4,300 digits): certainly outside
    float64's range. Kept as text, so the check of its column can name the column."""

    def __init__(self, text: str):
        self.text = text


def _integer_or_oversized(text: str) -> int | OversizedNumber:
    return OversizedNumber(text) if len(text.lstrip("-")) > FLOAT64_MAX_DIGITS else int(text)


def _load_json(body: bytes) -> Any:
    if not body.strip():
        raise RequestError("the request body is empty: send a JSON object", 400, "MALFORMED_REQUEST")
    try:
        try:
            return json.loads(body)
        except ValueError as exc:
            if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
                raise
            # Python refuses to convert an integer of over 4,300 digits: read it again, keeping such
            # numbers as text, so the request is refused naming the column that holds one
            return json.loads(body, parse_int=_integer_or_oversized)
    except UnicodeDecodeError:
        raise RequestError("the body is not UTF-8 encoded JSON", 400, "MALFORMED_REQUEST") from None
    except json.JSONDecodeError as exc:
        raise RequestError(f"malformed JSON: {exc}", 400, "MALFORMED_REQUEST") from None
    except RecursionError:
        raise RequestError("malformed JSON: nested too deeply", 400, "MALFORMED_REQUEST") from None


def _parse_csv(body: bytes) -> RequestTable:
    if not body.strip():
        raise RequestError("the request body is empty: send CSV with a header row", 400, "MALFORMED_REQUEST")
    try:
        raw = datasets.read_csv_bytes(body, SOURCE)  # the same CSV rules as a file: sniffing, encodings, header checks
    except ValidationError as exc:
        raise RequestError(str(exc), 400, "MALFORMED_REQUEST") from None
    return RequestTable({str(c): raw.frame[c].tolist() for c in raw.frame.columns}, len(raw.frame))


def _parse_format(key: str, value: Any, features: list[str]) -> RequestTable:
    if key == "dataframe_split":
        return _parse_split(value, features)
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise RequestError(f"dataframe_records must be a list of row objects, got a {_json_type(value)}",
                               400, "MALFORMED_REQUEST")
        return _records(value, key)
    return _parse_tensor_style(key, value, features)


def _parse_split(value: Any, features: list[str]) -> RequestTable:
    if not isinstance(value, dict):
        raise RequestError(f"dataframe_split must be an object with 'columns' and 'data', got a {_json_type(value)}",
                           400, "MALFORMED_REQUEST")
    unknown = [k for k in value if k not in ("columns", "data", "index")]
    if unknown:
        raise RequestError(f"unknown key(s) {', '.join(map(repr, unknown))} in dataframe_split: "
                           "it takes 'columns', 'data' and optionally 'index'", 400, "MALFORMED_REQUEST")
    if "data" not in value:
        raise RequestError("dataframe_split has no 'data'", 400, "MALFORMED_REQUEST")
    columns = value.get("columns", features)
    if not isinstance(columns, list) or not all(isinstance(c, (str, int, float)) for c in columns):
        raise RequestError("dataframe_split 'columns' must be a list of column names", 400, "MALFORMED_REQUEST")
    columns = [str(c) for c in columns]
    if len(set(columns)) != len(columns):
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        raise RequestError(f"dataframe_split: duplicate column name(s) {', '.join(map(repr, duplicates))}",
                           400, "MALFORMED_REQUEST")
    return _rows_of_lists(value["data"], columns, "dataframe_split 'data'")


def _parse_tensor_style(key: str, value: Any, features: list[str]) -> RequestTable:
    if isinstance(value, dict):  # columns: {"age": [31, 45]} or a single row {"age": 31}
        lists = [v for v in value.values() if isinstance(v, list)]
        if lists and len(lists) == len(value):
            lengths = {len(v) for v in lists}
            if len(lengths) != 1:
                raise RequestError(f"{key}: the columns have different lengths ({', '.join(map(str, sorted(lengths)))})",
                                   400, "MALFORMED_REQUEST")
            columns = {str(name): cells for name, cells in value.items()}
            for name, cells in columns.items():
                _check_scalars(cells, name)
            return RequestTable(columns, lengths.pop())
        if lists:
            raise RequestError(f"{key}: mixes lists and single values; give an object of equal-length columns "
                               "or one row object", 400, "MALFORMED_REQUEST")
        return _records([value], key)
    if not isinstance(value, list):
        raise RequestError(f"{key} must be a list of rows or an object of columns, got a {_json_type(value)}",
                           400, "MALFORMED_REQUEST")
    if value and all(isinstance(row, dict) for row in value):
        return _records(value, key)
    if value and all(isinstance(row, list) for row in value):
        return _rows_of_lists(value, features, key)
    if value and len(features) == 1 and not any(isinstance(row, (dict, list)) for row in value):
        return _rows_of_lists([[cell] for cell in value], features, key)
    if not value:
        raise RequestError(f"{key} holds no rows", 400, "BAD_REQUEST")
    raise RequestError(f"{key} must be a list of row objects or a list of row lists (in feature order: "
                       f"{', '.join(features)}), not a mix or a flat list", 400, "MALFORMED_REQUEST")


def _records(records: list, key: str) -> RequestTable:
    columns: dict[str, list] = {}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise RequestError(f"{key}: row {index + 1} is a {_json_type(record)}, not an object",
                               400, "MALFORMED_REQUEST")
        for name, cell in record.items():
            if name not in columns:
                columns[name] = [None] * index
            columns[name].append(cell)
        for cells in columns.values():
            if len(cells) == index:  # this row does not have the column: a missing cell, as in pandas
                cells.append(None)
    for name, cells in columns.items():
        _check_scalars(cells, name)
    return RequestTable(columns, len(records))


def _rows_of_lists(data: Any, columns: list[str], where: str) -> RequestTable:
    if not isinstance(data, list):
        raise RequestError(f"{where} must be a list of rows, got a {_json_type(data)}", 400, "MALFORMED_REQUEST")
    width = len(columns)
    for index, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} value(s)" if isinstance(row, list) else f"a {_json_type(row)}"
            raise RequestError(f"{where}: row {index + 1} has {got}; each row needs {width} values "
                               f"in this order: {', '.join(columns)}", 400, "BAD_REQUEST")
    transposed = {name: [row[i] for row in data] for i, name in enumerate(columns)}
    for name, cells in transposed.items():
        _check_scalars(cells, name)
    return RequestTable(transposed, len(data))


def _check_scalars(cells: list, name: str) -> None:
    """Every cell a single value, and every JSON number a finite float64 (JSON has no infinity:
    1e999, NaN, Infinity or a 400-digit integer is a client's mistake, not a missing value)."""
    for index, cell in enumerate(cells):
        kind = type(cell)
        if kind is str:
            if not cell.isascii():
                _check_encodable(cell, name, index)
            continue
        if cell is None or kind is bool:
            continue
        if kind is float:
            if math.isfinite(cell):
                continue
        elif kind is int:
            if -FLOAT64_MAX <= cell <= FLOAT64_MAX:
                continue
        elif kind is OversizedNumber:
            pass
        else:
            raise RequestError(f"{SOURCE}: column {name!r}: row {index + 1} holds a {_json_type(cell)}, "
                               "not a single value", 400, "BAD_REQUEST")
        raise RequestError(f"{SOURCE}: column {name!r}: row {index + 1} holds {_number_shown(cell)}, which is not "
                           "a finite number within float64's range", 400, "BAD_REQUEST")


def _check_encodable(text: str, name: str, index: int) -> None:
    """JSON may escape half a surrogate pair (\\ud800): no text of any file can hold it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(f"{SOURCE}: column {name!r}: row {index + 1} holds an unpaired surrogate escape "
                           "(\\ud800-\\udfff), which is not text", 400, "BAD_REQUEST") from None


def _number_shown(cell: Any) -> str:
    text = cell.text if isinstance(cell, OversizedNumber) else (repr(cell) if isinstance(cell, float) else
                                                                f"an integer of {len(str(abs(cell)))} digits")
    return text if len(text) <= 40 else f"a number of {len(text)} characters"


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "JSON object"
    if isinstance(value, list):
        return "JSON list"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return type(value).__name__


# --------------------------------------------------------------------------- the model's input
def cell_text(cell: Any) -> str:
    """The text a CSV file would hold for this JSON value."""
    if cell is None:
        return ""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float):
        return repr(cell)
    return str(cell)


def model_frame(table: RequestTable, schema: Schema) -> pd.DataFrame:
    """The model's input for the request: the fast path when it can vouch for every cell, else clean(strict)."""
    if table.rows == 0:
        raise RequestError("the request holds no rows", 400, "BAD_REQUEST")
    fast = fast_model_frame(table, schema)
    return fast if fast is not None else strict_model_frame(table, schema)


def strict_model_frame(table: RequestTable, schema: Schema) -> pd.DataFrame:
    frame = pd.DataFrame({name: [cell_text(c) for c in cells] for name, cells in table.columns.items()},
                         index=pd.RangeIndex(table.rows))
    try:
        batch = datasets.clean(datasets.RawTable(frame, SOURCE), schema, purpose="predict", strict=True)
    except ValidationError as exc:
        raise RequestError(str(exc), 400, "BAD_REQUEST") from None
    return datasets.to_model_frame(batch.frame, schema)


def fast_model_frame(table: RequestTable, schema: Schema) -> pd.DataFrame | None:
    """The same frame as strict_model_frame, or None when a cell needs clean()'s judgement."""
    converters = {"numeric": _numeric_cells, "boolean": _boolean_cells, "categorical": _categorical_cells}
    columns = {}
    for column in schema.columns:
        name, convert = column.name, converters.get(column.kind)
        cells = table.columns.get(name)
        if cells is None or convert is None:  # a missing column, or a kind (datetime) only clean() reads
            return None
        values = convert(cells)
        if values is None:
            return None
        columns[name] = values
    return pd.DataFrame(columns, index=pd.RangeIndex(table.rows), copy=False)


def _stripped(cell: Any) -> str | None:
    """The cell's text, stripped; None for a missing cell (clean's missing tokens)."""
    text = cell_text(cell).strip()
    return None if text.lower() in datasets.MISSING_TOKENS else text


def _numeric_cells(cells: list) -> np.ndarray | None:
    if all(type(cell) is float or type(cell) is int for cell in cells):  # JSON numbers: convert in one go
        try:
            out = np.array(cells, dtype=float)
        except OverflowError:  # an integer beyond float range: the cell-by-cell rules below
            pass
        else:
            out[np.isinf(out)] = np.nan  # clean() treats infinities as missing
            return out
    out = np.empty(len(cells), dtype=float)
    for index, cell in enumerate(cells):
        if type(cell) is float or type(cell) is int:  # the common case, and exact: repr() round-trips
            value = float(cell) if type(cell) is int and abs(cell) < 2**53 else _parse_number(cell_text(cell))
        else:
            text = _stripped(cell)
            value = math.nan if text is None else _parse_number(text)
        if value is None:
            return None
        out[index] = math.nan if math.isinf(value) else value  # clean() treats infinities as missing
    return out


def _parse_number(text: str) -> float | None:
    """float() where pandas' to_numeric agrees, None where it would not read the text."""
    if text.startswith("+"):
        text = text[1:]  # clean() drops one leading '+'
    if not text.isascii() or "_" in text:  # float() reads '1_000' and non-ASCII digits; pandas does not
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value  # 'nan' is a missing token; '-nan' is unreadable to clean()


def _boolean_cells(cells: list) -> np.ndarray | None:
    out = np.empty(len(cells), dtype=float)
    for index, cell in enumerate(cells):
        text = _stripped(cell)
        if text is None:
            out[index] = math.nan
            continue
        value = datasets.BOOLEAN_VALUES.get(text.lower())
        if value is None:
            return None
        out[index] = value
    return out


def _categorical_cells(cells: list) -> pd.Series:
    out = np.empty(len(cells), dtype=object)
    for index, cell in enumerate(cells):
        text = _stripped(cell)
        out[index] = np.nan if text is None else text
    return pd.Series(out, dtype=object, copy=False)  # object, as to_model_frame gives: pandas 3 would infer str


# --------------------------------------------------------------------------- the answer
def predictions_payload(model: Any, task: str, X: pd.DataFrame, probabilities: bool) -> dict:  # a fitted pipeline
    if probabilities and (task != "classification" or not hasattr(model, "predict_proba")):
        what = "a regression model" if task != "classification" else f"this {type(model).__name__}"
        raise RequestError(f"probabilities=true: {what} gives no class probabilities", 400, "BAD_REQUEST")
    payload = {"predictions": _jsonable(model.predict(X))}
    if probabilities:
        payload["classes"] = _jsonable(model.classes_)
        payload["probabilities"] = np.asarray(model.predict_proba(X), dtype=float).tolist()
    return payload


def _jsonable(values: Any) -> list:
    items = np.asarray(values).tolist()
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in items]


def parse_flag(values: list[str], name: str) -> bool:
    if not values:
        return False
    word = values[-1].strip().lower()
    if word in ("true", "1", "yes"):
        return True
    if word in ("false", "0", "no"):
        return False
    raise RequestError(f"query parameter {name}={values[-1]!r}: use true or false", 400, "BAD_REQUEST")
