"""The domain core and the adapters must import no Qt: checked in a fresh interpreter."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import app.adapters
import app.core

ROOT = Path(__file__).resolve().parents[1]


def test_importing_every_core_module_loads_no_qt():
    modules = sorted([m.name for m in pkgutil.walk_packages(app.core.__path__, "app.core.")]
               + [m.name for m in pkgutil.walk_packages(app.adapters.__path__, "app.adapters.")])
    assert "app.core.services.lifecycle" in modules and "app.core.store.registry" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "qt = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6', 'pyqtgraph'))\n"
        "print(','.join(qt))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "", f"core modules imported Qt: {result.stdout}"
