"""What the side-by-side benchmarks share: timing whole processes (wall, CPU, peak memory),
interleaving the contenders, medians, the machine's description and the JSON report."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


@dataclass
class ProcessRun:
    seconds: float  # wall clock, start to exit
    cpu_seconds: float  # user + system of the process and its children
    peak_mb: float  # the largest resident set the process reached


def run_process(argv: Sequence[str], env: dict | None = None, cwd: Path | None = None,
                timeout: float = 3600) -> ProcessRun:
    """Run a command to its end; its own peak RSS from wait4 (not the parent's)."""
    started = time.perf_counter()
    process = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            process.kill()
            raise TimeoutError(f"{argv[:3]} ran over {timeout} s")
        time.sleep(0.002)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv[:4]))} exited {process.returncode}: {stderr.strip()[-500:]}")
    return ProcessRun(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def fresh_copy(template: Path, scratch: Path) -> Path:
    """A copy of a template workspace under scratch, replacing the previous run's: each timed run starts alike."""
    workspace = scratch / "workspace"
    shutil.rmtree(workspace, ignore_errors=True)
    shutil.copytree(template, workspace)
    return workspace


@contextmanager
def keel_services(workspace: Path) -> Iterator:
    """This checkout's Keel on a workspace, in this process: for the set-up a benchmark does not time
    (each process started pays ~2 CPU s of imports; set-up need not pay them once a step)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from app.core.services.lifecycle import Keel

    keel = Keel.open(workspace)
    try:
        yield keel
    finally:
        keel.close()


def interleaved(contenders: dict[str, Callable[[], ProcessRun]], repeats: int) -> dict[str, list[ProcessRun]]:
    """Each round runs every contender once, so a slow spell on the machine hits all of them."""
    runs: dict[str, list[ProcessRun]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            runs[name].append(run())
    return runs


def summary(runs: list[ProcessRun]) -> dict:
    return {"seconds": statistics.median(r.seconds for r in runs),
            "cpu_seconds": statistics.median(r.cpu_seconds for r in runs),
            "peak_mb": statistics.median(r.peak_mb for r in runs),
            "runs": [asdict(r) for r in runs]}


def library_versions(names: Sequence[str] = ("numpy", "pandas", "pyarrow", "scipy", "sklearn")) -> dict[str, str]:
    from importlib import metadata

    dist = {"sklearn": "scikit-learn"}
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(dist.get(name, name))
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine() -> dict:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def write_report(name: str, payload: dict, output: Path | None = None) -> Path:
    """bench/results/<name>.json (or output): the payload after the benchmark's name, date, command
    and machine, written to a temporary name and renamed (a stopped run leaves the last report whole)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from app.core.fileio import write_text_atomic

    path = Path(output) if output else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": name, "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(), **payload}
    write_text_atomic(path, json.dumps(report, indent=2) + "\n")
    return path


def print_table(headers: Sequence[str], rows: Sequence[Sequence]) -> None:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("  ".join(value.rjust(width) if i else value.ljust(width) for i, (value, width)
                        in enumerate(zip(row, widths, strict=True))))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)
