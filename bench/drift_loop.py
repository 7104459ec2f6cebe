"""Evaluate Keel's retraining policy on every shape of drift (a benchmark, not a test).

Replays labelled streams (app/demo/streams.py: the loan simulator's abrupt, gradual,
covariate-shift and stationary streams; a rotating hyperplane that keeps turning; SEA;
Agrawal; Friedman regression with a global recurring drift), several seeds each,
through Keel's services in-process (`ingest` + `monitor`, policy auto, every other
setting at its default), and in the same run three baselines on Keel's default preset
(hgb): never retrain; retrain after every batch on a sliding window of the newest
WINDOW_ROWS rows; retrain every 5 batches on the same window (a cron job). Every batch is
scored by the model in place when it arrived (prequential evaluation).

Per stream, seed-averaged: the mean metric from drift + 3 (over all batches for the
stationary stream), retrains (every challenger fitted), restores of an earlier version
(Keel), and batches from the drift to Keel's first alert or detected change.
Target: Keel >= the best baseline - 0.01 with retrains <= 25 % of the batches; on the
stationary stream 0 retrains and 0 alerts.

Also times one drift computation on 100,000 rows x 25 columns against a plain
numpy/scipy implementation of the same statistics.

    .venv/bin/python bench/drift_loop.py [--seeds 3] [--quick] [--only NAME ...]

Prints tables and writes bench/results/drift_loop.json (not with --only or --quick).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# One OpenMP thread per fit: on 2 cores shared with other work, hgb's default thread pool
# oversubscribes and a 2,000-row fit takes 7-25 s instead of 0.2 s (measured on this machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from app.core.domain.entities import Schema  # noqa: E402
from app.core.ml import datasets, drift, training  # noqa: E402
from app.core.services import policy  # noqa: E402
from app.core.services.lifecycle import Keel  # noqa: E402
from app.demo.streams import Shape, shapes  # noqa: E402

INITIAL_ROWS = 2000
WINDOW_ROWS = 2000  # the baselines' sliding window: as large as the initial training set
KEEL_SETTINGS = {"policy": "auto"}  # every other setting at its default (window: adaptive)
CHANGE_RULES = ("metric_threshold", "metric_drop", "drift_share")
SEED_BASE = 101


# --------------------------------------------------------------------------- Keel, the real loop
def run_keel(shape: Shape, seed: int, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    keel = Keel.open(folder / "workspace")
    initial = folder / "initial.csv"
    shape.initial(INITIAL_ROWS, seed).to_csv(initial, index=False)
    keel.create_project("bench", initial, shape.target, shape.task, KEEL_SETTINGS)
    keel.deploy("bench", keel.train("bench").version)
    values, decisions, signals, alerts, seconds = [], [], [], 0, []
    for index, frame in shape.stream(seed):
        path = folder / f"batch-{index:03d}.csv"
        frame.to_csv(path, index=False)
        started = time.perf_counter()
        keel.ingest("bench", path, by="scheduler")
        result = keel.policy.monitor("bench", by="scheduler")
        seconds.append(time.perf_counter() - started)
        values.append(result.batches[0].value)
        decisions.append(result.decision)
        opened = [a for a in result.alerts_opened if a.rule in CHANGE_RULES]
        alerts += len(opened)
        if opened or result.change_detected:
            signals.append(index)
    keel.close()
    return {"values": values, "decisions": decisions, "signals": signals, "alerts": alerts,
            "retrains": sum(d.startswith("retrained") for d in decisions),
            "restores": sum(d == "restored" for d in decisions),
            "seconds_per_cycle": float(np.mean(seconds))}


# --------------------------------------------------------------------------- baselines
def run_baselines(shape: Shape, seed: int, schema: Schema, metric: str) -> dict[str, dict]:
    task = shape.task

    def clean(frame):
        return datasets.clean(datasets.RawTable(frame, "bench"), schema, purpose="ingest").frame

    def fit(frame):
        pipeline = training.make_pipeline(schema, task, "hgb", {}, seed=42)
        return pipeline.fit(datasets.to_model_frame(frame, schema), datasets.target_array(frame, schema))

    def score(model, frame):
        predictions = np.asarray(model.predict(datasets.to_model_frame(frame, schema)))
        return policy.metric_value(task, metric, datasets.target_array(frame, schema), predictions, model)

    window = clean(shape.initial(INITIAL_ROWS, seed))
    never = every = every5 = fit(window)
    runs = {name: {"values": [], "retrains": 0} for name in ("never retrain", "every batch", "every 5 batches")}
    for index, raw in shape.stream(seed):
        frame = clean(raw)
        for name, model in (("never retrain", never), ("every batch", every), ("every 5 batches", every5)):
            runs[name]["values"].append(score(model, frame))
        window = pd.concat([window, frame], ignore_index=True).iloc[-WINDOW_ROWS:]
        if index == shape.batches - 1:
            break  # a retrain after the last batch would score nothing
        every = fit(window)
        runs["every batch"]["retrains"] += 1
        if (index + 1) % 5 == 0:
            every5 = every
            runs["every 5 batches"]["retrains"] += 1
    return runs


# --------------------------------------------------------------------------- one stream
def scored_from(shape: Shape) -> int:
    return 0 if shape.drift_at is None else shape.drift_at + 3


def run_stream(shape: Shape, seeds: list[int], scratch: Path) -> dict:
    per_seed = []
    for seed in seeds:
        keel = run_keel(shape, seed, scratch / f"{shape.name}-{seed}")
        probe = Keel.open(scratch / f"{shape.name}-{seed}" / "workspace")
        project = probe.project("bench")
        probe.close()
        runs = {"keel": keel, **run_baselines(shape, seed, project.schema, project.metric)}
        start = scored_from(shape)
        per_seed.append({"seed": seed, "metric": project.metric, "strategies": {
            name: {**run, "values": [round(float(v), 4) for v in run["values"]],
                   "mean_from_drift_plus_3": float(np.mean(np.asarray(run["values"], dtype=float)[start:]))}
            for name, run in runs.items()}})
        print(f"  {shape.name} seed {seed}: " + ", ".join(
            f"{name} {run['mean_from_drift_plus_3']:.4f}" for name, run in per_seed[-1]["strategies"].items())
            + f"; keel {keel['retrains']} retrains, {keel['restores']} restores, signals {keel['signals']}")
    return {"shape": {"name": shape.name, "task": shape.task, "batches": shape.batches,
                      "batch_rows": shape.batch_rows, "drift_at": shape.drift_at},
            "seeds": per_seed, "summary": summarise(shape, per_seed)}


def summarise(shape: Shape, per_seed: list[dict]) -> dict:
    strategies = per_seed[0]["strategies"].keys()
    summary = {}
    for name in strategies:
        runs = [seed["strategies"][name] for seed in per_seed]
        summary[name] = {"mean_from_drift_plus_3": float(np.mean([r["mean_from_drift_plus_3"] for r in runs])),
                         "retrains": float(np.mean([r["retrains"] for r in runs]))}
    keel_runs = [seed["strategies"]["keel"] for seed in per_seed]
    delays = []
    for run in keel_runs:
        after = [i for i in run["signals"] if shape.drift_at is not None and i >= shape.drift_at]
        delays.append(after[0] - shape.drift_at if after else None)
    best = max(summary[name]["mean_from_drift_plus_3"] for name in strategies if name != "keel")
    keel = summary["keel"]
    keel.update({"restores": float(np.mean([r["restores"] for r in keel_runs])),
                 "alerts": float(np.mean([r["alerts"] for r in keel_runs])),
                 "alert_delays": delays, "retrain_share": keel["retrains"] / shape.batches,
                 "best_baseline": best})
    met = keel["mean_from_drift_plus_3"] >= best - 0.01 and keel["retrain_share"] <= 0.25
    if shape.drift_at is None:
        met = met and max(r["retrains"] for r in keel_runs) == 0 and max(r["alerts"] for r in keel_runs) == 0
    keel["target_met"] = bool(met)
    return summary


# --------------------------------------------------------------------------- drift timing
def naive_drift(reference: pd.DataFrame, current: pd.DataFrame, categorical: list[str]) -> dict:
    """The same statistics with plain numpy/scipy calls and nothing prepared."""
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    out = {}
    for name in reference.columns:
        ref, cur = reference[name], current[name]
        if name in categorical:
            counts = pd.concat([ref.value_counts(), cur.value_counts()], axis=1).fillna(0).to_numpy().T
            p, q = counts[0] / counts[0].sum(), counts[1] / counts[1].sum()
            out[name] = {"psi": drift.psi(p, q), "js": float(jensenshannon(p, q, base=2)),
                         "chi2_p": float(stats.chi2_contingency(counts[:, counts.sum(axis=0) > 0])[1])}
        else:
            ref_values, cur_values = ref.to_numpy(float), cur.to_numpy(float)
            edges = np.unique(np.quantile(ref_values, np.linspace(0, 1, 11)))
            edges[0], edges[-1] = -np.inf, np.inf
            p = np.histogram(ref_values, edges)[0] / len(ref_values)
            q = np.histogram(cur_values, edges)[0] / len(cur_values)
            ks = stats.ks_2samp(ref_values, cur_values)
            out[name] = {"psi": drift.psi(p, q),
                         "wasserstein_norm": stats.wasserstein_distance(ref_values, cur_values) / ref_values.std(),
                         "ks": float(ks.statistic), "ks_p": float(ks.pvalue)}
    return out


def drift_frame(rows: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns = {}
    for k in range(20):
        if k % 3 == 0:
            columns[f"num{k}"] = rng.lognormal(3 + shift * (k % 2), 0.5, rows).round(2)
        elif k % 3 == 1:
            columns[f"num{k}"] = rng.normal(shift * 0.2 * k, 1 + shift * 0.1, rows)
        else:
            columns[f"num{k}"] = rng.poisson(20 + shift * k, rows).astype(float)
    for k in range(5):
        categories = np.array([f"c{j}" for j in range(4 + 2 * k)])
        weights = np.linspace(1, 1 + shift * k, len(categories))
        columns[f"cat{k}"] = rng.choice(categories, size=rows, p=weights / weights.sum()).astype(object)
    return pd.DataFrame(columns)


def time_drift(rows: int = 100_000, reference_rows: int = 20_000, repeats: int = 7) -> dict:
    reference = drift_frame(reference_rows, 1, 0.0)
    current = drift_frame(rows, 2, 0.3)
    kinds = {name: ("categorical" if name.startswith("cat") else "numeric") for name in reference.columns}
    categorical = [n for n, k in kinds.items() if k == "categorical"]
    started = time.perf_counter()
    prepared = drift.prepare_features(reference, kinds)
    prepare_seconds = time.perf_counter() - started
    keel_times, keel_cpu, naive_times = [], [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        keel_result = drift.compare_features(prepared, current)
        keel_times.append(time.perf_counter() - started)
        keel_cpu.append(time.process_time() - cpu_started)
        started = time.perf_counter()
        naive_result = naive_drift(reference, current, categorical)
        naive_times.append(time.perf_counter() - started)
    agreement = max(abs(keel_result[n].wasserstein_norm - naive_result[n]["wasserstein_norm"])
                    for n in reference.columns if n not in categorical)
    ks_agreement = max(abs(keel_result[n].ks - naive_result[n]["ks"]) for n in reference.columns if n not in categorical)
    js_agreement = max(abs(keel_result[n].jensen_shannon - naive_result[n]["js"]) for n in categorical)
    return {"rows": rows, "columns": reference.shape[1], "reference_rows": reference_rows,
            "prepare_seconds": prepare_seconds, "keel_seconds": float(np.min(keel_times)),
            "keel_median_seconds": float(np.median(keel_times)), "keel_cpu_seconds": float(np.min(keel_cpu)),
            "naive_seconds": float(np.min(naive_times)), "naive_median_seconds": float(np.median(naive_times)),
            "threads": min(4, os.cpu_count() or 1), "load_average": os.getloadavg()[0],
            "max_abs_difference": {"wasserstein_norm": agreement, "ks": ks_agreement, "jensen_shannon": js_agreement},
            "drifted_features": len(drift.drifted_names(keel_result))}


# --------------------------------------------------------------------------- report
def table(results: dict) -> str:
    lines = ["| stream | metric | never | every batch | every 5 | Keel | Keel retrains | restores "
             "| first alert / change after drift | target |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for name, stream in results.items():
        s, shape = stream["summary"], stream["shape"]
        keel = s["keel"]
        delays = ", ".join("–" if d is None else str(d) for d in keel["alert_delays"]) \
            if shape["drift_at"] is not None else f"{keel['alerts']:g} alerts"
        lines.append(
            f"| {name} ({shape['batches']} × {shape['batch_rows']}"
            + (f", drift at {shape['drift_at']}" if shape["drift_at"] is not None else "") + ")"
            f" | {stream['seeds'][0]['metric']} | {s['never retrain']['mean_from_drift_plus_3']:.3f} "
            f"| {s['every batch']['mean_from_drift_plus_3']:.3f} ({s['every batch']['retrains']:g}) "
            f"| {s['every 5 batches']['mean_from_drift_plus_3']:.3f} ({s['every 5 batches']['retrains']:g}) "
            f"| **{keel['mean_from_drift_plus_3']:.3f}** | {keel['retrains']:.1f} ({keel['retrain_share']:.0%}) "
            f"| {keel['restores']:.1f} | {delays} | {'met' if keel['target_met'] else 'MISSED'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per stream (default 3)")
    parser.add_argument("--quick", action="store_true", help="short streams, one seed, no drift timing")
    parser.add_argument("--only", nargs="*", help="run only these streams (no JSON)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows while it runs, also into a file
    seeds = [SEED_BASE + k for k in range(1 if args.quick else args.seeds)]
    all_shapes = shapes(12, 16) if args.quick else shapes()
    selected = {n: s for n, s in all_shapes.items() if not args.only or n in args.only}
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, shape in selected.items():
            results[name] = run_stream(shape, seeds, Path(scratch))
    print(f"\nseeds {seeds}; {time.perf_counter() - started:.0f} s\n")
    print(table(results))
    if args.only or args.quick:
        return 0
    timing = time_drift()
    print(f"\nDrift computation: {timing['rows']:,} rows x {timing['columns']} columns: Keel "
          f"{timing['keel_seconds']:.3f} s (best of 7), plain numpy/scipy {timing['naive_seconds']:.3f} s")
    out = ROOT / "bench" / "results" / "drift_loop.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": KEEL_SETTINGS, "initial_rows": INITIAL_ROWS, "window_rows": WINDOW_ROWS,
                               "seeds": seeds, "streams": results, "table": table(results),
                               "targets_met": {n: r["summary"]["keel"]["target_met"] for n, r in results.items()},
                               "drift_timing": timing}, indent=2, default=str))
    print(f"\nwritten {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
