"""Start-up: process start to the first painted main window, and to the workspace shown (the
project list and the Overview of the selected project filled), on an existing workspace.

    .venv/bin/python bench/startup.py [--runs 5] [--workspace DIR]

Runs `main.py --workspace DIR` in fresh processes (OS file cache warm after a first,
discarded run); the window prints FIRST_PAINT <epoch seconds> on its first paint and
WORKSPACE_SHOWN <epoch seconds> once the workspace is shown, then quits. The workspace is the
demo's (built once). Next to it, `python -c pass` in the same run. Targets: medians <= 1.0 s.
Prints a table and writes bench/results/startup.json.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import write_report

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 1.0


def ensure_workspace(folder: Path) -> None:
    if (folder / "registry.db").exists():
        return
    subprocess.run([sys.executable, str(ROOT / "main.py"), "--workspace", str(folder), "demo"], check=True,
                   stdout=subprocess.DEVNULL)


def time_startup(workspace: Path, env: dict) -> tuple[float, float]:
    """(seconds to the first paint, seconds to the workspace shown), from process start."""
    started = time.time()
    process = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--workspace", str(workspace)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    marks = {}
    for line in process.stdout:
        name, _, value = line.partition(" ")
        if name in ("FIRST_PAINT", "WORKSPACE_SHOWN"):
            marks[name] = float(value)
    process.wait(timeout=120)
    if len(marks) < 2:
        raise RuntimeError(f"the window reported {sorted(marks) or 'nothing'} (exit code {process.returncode})")
    return marks["FIRST_PAINT"] - started, marks["WORKSPACE_SHOWN"] - started


def time_python_pass() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workspace", default=str(Path(tempfile.gettempdir()) / "keel-bench-startup"))
    args = parser.parse_args()
    workspace = Path(args.workspace)
    ensure_workspace(workspace)
    env = dict(os.environ, KEEL_REPORT_FIRST_PAINT="quit",
               KEEL_SETTINGS=str(Path(tempfile.mkdtemp()) / "settings.ini"))
    env.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    time_startup(workspace, env)  # warm the OS file cache; not counted
    timings = [time_startup(workspace, env) for _ in range(args.runs)]
    paints, shown = [t[0] for t in timings], [t[1] for t in timings]
    passes = [time_python_pass() for _ in range(args.runs)]
    result = {
        "benchmark": "startup",
        "platform": env["QT_QPA_PLATFORM"],
        "runs": args.runs,
        "load_average_1m": round(os.getloadavg()[0], 2),  # the machine is shared: context for the figures
        "first_paint_seconds": [round(v, 4) for v in paints],
        "first_paint_median_seconds": round(statistics.median(paints), 4),
        "workspace_shown_seconds": [round(v, 4) for v in shown],
        "workspace_shown_median_seconds": round(statistics.median(shown), 4),
        "python_pass_seconds": [round(v, 4) for v in passes],
        "python_pass_median_seconds": round(statistics.median(passes), 4),
        "target_seconds": TARGET_SECONDS,
    }
    result["meets_target"] = result["first_paint_median_seconds"] <= TARGET_SECONDS
    result["workspace_shown_meets_target"] = result["workspace_shown_median_seconds"] <= TARGET_SECONDS
    print(f"{'measure':<34}{'median':>10}{'min':>10}{'max':>10}")
    for label, values in (("first painted window (s)", paints), ("workspace shown (s)", shown),
                          ("python -c pass (s)", passes)):
        print(f"{label:<34}{statistics.median(values):>10.3f}{min(values):>10.3f}{max(values):>10.3f}")
    print(f"target <= {TARGET_SECONDS:.1f} s: first paint {'met' if result['meets_target'] else 'NOT met'}, "
          f"workspace shown {'met' if result['workspace_shown_meets_target'] else 'NOT met'} "
          f"(platform {env['QT_QPA_PLATFORM']}, load {result['load_average_1m']})")
    write_report("startup", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
