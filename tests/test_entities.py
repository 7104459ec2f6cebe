"""The store and the services hand out typed, immutable entities; dicts only at the edges."""

import dataclasses

import pytest
from cli_helpers import cli, create_project

from app.core.domain.entities import Event
from app.core.services.lifecycle import Keel


def test_the_audit_log_comes_back_as_immutable_events(capsys, workspace, tmp_path):
    create_project(capsys, workspace, tmp_path)
    keel = Keel.open(workspace)
    try:
        [created] = keel.events("loans")
        newest = keel.recent_events("loans", limit=5)
    finally:
        keel.close()
    assert isinstance(created, Event) and newest == [created]
    assert (created.kind, created.project_name, created.by) == ("project_created", "loans", "user")
    assert created.details["schema_features"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        created.kind = "edited"


def test_history_json_keeps_its_keys(capsys, workspace, tmp_path):
    create_project(capsys, workspace, tmp_path)
    code, history, _ = cli(capsys, workspace, "history", "loans")
    assert code == 0
    assert set(history) == {"project", "events"}
    assert set(history["events"][0]) == {"id", "at", "kind", "by", "message", "details"}
