"""`verify`: finds what an interrupted write or a damaged disk leaves; `--repair` mends what is
safe to mend (temporaries removed, stale manifests rewritten, orphans quarantined), never
deleting user data."""

import json
import os
import time

import pytest
from cli_helpers import cli, deployed_loans_workspace


@pytest.fixture
def ws(tmp_path):
    return deployed_loans_workspace(tmp_path, rows=160, seed=3)


def _age(path, seconds=3600):
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_a_sound_workspace_is_healthy(ws, capsys):
    code, out, _ = cli(capsys, ws, "verify")
    assert code == 0 and out["healthy"] and out["problems"] == []
    assert out["checked"] == {"projects": 1, "model_files": 1, "dataset_files": 1, "hashed": True}


def test_a_damaged_model_file_fails_the_full_check_but_not_the_quick_one(ws, capsys):
    artifact = ws / "artifacts" / "loans" / "v1.skops"
    data = bytearray(artifact.read_bytes())
    data[100] ^= 0xFF
    artifact.write_bytes(bytes(data))
    code, out, _ = cli(capsys, ws, "verify", "--quick")
    assert code == 0
    code, out, _ = cli(capsys, ws, "verify")
    assert code == 1 and not out["healthy"]
    checks = {(p["check"], p["path"]) for p in out["problems"]}
    assert ("artifact", "artifacts/loans/v1.skops") in checks
    assert any(p["check"] == "production" and "not intact" in p["message"] for p in out["problems"])
    code, out, _ = cli(capsys, ws, "verify", "--repair")
    assert code == 1, "a damaged model cannot be repaired (restore a backup)"
    assert artifact.exists()


def test_a_missing_dataset_file_is_reported(ws, capsys):
    (ws / "datasets" / "loans" / "v1.parquet").unlink()
    code, out, _ = cli(capsys, ws, "verify", "--quick")
    assert code == 1
    assert [p["path"] for p in out["problems"]] == ["datasets/loans/v1.parquet"]


def test_repair_rewrites_a_stale_manifest_removes_temporaries_and_quarantines_orphans(ws, capsys):
    manifest = ws / "projects" / "loans" / "production.json"
    manifest.write_text(json.dumps({"version": 7, "sha256": "0" * 64}))
    temporary = ws / "artifacts" / "loans" / ".v2.skops.abc123.tmp"
    temporary.write_bytes(b"half a model")
    orphan = ws / "datasets" / "loans" / "v2.parquet"  # written, then killed before its commit
    orphan.write_bytes(b"rows")
    moved_aside = ws / "artifacts" / "loans" / "v2.skops.orphan-20260101T000000-99"
    moved_aside.write_bytes(b"model")
    for path in (temporary, orphan, moved_aside):
        _age(path)
    inbox_temp = ws / "projects" / "loans" / "inbox" / "incoming.csv.tmp"  # another program's file
    inbox_temp.write_text("a,b\n")
    _age(inbox_temp)

    code, out, _ = cli(capsys, ws, "verify", "--quick")
    assert code == 1
    found = {p["path"]: (p["check"], p["repair"]) for p in out["problems"]}
    assert found == {
        "projects/loans/production.json": ("production", "rewrite"),
        "artifacts/loans/.v2.skops.abc123.tmp": ("temporary", "remove"),
        "datasets/loans/v2.parquet": ("orphan", "quarantine"),
        "artifacts/loans/v2.skops.orphan-20260101T000000-99": ("orphan", "quarantine"),
    }

    code, out, _ = cli(capsys, ws, "verify", "--repair")
    assert code == 0 and out["healthy"], out
    assert {r["action"] for r in out["repaired"]} == {"rewrite", "remove", "quarantine"}
    assert json.loads(manifest.read_text())["version"] == 1
    assert not temporary.exists() and not orphan.exists() and not moved_aside.exists()
    quarantined = sorted(p.relative_to(ws).as_posix().split("/", 2)[2] for p in (ws / "quarantine").rglob("*")
                         if p.is_file())
    assert quarantined == ["artifacts/loans/v2.skops.orphan-20260101T000000-99", "datasets/loans/v2.parquet"]
    assert inbox_temp.exists(), "a file in the drop folder belongs to whoever writes it"


def test_a_young_temporary_is_reported_but_is_no_error(ws, capsys):
    temporary = ws / "datasets" / "loans" / ".v2.parquet.xyz.tmp"
    temporary.write_bytes(b"being written")
    code, out, _ = cli(capsys, ws, "verify", "--repair")
    assert code == 0 and out["healthy"]
    assert [(p["check"], p["error"]) for p in out["problems"]] == [("temporary", False)]
    assert temporary.exists(), "a writer may be at work on it"


def test_a_manifest_without_a_deployment_is_quarantined(tmp_path, capsys):
    ws = deployed_loans_workspace(tmp_path, rows=160, seed=3)
    stray = ws / "projects" / "loans" / "production.json"
    from app.core.store.registry import Registry

    registry = Registry(ws / "registry.db")
    registry.conn.execute("PRAGMA foreign_keys=OFF")
    registry.conn.execute("DELETE FROM model_aliases")
    registry.conn.execute("DELETE FROM deployments")
    registry.close()
    code, out, _ = cli(capsys, ws, "verify", "--quick")
    assert code == 1 and out["problems"][0]["repair"] == "quarantine"
    code, out, _ = cli(capsys, ws, "verify", "--quick", "--repair")
    assert code == 0 and not stray.exists()


def test_human_output_names_each_problem(ws, capsys):
    (ws / "projects" / "loans" / "production.json").unlink()
    code, out, _ = cli(capsys, ws, "verify", as_json=False)
    assert code == 1
    assert "error: production: projects/loans/production.json" in out and "NOT healthy" in out
