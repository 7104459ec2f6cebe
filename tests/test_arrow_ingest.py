"""A CSV file read whole by pyarrow, without pandas (arrow_ingest), is ingested exactly as the general
reader ingests it (chunked_ingest, read whole): same rows, warnings, report, content hash, and the same
frame and Parquet schema when the stored version is read back. Files it does not take on go to the
general reader."""

import dataclasses
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.domain.entities import Schema
from app.core.domain.errors import ValidationError
from app.core.ml import arrow_ingest, chunked_ingest, datasets, ingest, row_hashing

HEADER = "a,b,cat,y"
BASE_ROWS = [f"{i * 0.5},{i % 7},{'xyz'[i % 3]},{i % 2}" for i in range(60)]


def _schema(tmp_path_factory, text: str, target: str, task: str, id_column: str | None = None, **extra) -> Schema:
    path = tmp_path_factory.mktemp("schema") / "first.csv"
    path.write_text(text)
    schema = datasets.infer_schema(datasets.read_table(path), target, task, id_column=id_column)
    return dataclasses.replace(schema, **extra)


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    return _schema(tmp_path_factory, "\n".join([HEADER, *BASE_ROWS]) + "\n", "y", "classification", classes=(0, 1))


def _rows(*extra: str, header: str = HEADER) -> str:
    return "\n".join([header, *BASE_ROWS[:20], *extra]) + "\n"


CASES = {
    "plain": _rows(),
    "missing tokens in many spellings": _rows("NA,n/a,NULL,1", "Null,-, na ,0", "None,nan,#N/A,", "?,--,nOnE,1"),
    "infinities": _rows("inf,-Infinity,x,1", "1,2,x,inf"),
    "spaces around categories": _rows("1,2, x ,1", "1,2,\tz\u00a0,0", "1,2,\u2003y,1"),
    "unseen categories and classes": _rows("1,2,w,1", "1,2,v,3", "2,2,w,4"),
    "a fractional integer target": _rows("1,2,x,1.5", "1,2,x,2.0000001", "1,2,x,-3"),
    "duplicate rows, also after cleaning": _rows(*BASE_ROWS[:5], "0.0,0, x ,0", "-0,0,x,0", "nan,1,z,", "NA,1,z,"),
    "no labels": _rows().replace(",0\n", ",\n").replace(",1\n", ",\n"),
    "quotes, commas and line breaks in a category": _rows('1,2,"x, the\nsecond",1', '1,2,"q""uote",1'),
    "an extra column": _rows(header=HEADER + ",extra").replace("\n", ",e\n").replace(",extra,e\n", ",extra\n"),
    "the target absent": "\n".join(["a,b,cat", *[r.rsplit(",", 1)[0] for r in BASE_ROWS[:20]]]) + "\n",
    "a byte-order mark and CRLF": "\ufeff" + _rows().replace("\n", "\r\n"),
    "tabs": _rows().replace(",", "\t"),
    "pipes": _rows().replace(",", "|"),
    "blank lines before a bad cell": _rows("", "inf,2,x,1", "", "1,2,x,7"),
    "an empty category column": "\n".join([HEADER, *[f"{i},1,,{i % 2}" for i in range(20)]]) + "\n",
    "every category missing but one": "\n".join([HEADER, *[f"{i},1,NA,{i % 2}" for i in range(20)], "1,1,x,1"]) + "\n",
}
GENERAL_READER_CASES = {
    "text in a number column": _rows("1.5,abc,x,1"),
    "a missing token in a number column spelled in mixed case": _rows("nUlL,1,x,1"),
    "a short row": _rows("1,2"),
    "a long row": _rows("1,2,x,1,9"),
    "an unbalanced quote": _rows('1,2,"x,1'),
    "semicolons": _rows().replace(",", ";"),
    "cp1252": _rows("1,2,caf\u00e9,1").encode("cp1252"),
}


def _outcome(read):
    try:
        stored = read()
    except ValidationError as exc:
        return ("refused", str(exc))
    except _Declined:
        return ("declined",)
    return (stored.rows, stored.labelled_rows, stored.warnings, stored.report, stored.content_sha256)


def _both_ways(tmp_path, schema, text, id_column=None):
    """(arrow_ingest's outcome or None, the general reader's), each with its stored file."""
    path = tmp_path / "batch.csv"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    fast_file, general_file = tmp_path / "fast.parquet", tmp_path / "general.parquet"
    fast_file.unlink(missing_ok=True)
    general_file.unlink(missing_ok=True)
    fast = _outcome(lambda: arrow_ingest.ingest_csv(path, schema, fast_file, id_column, lambda f, m: None,
                                                    lambda: None) or _declined())
    general = _outcome(lambda: chunked_ingest.ingest_file(path, schema, general_file, id_column))
    return fast, general, fast_file, general_file


