import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty workspace folder, also set as $KEEL_WORKSPACE."""
    folder = tmp_path / "workspace"
    folder.mkdir()
    monkeypatch.setenv("KEEL_WORKSPACE", str(folder))
    return folder
