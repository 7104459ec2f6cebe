"""What a model server imports before it can answer /ping with 200: the libraries' floor.

    nice .venv/bin/python bench/serve_imports.py --repeats 5

Each line is a fresh interpreter that imports what it names (medians of --repeats, interleaved):
the interpreter alone, numpy, pandas, scipy.stats, scikit-learn's base module (which every fitted
estimator's module imports), the modules a Keel model is made of, skops.io (what loading a model
file needs), and Keel's own load of a registered model (sha256 checked, skops with Keel's trusted
types); then --starts starts of `serve` on that model (a workspace with it deployed): seconds to
the first answer from /ping (503 while the model loads) and to the first 200. CPU seconds are what
an idle machine waits; on a loaded one read the ratios.
Prints a table; writes bench/results/serve_imports.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from harness import ROOT, interleaved, library_versions, print_table, run_process, summary, write_report

MODEL_MODULES = ("sklearn.pipeline, sklearn.compose, sklearn.preprocessing, sklearn.impute, sklearn.ensemble, "
                 "sklearn.linear_model")
FLOOR = "python -c pass"
IMPORTS = {
    FLOOR: "pass",
    "numpy": "import numpy",
    "pandas": "import pandas",
    "scipy.stats": "import scipy.stats",
    "sklearn.base": "import sklearn.base",
    "the model's modules": f"import {MODEL_MODULES}",
    "skops.io": "import skops.io",
}
LOAD = """
import sys, json
sys.path.insert(0, {root!r})
from app.core.ml.artifacts import load_model
load_model({path!r}, {sha!r})
"""


def saved_model(folder: Path) -> tuple[Path, str]:
    """A model as Keel trains it (hgb on the loan demo's 600 rows): its file and sha256."""
    sys.path.insert(0, str(ROOT))
    from app.core.services.lifecycle import Keel
    from app.demo.simulator import initial_training_data

    keel = Keel.open(folder / "workspace")
    try:
        data = folder / "initial.csv"
        initial_training_data(rows=600, seed=3).to_csv(data, index=False)
        keel.create_project("serve", data, "default", "classification", {"preset": "hgb"})
        keel.train("serve")
        keel.deploy("serve", 1)
        version = keel.load_version("serve", 1).model_version
        return keel.root / version.artifact_path, version.sha256
    finally:
        keel.close()


def readiness(workspace: Path, starts: int) -> dict:
    """`serve` started `starts` times: medians of the seconds to the first /ping answer and to a 200."""
    import statistics

    from serve_bench import free_port, start_process, stop_process

    runs = []
    for _ in range(starts):
        port = free_port()
        started = start_process([sys.executable, "main.py", "--workspace", str(workspace), "serve", "serve",
                                 "--port", str(port)], port_from_first_line=False, port=port)
        stop_process(started["process"])
        runs.append(started)
    return {"first_answer_s": statistics.median(r["first_answer_s"] for r in runs),
            "ready_s": statistics.median(r["ready_s"] for r in runs),
            "all": [{"first_answer_s": r["first_answer_s"], "ready_s": r["ready_s"]} for r in runs]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--starts", type=int, default=5, help="starts of `serve` for the readiness times")
    parser.add_argument("--imports", nargs="+", choices=list(IMPORTS)[1:], metavar="NAME",
                        help=f"only these import lines ({', '.join(list(IMPORTS)[1:])}); the interpreter alone "
                             "and Keel's load of a model are always timed")
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="keel-bench-serve-imports-") as tmp:
        path, sha = saved_model(Path(tmp))
        contenders = {name: (lambda code=code: run_process([sys.executable, "-c", code]))
                      for name, code in IMPORTS.items() if name == FLOOR or not args.imports or name in args.imports}
        contenders["Keel's load_model (hgb)"] = lambda: run_process(
            [sys.executable, "-c", LOAD.format(root=str(ROOT), path=str(path), sha=sha)])
        runs = interleaved(contenders, args.repeats)
        ready = readiness(Path(tmp) / "workspace", args.starts)
    results = {name: summary(r) for name, r in runs.items()}
    floor = results[FLOOR]["cpu_seconds"]
    print_table(["imports", "CPU s", "wall s", "CPU s above python"],
                [[name, r["cpu_seconds"], r["seconds"], r["cpu_seconds"] - floor] for name, r in results.items()])
    print(f"serve, {args.starts} starts (medians): first answer from /ping {ready['first_answer_s']:.3f} s, "
          f"ready (200) {ready['ready_s']:.3f} s")
    path = write_report("serve_imports", {"repeats": args.repeats, "serve": ready, "libraries": library_versions(
        ("numpy", "pandas", "scipy", "sklearn", "skops")), "results": results,
        "load_average_at_end": list(os.getloadavg())}, Path(args.output) if args.output else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
