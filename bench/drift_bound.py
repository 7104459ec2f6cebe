"""How well can any policy within the retrain budget do on the rotating hyperplane? (an analysis, not a test)

bench/drift_loop.py measures Keel against retraining after every batch. On a drift that never stops
the gap is the model's age, and within a budget of a quarter of the batches part of that gap cannot
be closed. This script replays the hyperplane stream (same seeds, same first model, same preset and
sliding window as drift_loop's baselines) under clairvoyant schedules that no policy can beat with
as many fits: no gate, no window choice (the baselines' newest 2,000 rows), the fits spread evenly
spread evenly from a given batch to the end, as many as the budget allows (a quarter of the
stream's batches), scored prequentially from drift + 3 like drift_loop:

  * from the batch where Keel's change detector or alert first fired in drift_loop's run (read
    from bench/results/drift_loop.json): the best any policy can do with Keel's detection;
  * from the drift itself (a detector with no delay, which would need a faster detector than one
    that stays quiet on the stationary stream);
  * from Keel's detection again, each fit on a random 80 % of its window: the hold-out that a
    training keeps for its metrics, which policy challengers kept in the model before they were
    refitted on all their rows.

    .venv/bin/python bench/drift_bound.py    (after bench/drift_loop.py; prints a table)

--drift-loop names another drift_loop result file (the stream's size, seeds and detections come from
it); --seeds N replays only its first N seeds.

--noise: how often the adaptive window leaves the newest 2,000 rows on a stream with no change instead
(loan-stationary, --seeds seeds, default 40: 2,000 initial rows and 10 batches of 300, a false change
dated at batch 8, the selection slice a gate of 2 batches would hold), under the level of 0.16 per
candidate the policy used before, under Keel's WINDOW_SWITCH_P (0.05 per candidate) and under 0.05
shared by the candidates (Bonferroni) (one choice per seed; the rules read the same p-values).

    .venv/bin/python bench/drift_bound.py --noise
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from app.core.domain.entities import Project, Schema  # noqa: E402
from app.core.ml import datasets, training  # noqa: E402
from app.core.services import policy  # noqa: E402
from app.demo.streams import Shape, shapes  # noqa: E402

STREAM = "hyperplane"
BUDGET_SHARE = 0.25
INITIAL_ROWS = WINDOW_ROWS = 2000  # as bench/drift_loop.py


def replay(shape: Shape, seed: int, fit_after: set[int], schema: Schema, holdout: bool = False) -> float:
    def clean(frame):
        return datasets.clean(datasets.RawTable(frame, "bench"), schema, purpose="ingest").frame

    def fit(frame):
        model = training.make_pipeline(schema, shape.task, "hgb", {}, seed=42)
        X, y = datasets.to_model_frame(frame, schema), datasets.target_array(frame, schema)
        if holdout:
            X, _, y, _ = training.split_holdout(X, y, shape.task, 42)
        return model.fit(X, y)

    window = clean(shape.initial(INITIAL_ROWS, seed))
    model, values = fit(window), []
    for index, raw in shape.stream(seed):
        frame = clean(raw)
        predictions = np.asarray(model.predict(datasets.to_model_frame(frame, schema)))
        values.append(float(np.mean(predictions == datasets.target_array(frame, schema))))  # accuracy
        window = pd.concat([window, frame], ignore_index=True).iloc[-WINDOW_ROWS:]
        if index in fit_after:
            model = fit(window)
    return float(np.mean(values[shape.drift_at + 3:]))


def bench_project(shape: Shape) -> Project:
    """The project Keel creates for the stream: its schema (as drift_loop's baselines use it), metric and
    default settings."""
    import tempfile

    from app.core.services.lifecycle import Keel

    with tempfile.TemporaryDirectory() as scratch:
        initial = Path(scratch) / "initial.csv"
        shape.initial(INITIAL_ROWS, 0).to_csv(initial, index=False)
        keel = Keel.open(Path(scratch) / "workspace")
        keel.create_project("bound", initial, shape.target, shape.task, {})
        project = keel.project("bound")
        keel.close()
    return project


def project_schema(shape: Shape) -> Schema:
    return bench_project(shape).schema


def window_noise(seeds: int, batches: int = 10) -> dict[str, int]:
    """Per rule, the choices of the adaptive window that leave the newest rows on a stream with no change."""
    shape = shapes()["loan-stationary"]
    project = bench_project(shape)
    schema = project.schema

    def clean(frame: pd.DataFrame, version: int) -> pd.DataFrame:
        return datasets.clean(datasets.RawTable(frame, "bench"), schema, purpose="ingest").frame.assign(
            __version__=version)

    rules = {"0.16 per candidate (before)": lambda p, others: p < 0.16,
             f"{policy.WINDOW_SWITCH_P:g} per candidate (now)": lambda p, others: p < policy.WINDOW_SWITCH_P,
             "0.05 shared by the candidates": lambda p, others: p < 0.05 / others}
    switched = dict.fromkeys(rules, 0)
    for seed in range(101, 101 + seeds):
        frames = [clean(shape.initial(INITIAL_ROWS, seed), 1)]
        frames += [clean(frame, index + 2) for index, frame in shape.stream(seed) if index < batches]
        rows = pd.concat(frames, ignore_index=True)
        gate = policy.gate_size(2 * shape.batch_rows)
        _, choice = policy.choose_window(project, project.settings, rows.iloc[:-gate], batches - 1, gate)
        others = max(1, len(choice.scores) - 1)
        for name, rule in rules.items():
            switched[name] += any(rule(p, others) for p in choice.p_values.values())
        print(f"seed {seed}: p-values of the windows that beat the newest 2,000 rows: "
              f"{ {name: round(p, 3) for name, p in choice.p_values.items()} }", flush=True)
    print(f"\nloan-stationary, {seeds} seeds, no change: choices that leave the newest 2,000 rows")
    print("| rule | switched |\n|---|---:|")
    for name, count in switched.items():
        print(f"| {name} | {count} of {seeds} ({count / seeds:.0%}) |")
    return switched


def schedule(first: int, batches: int) -> set[int]:
    """The budget's fits spread evenly from `first` over the rest of the stream (a fit after the last
    batch would score nothing)."""
    fits = int(BUDGET_SHARE * batches)
    step = max(1.0, (batches - 1 - first) / fits)
    return {int(round(first + step * k)) for k in range(fits) if first + step * k < batches - 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drift-loop", default=str(ROOT / "bench" / "results" / "drift_loop.json"),
                        help="the drift_loop result file read (default bench/results/drift_loop.json)")
    parser.add_argument("--seeds", type=int, help="replay only the first N seeds (--noise: seeds, default 40)")
    parser.add_argument("--noise", action="store_true",
                        help="how often the window rule leaves the newest rows on a stream with no change")
    args = parser.parse_args(argv)
    if args.noise:
        window_noise(args.seeds or 40)
        return 0
    stream = json.loads(Path(args.drift_loop).read_text())["streams"][STREAM]
    shape = shapes(batches=stream["shape"]["batches"])[STREAM]
    schema = project_schema(shape)
    rows = []
    for run in stream["seeds"][:args.seeds]:
        seed, keel = run["seed"], run["strategies"]["keel"]
        detected = min(i for i in keel["signals"] if i >= shape.drift_at)
        rows.append({"seed": seed, "detected": detected, "keel": keel["mean_from_drift_plus_3"],
                     "every batch": run["strategies"]["every batch"]["mean_from_drift_plus_3"],
                     "from detection": replay(shape, seed, schedule(detected, shape.batches), schema),
                     "from the drift": replay(shape, seed, schedule(shape.drift_at, shape.batches), schema),
                     "80 %": replay(shape, seed, schedule(detected, shape.batches), schema, holdout=True)})
        print(rows[-1])
    mean = {key: float(np.mean([r[key] for r in rows])) for key in ("keel", "every batch", "from detection",
                                                                      "from the drift", "80 %")}
    fits = int(BUDGET_SHARE * shape.batches)
    print(f"\n{STREAM}, {len(rows)} seeds, {fits} fits spread evenly, newest {WINDOW_ROWS} rows, no gate:")
    print("| every batch | target (best − 0.01) | clairvoyant from Keel's detection | clairvoyant from the drift "
          "| from Keel's detection, fits on 80 % | Keel |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {mean['every batch']:.3f} | {mean['every batch'] - 0.01:.3f} | {mean['from detection']:.3f} "
          f"(detected at {', '.join(str(r['detected']) for r in rows)}) | {mean['from the drift']:.3f} "
          f"| {mean['80 %']:.3f} | {mean['keel']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