class _Declined(Exception):
    pass


def _declined():
    raise _Declined()


def _assert_same(fast, general, fast_file, general_file):
    assert fast == general
    if fast[0] != "refused":
        pd.testing.assert_frame_equal(pd.read_parquet(fast_file), pd.read_parquet(general_file))
        assert pq.read_schema(fast_file).equals(pq.read_schema(general_file), check_metadata=True)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_arrow_ingest_stores_a_file_as_the_general_reader_does(tmp_path, schema, case):
    fast, general, fast_file, general_file = _both_ways(tmp_path, schema, CASES[case])
    assert fast[0] not in ("refused", "declined"), fast
    _assert_same(fast, general, fast_file, general_file)


@pytest.mark.parametrize("case", GENERAL_READER_CASES, ids=list(GENERAL_READER_CASES))
def test_files_arrow_ingest_does_not_take_on_go_to_the_general_reader(tmp_path, schema, case):
    path = tmp_path / "batch.csv"
    text = GENERAL_READER_CASES[case]
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    assert arrow_ingest.ingest_csv(path, schema, tmp_path / "fast.parquet", None, lambda f, m: None,
                                   lambda: None) is None
    expected = _outcome(lambda: chunked_ingest.ingest_file(path, schema, tmp_path / "general.parquet"))
    assert _outcome(lambda: ingest.ingest_file(path, schema, tmp_path / "any.parquet")) == expected


def test_a_missing_feature_is_refused_as_the_general_reader_refuses_it(tmp_path, schema):
    fast, general, *_ = _both_ways(tmp_path, schema, "a,cat,y\n1,x,1\n")
    assert fast == general and fast[0] == "refused" and "missing feature column(s) 'b'" in fast[1]


@pytest.fixture(scope="module")
def text_target_schema(tmp_path_factory):
    rows = [f"{i},{i % 3},{'xyz'[i % 3]},{'yes' if i % 2 else 'no'},id-{i}" for i in range(60)]
    return _schema(tmp_path_factory, "\n".join(["a,b,cat,label,key", *rows]) + "\n", "label", "classification",
                   id_column="key", classes=("no", "yes"))


def test_a_text_target_and_an_id_column_are_stored_as_the_general_reader_stores_them(tmp_path, text_target_schema):
    text = "\n".join(["a,b,cat,label,key", *[f"{i},{i % 3},x, {'yes' if i % 2 else 'no'} ,id-{i % 15}" for i in range(30)],
                      "1,1,x,maybe,  id-x ", "1,1,x,NA,", "1,1,x,,none"]) + "\n"
    fast, general, fast_file, general_file = _both_ways(tmp_path, text_target_schema, text, id_column="key")
    assert fast[0] != "refused"
    assert any("unseen in training (first: row 31, 'maybe')" in w for w in fast[2])
    _assert_same(fast, general, fast_file, general_file)


@pytest.fixture(scope="module")
def regression_schema(tmp_path_factory):
    rows = [f"{i},{'xyz'[i % 3]},{i * 1.25}" for i in range(60)]
    return _schema(tmp_path_factory, "\n".join(["a,cat,price", *rows]) + "\n", "price", "regression")


def test_a_float_target_is_stored_as_the_general_reader_stores_it(tmp_path, regression_schema):
    text = "\n".join(["a,cat,price", *[f"{i},x,{i * 0.1}" for i in range(20)], "1,x,inf", "1,x,", "2,y,-0.0"]) + "\n"
    fast, general, fast_file, general_file = _both_ways(tmp_path, regression_schema, text)
    assert fast[0] != "refused"
    _assert_same(fast, general, fast_file, general_file)


NUMBER_CELLS = ["1", "-2.5", "+3", " 4 ", "1e3", "inf", "-inf", "nan", "NaN", "", "NA", "n/a", "Null", "?", "-",
                "007", "1.0", "-0", "0", '"7"', "9" * 25]
TEXT_CELLS = ["x", "y", " z ", "", "NA", "none", "None", "caf\u00e9", '"q, r"', "1", "\u00a0y", "x\u3000", "\x1cx",
              "K", "\u212a", "na\u0301", "w"]
TARGET_CELLS = ["0", "1", "", "2.5", "2", "NA", "inf", "1e0", "-0"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.sampled_from(NUMBER_CELLS), st.sampled_from(NUMBER_CELLS),
                               st.sampled_from(TEXT_CELLS), st.sampled_from(TARGET_CELLS)),
                     min_size=1, max_size=30))
