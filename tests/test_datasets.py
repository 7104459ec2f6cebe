"""Datasets: files accepted with a warning (each result checked), ragged rows, content hashing.

The accepted list of the README's "Data files". Ingest goes through the CLI in-process so the
warnings are checked where the user sees them (the `ingest --json` document).
"""

import gzip

import numpy as np
import pandas as pd
import pytest
from cli_helpers import cli, create_project, loans, write_csv

from app.core.domain.errors import ValidationError
from app.core.ml import datasets
from app.core.services.lifecycle import Keel

FEATURES = ["income", "age", "debt_ratio", "tenure_months", "region", "has_mortgage"]


@pytest.fixture
def project(capsys, workspace, tmp_path):
    create_project(capsys, workspace, tmp_path)
    return workspace


def ingest(capsys, workspace, path):
    code, out, err = cli(capsys, workspace, "ingest", "loans", str(path))
    assert code == 0, err
    assert set(out) >= {"dataset_version", "rows", "labelled", "warnings", "duplicate_of"}
    return out


def stored(workspace, version) -> pd.DataFrame:
    keel = Keel.open(workspace)
    try:
        return keel.dataset_frame("loans", version)
    finally:
        keel.close()


def assert_same_values(frame: pd.DataFrame, original: pd.DataFrame):
    """The stored (cleaned) batch holds exactly the original values, in order."""
    assert len(frame) == len(original)
    for column in ("income", "age", "debt_ratio", "tenure_months"):
        np.testing.assert_allclose(frame[column].astype(float), original[column].astype(float))
    assert frame["region"].tolist() == original["region"].tolist()
    assert frame["has_mortgage"].astype(float).tolist() == (original["has_mortgage"] == "yes").astype(float).tolist()
    assert frame["default"].astype(int).tolist() == original["default"].tolist()


# --------------------------------------------------------------------------- formats
@pytest.mark.parametrize("delimiter, named", [(";", "';'"), ("\t", "tab"), ("|", "'|'")])
def test_other_delimiters_are_detected_and_named(capsys, project, tmp_path, delimiter, named):
    batch = loans(40, seed=21)
    path = write_csv(tmp_path / "batch.csv", batch, sep=delimiter)
    out = ingest(capsys, project, path)
    assert any(f"delimiter detected as {named}" in w for w in out["warnings"]), out["warnings"]
    assert out["rows"] == 40 and out["labelled"] is True and out["duplicate_of"] is None
    assert_same_values(stored(project, out["dataset_version"]), batch)


def test_semicolon_file_with_decimal_commas(capsys, project, tmp_path):
    """A ';' file written the European way: '0,25' and '1.234,5' are numbers, and say so."""
    batch = loans(40, seed=36)
    batch["income"] = batch["income"] + 0.5
    path = write_csv(tmp_path / "european.csv", batch, sep=";", decimal=",")
    assert "0,5" in path.read_text()
    out = ingest(capsys, project, path)
    assert any("decimal commas read as decimal points in column(s) income, debt_ratio" in w
               for w in out["warnings"]), out["warnings"]
    assert not any("not readable" in w for w in out["warnings"])
    assert_same_values(stored(project, out["dataset_version"]), batch)


