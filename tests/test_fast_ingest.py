"""The fast CSV reader (pyarrow, numbers typed while reading) cleans every file exactly as the
reference reader (every cell as text) does: same rows, values, warnings, report and content hash.
"""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.ml import datasets

HEADER = "a,b,c,d,cat,flag,when,y"
BASE_ROWS = [f"{i * 0.5},{i},{-i},{i % 7},{'xyz'[i % 3]},{'yes' if i % 2 else 'no'},2024-01-{1 + i % 28:02d},{i % 2}"
             for i in range(60)]


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    path = tmp_path_factory.mktemp("schema") / "first.csv"
    path.write_text("\n".join([HEADER, *BASE_ROWS]) + "\n")
    return datasets.infer_schema(datasets.read_table(path), "y", "classification")


def _rows(*extra: str) -> str:
    return "\n".join([HEADER, *BASE_ROWS[:20], *extra]) + "\n"


CASES = {
    "plain": _rows(),
    "missing tokens in many spellings": _rows("NA,n/a,NULL,,?,,,1", "nUlL, na ,-,#N/A,None,,,0", "None,nan,NaN,--,x,,,"),
    "an unreadable number": _rows("1.5,abc,3,4,x,yes,2024-02-01,1"),
    "infinities": _rows("inf,-Infinity,3,4,x,yes,2024-02-01,1"),
    "signs and spaces": _rows("+5, 3.5 ,  7,4,x , YES ,2024-02-01,1"),
    "a fractional integer target": _rows("1,2,3,4,x,yes,2024-02-01,1.5"),
    "duplicate rows": _rows(*BASE_ROWS[:5]),
    "no labels": _rows("1,2,3,4,x,yes,2024-02-01,", "2,3,4,5,y,no,2024-02-02,"),
    "quotes, commas and line breaks in a category": _rows('1,2,3,4,"x, the\nsecond",yes,2024-02-01,1'),
    "bad cells in every numeric column": _rows("q,w,e,r,x,yes,2024-02-01,1"),
    "a short row": _rows("1,2,3"),
    "a long row": _rows("1,2,3,4,x,yes,2024-02-01,1,9"),
    "a byte-order mark": "\ufeff" + _rows(),
    "semicolons and decimal commas": _rows().replace(",", ";").replace("0.5", "0,5").replace(".5;", ",5;"),
    "tabs": _rows().replace(",", "\t"),
    "unbalanced quote": _rows('1,2,3,4,"x,yes,2024-02-01,1'),
}


def _both_ways(tmp_path, schema, text: str | bytes):
    data = text.encode() if isinstance(text, str) else text
    path = tmp_path / "batch.csv"
    path.write_bytes(data)
    outcomes = []
    for read in (lambda: datasets.read_table(path, numeric_columns=datasets.numeric_columns(schema)),
                 lambda: datasets.read_csv_bytes(data, path.name)):
        try:
            batch = datasets.clean(read(), schema, purpose="ingest")
        except datasets.ValidationError as exc:
            outcomes.append(("refused", str(exc)))
        else:
            outcomes.append(("cleaned", batch))
    return outcomes


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_fast_reader_cleans_like_the_reference_reader(tmp_path, schema, case):
    (fast_kind, fast), (reference_kind, reference) = _both_ways(tmp_path, schema, CASES[case])
    assert fast_kind == reference_kind
    if fast_kind == "refused":
        assert fast == reference
        return
    pd.testing.assert_frame_equal(fast.frame, reference.frame)
    assert fast.warnings == reference.warnings
    assert fast.report == reference.report
    assert datasets.content_hash(fast.frame, fast.row_hashes) == datasets.content_hash(reference.frame)


def test_text_that_is_not_utf8_is_read_as_before(tmp_path, schema):
    (fast_kind, fast), (_, reference) = _both_ways(tmp_path, schema, _rows("1,2,3,4,caf\u00e9,yes,2024-02-01,1")
                                                   .encode("cp1252"))
    assert fast_kind == "cleaned"
    pd.testing.assert_frame_equal(fast.frame, reference.frame)
    assert any("cp1252" in w for w in fast.warnings)


def test_numeric_columns_arrive_as_numbers_from_the_fast_reader(tmp_path, schema):
    path = tmp_path / "batch.csv"
    path.write_text(CASES["plain"])
    raw = datasets.read_table(path, numeric_columns=datasets.numeric_columns(schema))
    assert all(raw.frame[c].dtype == np.float64 for c in ("a", "b", "c", "d", "y"))
    assert pd.api.types.is_string_dtype(raw.frame["cat"])


def test_dropping_duplicates_by_hash_keeps_rows_whose_hashes_collide(monkeypatch):
    """Rows sharing a hash are compared cell by cell: a collision never drops a distinct row."""
    frame = pd.DataFrame({"a": [1.0, 2.0, 1.0, 3.0], "b": ["x", "y", "x", "z"]})
    monkeypatch.setattr(datasets, "_row_hashes", lambda f: np.zeros(len(f), dtype=np.uint64))
    kept, hashes = datasets.drop_duplicate_rows(frame)
    assert kept.to_dict("list") == {"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]}
    assert len(hashes) == 3


NUMBER_CELLS = ["1", "-2.5", "+3", " 4 ", "1e3", "inf", "-inf", "nan", "NaN", "", "NA", "n/a", "Null", "nUlL",
                "?", "-", "abc", "1,5", "0x1F", "007", "1.0", '"7"', "9" * 25]
TEXT_CELLS = ["x", "y", " z ", "", "NA", "none", "caf\u00e9", '"q, r"', "1"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.sampled_from(NUMBER_CELLS), st.sampled_from(NUMBER_CELLS),
                               st.sampled_from(TEXT_CELLS), st.sampled_from(["0", "1", "", "2.5", "yes"])),
                     min_size=1, max_size=30))
def test_any_mix_of_cells_cleans_like_the_reference_reader(tmp_path, schema, rows):
    lines = [f"{a},{b},3,4,{cat},yes,2024-02-01,{y}" for a, b, cat, y in rows]
    (fast_kind, fast), (reference_kind, reference) = _both_ways(tmp_path, schema, _rows(*lines))
    assert fast_kind == reference_kind
    if fast_kind == "refused":
        assert fast == reference
        return
    pd.testing.assert_frame_equal(fast.frame, reference.frame)
    assert (fast.warnings, fast.report) == (reference.warnings, reference.report)
    assert datasets.content_hash(fast.frame, fast.row_hashes) == datasets.content_hash(reference.frame)


def test_row_hashes_are_pandas_hashes_of_the_columns_in_name_order():
    """Stored content hashes stay valid: the same batch ingested again is still found a duplicate."""
    frame = pd.DataFrame({"b": [1.0, np.nan, 3.0], "a": ["x", None, "z"], "y": pd.array([1, None, 0], dtype="Int64")})
    expected = pd.util.hash_pandas_object(frame[["a", "b", "y"]], index=False).to_numpy()
    np.testing.assert_array_equal(datasets._row_hashes(frame), expected)
