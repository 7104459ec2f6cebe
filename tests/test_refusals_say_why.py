"""Refusals that are the user's to fix: exit 2 and a message naming what and where."""

import pytest
from cli_helpers import loans_csv


def test_predict_and_export_to_an_unwritable_output_are_user_errors(tmp_path, capsys):
    """--output naming a folder, or a path in a folder that cannot be created, is the user's to
    fix: exit 2 and a message naming the path. Not exit 1, "internal error: IsADirectoryError"."""
    from app.frontends.cli import main

    workspace, data = tmp_path / "ws", loans_csv(tmp_path / "loans.csv")
    base = ["--workspace", str(workspace)]
    assert main(base + ["project", "create", "p", "--data", str(data), "--target", "default", "--model", "logreg"]) == 0
    assert main(base + ["train", "p"]) == 0
    assert main(base + ["deploy", "p", "--version", "1"]) == 0
    capsys.readouterr()
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(base + ["predict", "p", "--input", str(data), "--output", str(folder)]) == 2
    assert str(folder) in capsys.readouterr().err
    assert list(folder.iterdir()) == [] and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    assert main(base + ["predict", "p", "--input", str(data), "--output", str(blocked / "scores.csv")]) == 2
    assert "scores.csv" in capsys.readouterr().err
    assert main(base + ["export", "p", "--version", "1", "--output", str(blocked / "m.skops")]) == 2
    assert "m.skops" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--threshold", "--max-drop", "--margin"])
def test_nan_settings_are_refused(tmp_path, capsys, flag):
    """`project set p --max-drop nan` is refused: NaN would pass the range checks, then every
    comparison with it would be false, so the rule would never fire (or no challenger ever win)."""
    from app.frontends.cli import main

    workspace, data = tmp_path / "ws", loans_csv(tmp_path / "loans.csv")
    base = ["--workspace", str(workspace)]
    assert main(base + ["project", "create", "p", "--data", str(data), "--target", "default", "--model", "logreg"]) == 0
    capsys.readouterr()
    assert main(base + ["project", "set", "p", flag, "nan"]) == 2
    assert flag in capsys.readouterr().err


def test_train_refused_by_the_adaptive_window_says_why(tmp_path, store):
    """After a change detected on an unlabelled batch, the adaptive window holds no labelled rows
    yet: `train` names the window and what to do, not "project has no labelled data to train on"
    of a project full of labelled data."""
    from app.core.domain.errors import ValidationError
    from app.core.services.lifecycle import Keel
    from app.core.store import policy_state
    from app.demo.simulator import make_batch

    keel = Keel.open(tmp_path / "ws")
    try:
        keel.create_project("p", loans_csv(tmp_path / "loans.csv"), "default", "classification",
                            {"preset": "logreg", "window": "adaptive"})
        make_batch(50, seed=3).drop(columns=["default"]).to_csv(tmp_path / "unlabelled.csv", index=False)
        version = keel.ingest("p", tmp_path / "unlabelled.csv").dataset_version
        with store(keel).transaction():  # what the policy records for an alert on that batch
            policy_state.write_policy_state(store(keel), keel.project("p").id,
                                            policy_state.PolicyState(change_point=version))
        with pytest.raises(ValidationError, match=rf"dataset v{version}.*adaptive.*--window all"):
            keel.train("p")
    finally:
        keel.close()