def test_decimal_comma_reading_leaves_text_and_ordinary_decimals_alone(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("code;note;price;big;plain\n1,5;a,b;2,5;1.234,5;1.5\n2;c;-0,25;12;2.5\n;;;;\n")
    raw = datasets.read_table(path)
    assert raw.frame.to_dict("list") == {"code": ["1.5", "2", ""], "note": ["a,b", "c", ""],
                                         "price": ["2.5", "-0.25", ""], "big": ["1234.5", "12", ""],
                                         "plain": ["1.5", "2.5", ""]}
    comma_file = tmp_path / "comma.csv"
    comma_file.write_text('x,y\n"1,5",2\n"3,5",4\n')
    assert datasets.read_table(comma_file).frame["x"].tolist() == ["1,5", "3,5"]  # ambiguous: left as text
    tab_file = tmp_path / "us.tsv"
    tab_file.write_text("amount\tn\n12,500\t1\n3,400\t2\n")
    assert datasets.read_table(tab_file).frame["amount"].tolist() == ["12,500", "3,400"]  # maybe thousands


def test_utf8_bom_and_crlf_line_ends(capsys, project, tmp_path):
    batch = loans(40, seed=22)
    path = tmp_path / "bom_crlf.csv"
    path.write_bytes(b"\xef\xbb\xbf" + batch.to_csv(index=False, lineterminator="\r\n").encode("utf-8"))
    out = ingest(capsys, project, path)
    frame = stored(project, out["dataset_version"])
    assert list(frame.columns[:1]) == ["income"]  # the BOM is not glued to the first column's name
    assert_same_values(frame, batch)
    assert not any(isinstance(v, str) and v.endswith("\r") for v in frame["region"])


def test_gzipped_csv(capsys, project, tmp_path):
    batch = loans(40, seed=23)
    path = tmp_path / "batch.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        batch.to_csv(handle, index=False)
    out = ingest(capsys, project, path)
    assert_same_values(stored(project, out["dataset_version"]), batch)


def test_parquet(capsys, project, tmp_path):
    batch = loans(40, seed=24)
    path = tmp_path / "batch.parquet"
    batch.to_parquet(path, index=False)
    out = ingest(capsys, project, path)
    assert out["rows"] == 40
    assert_same_values(stored(project, out["dataset_version"]), batch)


def test_latin1_and_cp1252_are_decoded_with_a_warning(tmp_path):
    path = tmp_path / "cities.csv"
    path.write_bytes("city;price\nZürich;3,5\ncafé;2\n€ zone;1\n".encode("cp1252"))
    raw = datasets.read_table(path)
    assert raw.frame["city"].tolist() == ["Zürich", "café", "€ zone"]
    assert any("not UTF-8" in w and "cp1252" in w for w in raw.warnings)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("city,n\nZürich,1\nSão Paulo,2\n".encode("latin-1"))
    assert datasets.read_table(latin).frame["city"].tolist() == ["Zürich", "São Paulo"]


def test_utf16_with_a_bom_is_decoded(tmp_path):
    """Excel's "Unicode text" export: UTF-16 with a BOM, tab-delimited, CRLF."""
    path = tmp_path / "excel.txt"
    path.write_bytes("city\tn\r\nZürich\t1\r\ncafé\t2\r\n".encode("utf-16"))
    raw = datasets.read_table(path)
    assert raw.frame.to_dict("list") == {"city": ["Zürich", "café"], "n": ["1", "2"]}
    assert raw.warnings == ["excel.txt: decoded as UTF-16", "excel.txt: delimiter detected as tab"]


def test_cp1252_batch_ingested_with_its_text_intact(capsys, project, tmp_path):
    batch = loans(30, seed=25)
    batch.loc[0, "region"] = "Zürich"
    path = tmp_path / "cp1252.csv"
    path.write_bytes(batch.to_csv(index=False).encode("cp1252"))
    out = ingest(capsys, project, path)
    assert any("not UTF-8" in w for w in out["warnings"])
    assert any("unseen in training" in w and "Zürich" in w for w in out["warnings"])
    assert stored(project, out["dataset_version"])["region"].iloc[0] == "Zürich"


# --------------------------------------------------------------------------- content problems
def test_extra_columns_are_ignored_and_named(capsys, project, tmp_path):
    batch = loans(30, seed=26).assign(branch="x", score_v2=1.5)
    out = ingest(capsys, project, write_csv(tmp_path / "extra.csv", batch))
    assert any("extra column(s) ignored: branch, score_v2" in w for w in out["warnings"]), out["warnings"]
    frame = stored(project, out["dataset_version"])
    assert "branch" not in frame.columns and "score_v2" not in frame.columns


def test_inf_and_unreadable_numbers_become_missing_and_are_counted(capsys, project, tmp_path):
    batch = loans(30, seed=27).astype({"income": object})
    batch.loc[[2, 5], "income"] = ["inf", "-inf"]
    batch.loc[[7, 8, 9], "income"] = ["abc", "12,5x", "1.2.3"]
    out = ingest(capsys, project, write_csv(tmp_path / "dirty.csv", batch))
    [warning] = [w for w in out["warnings"] if "'income'" in w]
    assert "3 cell(s) not readable as numbers (first: row 8, 'abc')" in warning
    assert "2 infinite value(s) (first: row 3)" in warning
    income = stored(project, out["dataset_version"])["income"]
    assert income.isna().sum() == 5 and np.isfinite(income.dropna()).all()
    assert income.isna().to_numpy().nonzero()[0].tolist() == [2, 5, 7, 8, 9]


def test_a_column_entirely_missing_in_a_batch_is_kept_for_imputation(capsys, project, tmp_path):
    batch = loans(30, seed=28).assign(debt_ratio="")
    out = ingest(capsys, project, write_csv(tmp_path / "no_debt.csv", batch))
    assert any("'debt_ratio' is empty in this file; it will be imputed" in w for w in out["warnings"])
    assert out["rows"] == 30 and out["labelled"] is True
    assert stored(project, out["dataset_version"])["debt_ratio"].isna().all()
    code, trained, err = cli(capsys, project, "train", "loans")  # the imputer fills the gap
    assert code == 0 and trained["metrics"]["accuracy"] > 0.5, err


@pytest.mark.parametrize("how", ["target column absent", "target column empty"])
def test_unlabelled_batches_are_accepted_for_monitoring(capsys, project, tmp_path, how):
    batch = loans(30, seed=29)
    batch = batch.drop(columns="default") if how == "target column absent" else batch.assign(default="")
    out = ingest(capsys, project, write_csv(tmp_path / "unlabelled.csv", batch))
    assert out["labelled"] is False and out["rows"] == 30
    assert any("no labels" in w and "unlabelled batch" in w for w in out["warnings"])
    assert stored(project, out["dataset_version"])["default"].isna().all()


def test_a_class_unseen_in_training_is_named(capsys, project, tmp_path):
    batch = loans(30, seed=37)
    batch.loc[[4, 9], "default"] = 2
    out = ingest(capsys, project, write_csv(tmp_path / "new_class.csv", batch))
    assert "new_class.csv: target 'default': 2 row(s) have a class unseen in training (first: row 5, 2); " \
           "a retrained model will learn it" in out["warnings"]
    assert stored(project, out["dataset_version"])["default"].tolist() == batch["default"].tolist()


def test_partly_labelled_batch_counts_its_unlabelled_rows(capsys, project, tmp_path):
    batch = loans(30, seed=30).astype({"default": object})
    batch.loc[:9, "default"] = ""
    out = ingest(capsys, project, write_csv(tmp_path / "partly.csv", batch))
    assert out["labelled"] is True and out["labelled_rows"] == 20
    assert any("10 row(s) have no target value" in w for w in out["warnings"])


def test_unseen_category_and_target_present_when_scoring(capsys, project, tmp_path):
    assert cli(capsys, project, "train", "loans")[0] == 0
    assert cli(capsys, project, "deploy", "loans", "--version", "1")[0] == 0
    to_score = loans(25, seed=31)
    to_score.loc[[0, 3], "region"] = "atlantis"
    to_score = to_score.assign(debt_ratio="")  # entirely missing: imputed at scoring time too
    output = tmp_path / "scored.csv"
    code, out, err = cli(capsys, project, "predict", "loans", "--input",
                         str(write_csv(tmp_path / "score.csv", to_score)), "--output", str(output))
    assert code == 0, err
    assert any("unseen in training" in w and "'atlantis'" in w for w in out["warnings"])
    assert any("target column 'default' present; ignored for scoring" in w for w in out["warnings"])
    scored = pd.read_csv(output)
    assert len(scored) == 25 and scored["prediction"].isin([0, 1]).all()
    np.testing.assert_allclose(scored["proba_0"] + scored["proba_1"], 1.0)


# --------------------------------------------------------------------------- ragged rows
def test_ragged_rows_and_unclosed_quotes(tmp_path):
    """A row with MORE fields than the header, or an
    unclosed quote, is refused with a message naming the file line (counting the header
    as line 1): Keel cannot know which cell went where, so guessing would corrupt
    columns. A row with FEWER fields than the header is accepted: its trailing cells
    are missing, and a warning counts such rows and names the first (1-based data row)."""
    long_row = tmp_path / "long.csv"
    long_row.write_text("a,b,c\n1,2,3\n4,5,6,7\n8,9,10\n")
    with pytest.raises(ValidationError, match=r"long\.csv: malformed CSV: Expected 3 fields on line 3, saw 4"):
        datasets.read_table(long_row)

    unclosed = tmp_path / "quote.csv"
    unclosed.write_text('a,b,c\n1,2,3\n4,"5,6\n8,9,10\n')
    with pytest.raises(ValidationError, match=r"quote\.csv: malformed CSV: EOF inside string starting on line 3"):
        datasets.read_table(unclosed)

    short = tmp_path / "short.csv"
    short.write_text("a,b,c\n1,,3\n4,5\n\n8,9,10\n6\n")
    raw = datasets.read_table(short)
    assert raw.frame.to_dict("list") == {"a": ["1", "4", "8", "6"], "b": ["", "5", "9", ""], "c": ["3", "", "10", ""]}
    assert raw.warnings == ["short.csv: 2 row(s) have fewer fields than the header (first: row 2); "
                            "the missing cells are treated as missing"]


def test_an_empty_last_cell_is_not_a_short_row(tmp_path):
    path = tmp_path / "empty_last.csv"
    path.write_text('a,b,c\n1,2,\n4,5,""\n')
    assert datasets.read_table(path).warnings == []


# --------------------------------------------------------------------------- content hash
def test_content_hash_ignores_row_and_column_order():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "c"]})
    reordered = frame.iloc[[2, 0, 1]][["y", "x"]]
    assert datasets.content_hash(frame) == datasets.content_hash(reordered)
    changed = frame.assign(x=[1.0, 2.0, 3.5])
    assert datasets.content_hash(changed) != datasets.content_hash(frame)