def test_any_mix_of_cells_is_stored_as_the_general_reader_stores_it(tmp_path, schema, rows):
    text = "\n".join([HEADER, *[",".join(cells) for cells in rows]]) + "\n"
    fast, general, fast_file, general_file = _both_ways(tmp_path, schema, text)
    if fast == ("declined",):
        return
    _assert_same(fast, general, fast_file, general_file)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=1, max_size=20))
def test_text_hashes_are_pandas_hashes(values):
    distinct = list(dict.fromkeys(values))
    codes = np.array([distinct.index(v) for v in values])
    expected = pd.util.hash_pandas_object(pd.Series(values, dtype=object), index=False).to_numpy()
    np.testing.assert_array_equal(row_hashing.text_hashes(distinct, codes), expected)


def test_number_hashes_are_pandas_hashes():
    floats = np.array([1.5, np.nan, -0.0, 0.0, np.inf, -1e300])
    np.testing.assert_array_equal(row_hashing.float_hashes(floats),
                                  pd.util.hash_pandas_object(pd.Series(floats), index=False).to_numpy())
    missing = np.array([False, True, False, False, False, False])
    integers = pd.array([1, None, 3, 0, -7, 2**40], dtype="Int64")
    np.testing.assert_array_equal(row_hashing.nullable_hashes(np.array([1, 0, 3, 0, -7, 2**40]), missing),
                                  pd.util.hash_pandas_object(pd.Series(integers), index=False).to_numpy())
    nullable_floats = pd.array([1.5, None, -0.0, 0.0, 2.0, 3.0], dtype="Float64")
    np.testing.assert_array_equal(row_hashing.nullable_hashes(np.array([1.5, 9.0, -0.0, 0.0, 2.0, 3.0]), missing),
                                  pd.util.hash_pandas_object(pd.Series(nullable_floats), index=False).to_numpy())
    assert int(row_hashing.MISSING_NULLABLE_HASH) == hash(pd.NA)


def test_many_distinct_texts_are_hashed_as_pandas_hashes_them(monkeypatch):
    monkeypatch.setattr(row_hashing, "PYTHON_HASHED_VALUES", 2)
    values = ["a", None, "b", "c", "d"]
    expected = pd.util.hash_pandas_object(pd.Series(values, dtype=object), index=False).to_numpy()
    np.testing.assert_array_equal(row_hashing.text_hashes(values, np.arange(5)), expected)


def test_the_ingest_command_imports_neither_pandas_nor_sqlite_utils(workspace, tmp_path):
    """A plain CSV's ingest pays for no library it does not use (pandas alone costs 0.3 s)."""
    import subprocess
    from pathlib import Path

    from app.core.services.lifecycle import Keel

    seed, path = tmp_path / "seed.csv", tmp_path / "batch.csv"
    seed.write_text("\n".join([HEADER, *BASE_ROWS]) + "\n")
    path.write_text(_rows("1,2,w,1"))
    keel = Keel.open(workspace)
    keel.create_project("p", seed, "y", "classification")
    keel.close()
    root = Path(__file__).resolve().parents[1]
    code = ("import runpy, sys; "
            f"sys.argv = ['main.py', '--workspace', {str(workspace)!r}, 'ingest', 'p', {str(path)!r}]\n"
            "try:\n    runpy.run_path('main.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('pandas', 'sqlite_utils', 'scipy', 'sklearn', 'skops') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
    assert "Dataset v2" in out.stdout


def test_text_is_stripped_and_lowered_as_pandas_arrow_strings_are_for_every_character():
    """arrow_ingest cleans text with str.strip() and str.lower(); pandas' strings (arrow-backed) with
    utf8_trim_whitespace and utf8_lower: the same characters are trimmed, and the same text becomes
    a missing token."""
    import pyarrow as pa
    import pyarrow.compute as pc

    characters = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]  # every space and case pair is here
    trimmed = pc.utf8_trim_whitespace(pa.array(characters)).to_pylist()
    assert [c for c, t in zip(characters, trimmed, strict=True) if t == ""] == [c for c in characters if c.isspace()]
    token_letters = set("".join(datasets.MISSING_TOKENS))
    lowered = pc.utf8_lower(pa.array(characters)).to_pylist()
    assert not [c for c, low in zip(characters, lowered, strict=True) if not c.isascii() and set(low) & token_letters]
    assert not [c for c in characters if not c.isascii() and set(c.lower()) & token_letters]
