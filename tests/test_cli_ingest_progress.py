"""`keel ingest` on a terminal shows how far the reading is on stderr; with --json, or when stderr
is not a terminal, it prints nothing but its result."""

import io
import json

import pytest

from app.frontends import cli

HEADER = "a,b,cat,y"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def project(workspace, tmp_path):
    seed = tmp_path / "seed.csv"
    seed.write_text("\n".join([HEADER, *[f"{i},{i % 5},{'xyz'[i % 3]},{i % 2}" for i in range(60)]]) + "\n")
    assert cli.main(["--workspace", str(workspace), "project", "create", "p", "--data", str(seed),
                     "--target", "y", "--json"]) == 0
    batch = tmp_path / "batch.csv"
    batch.write_text("\n".join([HEADER, *[f"{i},{i % 4},{'xy'[i % 2]},{i % 2}" for i in range(80)]]) + "\n")
    return workspace, batch


def test_ingest_on_a_terminal_shows_its_progress_on_stderr(project, monkeypatch, capsys):
    workspace, batch = project
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert cli.main(["--workspace", str(workspace), "ingest", "p", str(batch)]) == 0
    shown = terminal.getvalue()
    assert "100%" in shown and "batch.csv" in shown and shown.endswith("\r\033[K")  # the line is cleared
    assert "Dataset v2" in capsys.readouterr().out


def test_ingest_with_json_or_without_a_terminal_prints_no_progress(project, monkeypatch, capsys):
    workspace, batch = project
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert cli.main(["--workspace", str(workspace), "ingest", "p", str(batch), "--json"]) == 0
    assert terminal.getvalue() == ""
    assert json.loads(capsys.readouterr().out)["dataset_version"] == 2
    pipe = io.StringIO()  # not a terminal
    monkeypatch.setattr("sys.stderr", pipe)
    batch.write_text(batch.read_text() + "1,2,x,1\n")
    assert cli.main(["--workspace", str(workspace), "ingest", "p", str(batch)]) == 0
    assert pipe.getvalue() == "" and "Dataset v3" in capsys.readouterr().out