def test_same_content_twice_is_a_no_op_naming_the_version(capsys, project, tmp_path):
    batch = loans(40, seed=32)
    first = ingest(capsys, project, write_csv(tmp_path / "a.csv", batch))
    assert first["duplicate_of"] is None and first["dataset_version"] == 2
    shuffled = batch.sample(frac=1.0, random_state=0)[list(reversed(batch.columns))]
    again = ingest(capsys, project, write_csv(tmp_path / "b.csv", shuffled, sep=";"))
    assert again["duplicate_of"] == 2 and again["dataset_version"] == 2
    assert any("same content as dataset version 2; nothing stored" in w for w in again["warnings"])
    initial = ingest(capsys, project, tmp_path / "loans-initial.csv")
    assert initial["duplicate_of"] == 1
    code, history, _ = cli(capsys, project, "history", "loans")
    assert [e["kind"] for e in history["events"]] == ["project_created", "data_ingested"]
    assert sorted(p.name for p in (project / "datasets" / "loans").iterdir()) == ["v1.parquet", "v2.parquet"]


def test_lineage_each_version_extends_the_previous(capsys, project, tmp_path, store):
    ingest(capsys, project, write_csv(tmp_path / "a.csv", loans(30, seed=33)))
    ingest(capsys, project, write_csv(tmp_path / "b.csv", loans(30, seed=34)))
    keel = Keel.open(project)
    try:
        rows = store(keel).dataset_versions(keel.project("loans").id)
    finally:
        keel.close()
    assert [r.version for r in rows] == [1, 2, 3]
    assert rows[0].parent_id is None
    assert rows[1].parent_id == rows[0].id and rows[2].parent_id == rows[1].id


