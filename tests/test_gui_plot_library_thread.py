"""pyqtgraph is imported on the GUI thread: a worker importing it while the window created Qt's
enums (PySide6 makes them lazily, not thread-safely) crashed the process with a segfault. What
start-up loaded is then frozen out of garbage collection: a full collection of it stalled the
event loop for ~130 ms on an idle machine (bench/ui_responsiveness.py)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import importlib.abc, sys, threading
importers = []

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pyqtgraph":
            importers.append(threading.current_thread() is threading.main_thread())
        return None

sys.meta_path.insert(0, Watch())
from PySide6.QtWidgets import QApplication
from app.frontends.gui.application import settings_store
from app.frontends.gui.controller import Controller
from app.frontends.gui.main_window import MainWindow

app = QApplication([])
controller = Controller(sys.argv[1], start_scheduler=False)
window = MainWindow(controller, settings_store())
window.show()
controller.plots_ready.connect(app.quit)
controller.open_keel()
app.exec()
controller.shutdown()
print("IMPORTERS", importers)
import gc
print("FROZEN", gc.get_freeze_count())
"""


def test_the_plot_library_is_imported_on_the_gui_thread(demo_workspace, tmp_path):
    env = {"QT_QPA_PLATFORM": "offscreen", "KEEL_SETTINGS": str(tmp_path / "settings.ini"), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(demo_workspace)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    line = next((text for text in result.stdout.splitlines() if text.startswith("IMPORTERS")), None)
    assert line == "IMPORTERS [True]", result.stdout + result.stderr
    frozen = next(int(text.split()[1]) for text in result.stdout.splitlines() if text.startswith("FROZEN"))
    assert frozen > 10_000, "start-up's objects were not frozen out of garbage collection"
