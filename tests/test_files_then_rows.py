"""Registry.files_then_rows: files written for rows are kept only when the rows commit."""

import pytest

from app.core.domain.entities import Column, Schema
from app.core.store.registry import Registry

ONE_FEATURE = Schema("y", "classification", "integer", (Column("x", "numeric"),))  # a project's smallest schema


@pytest.fixture
def registry(tmp_path):
    registry = Registry(tmp_path / "registry.db")
    yield registry
    registry.close()


def write(path, text="x"):
    path.write_text(text)
    return path


def test_files_stay_when_their_rows_commit(registry, tmp_path):
    with registry.files_then_rows() as files:
        model = files.add(write(tmp_path / "v1.skops"))
        with files.commit():
            project_id = registry.insert_project("p", "classification", "y", "accuracy", ONE_FEATURE, {})
    assert model.exists()
    assert registry.project("p").id == project_id


def test_a_failed_commit_removes_the_files_and_writes_no_row(registry, tmp_path):
    registry.insert_project("p", "classification", "y", "accuracy", ONE_FEATURE, {})
    with pytest.raises(Exception, match="UNIQUE"):
        with registry.files_then_rows() as files:
            model = files.add(write(tmp_path / "v1.skops"))
            reference = files.add(write(tmp_path / "v1.reference.parquet"))
            with files.commit():
                registry.add_event(None, "note", "written, then rolled back")
                registry.insert_project("p", "classification", "y", "accuracy", ONE_FEATURE, {})  # the name is taken
    assert not model.exists() and not reference.exists()
    assert registry.events() == []


def test_a_failure_before_the_commit_removes_only_the_listed_files(registry, tmp_path):
    earlier = write(tmp_path / "v0.skops")  # there before the block: never listed, never removed
    with pytest.raises(KeyboardInterrupt):
        with registry.files_then_rows() as files:
            model = files.add(write(tmp_path / "v1.skops"))
            raise KeyboardInterrupt  # a cancel, or Ctrl-C, between writing and committing
    assert not model.exists() and earlier.exists()
    assert registry.table_counts()["projects"] == 0