def test_exact_duplicate_rows_are_dropped_and_whitespace_trimmed(capsys, project, tmp_path):
    batch = loans(20, seed=35)
    batch = pd.concat([batch, batch.iloc[:3]], ignore_index=True)
    batch["region"] = "  " + batch["region"] + " "
    out = ingest(capsys, project, write_csv(tmp_path / "dups.csv", batch))
    assert out["rows"] == 20
    assert any("3 exact duplicate row(s) dropped" in w for w in out["warnings"])
    assert set(stored(project, out["dataset_version"])["region"]) <= {"north", "south", "east", "west"}


def test_scoring_a_parquet_file_into_a_parquet_file(capsys, project, tmp_path):
    assert cli(capsys, project, "train", "loans")[0] == 0
    assert cli(capsys, project, "deploy", "loans", "--version", "1")[0] == 0
    to_score = loans(15, seed=38).drop(columns="default")
    to_score = pd.concat([to_score, to_score.iloc[:2]], ignore_index=True)  # duplicates are scored too
    source, output = tmp_path / "in.parquet", tmp_path / "out.parquet"
    to_score.to_parquet(source, index=False)
    code, out, err = cli(capsys, project, "predict", "loans", "--input", str(source), "--output", str(output))
    assert code == 0 and out["rows"] == 17 and out["warnings"] == []
    scored = pd.read_parquet(output)
    assert list(scored.columns) == [*to_score.columns, "prediction", "proba_0", "proba_1"]
    pd.testing.assert_frame_equal(scored[to_score.columns], to_score)
    assert scored["prediction"].iloc[15:].tolist() == scored["prediction"].iloc[:2].tolist()


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_scoring_an_already_scored_file_replaces_the_old_scores(capsys, project, tmp_path, suffix):
    assert cli(capsys, project, "train", "loans")[0] == 0
    assert cli(capsys, project, "deploy", "loans", "--version", "1")[0] == 0
    first, second = tmp_path / f"first.{suffix}", tmp_path / f"second.{suffix}"
    source = write_csv(tmp_path / "in.csv", loans(12, seed=39).drop(columns="default"))
    assert cli(capsys, project, "predict", "loans", "--input", str(source), "--output", str(first))[0] == 0
    code, out, err = cli(capsys, project, "predict", "loans", "--input", str(first), "--output", str(second))
    assert code == 0, err
    assert any("column(s) prediction, proba_0, proba_1 replaced by this scoring" in w for w in out["warnings"])
    read = pd.read_csv if suffix == "csv" else pd.read_parquet
    rescored = read(second)
    assert list(rescored.columns) == list(read(first).columns)
    pd.testing.assert_frame_equal(rescored, read(first), check_dtype=False)


def test_a_lone_carriage_return_ends_a_row_as_pandas_reads_it_and_the_short_row_is_counted():
    raw = datasets.read_csv_bytes(b"income,age,y\n10,3\r4,5,1\n6,7,0\n", "body.csv")  # was: csv.Error, a 500
    assert raw.frame.shape == (3, 3)
    assert raw.warnings == ["body.csv: 1 row(s) have fewer fields than the header (first: row 1); "
                            "the missing cells are treated as missing"]
