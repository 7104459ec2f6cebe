"""Evaluate Keel's monitoring loop (a benchmark, not a test).

Replays streams of labelled batches through the real lifecycle, headless (inbox ->
`Keel.monitor` -> policy -> retrain -> gate -> deploy), and compares in the same run
with two baselines on Keel's default preset: "never retrain" and "retrain on every
batch" (a sliding window as large as the initial training set). Every batch is
scored by the model in production when it arrived (prequential evaluation).

Keel runs with its default settings except policy=auto (the default, alert, never
retrains) and window=adaptive (see the note printed with the results).

Also times one drift computation on 100,000 rows x 25 columns against a plain
numpy/scipy implementation of the same statistics.

    .venv/bin/python bench/drift_loop.py [--quick]

Prints tables and writes bench/results/drift_loop.json.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.ml import datasets, drift, training  # noqa: E402
from app.core.services.inbox import record_sightings  # noqa: E402
from app.core.services.lifecycle import Keel  # noqa: E402
from app.demo.simulator import StreamSpec, initial_training_data, stream  # noqa: E402

INITIAL_ROWS = 1500
KEEL_SETTINGS = {"policy": "auto"}  # every other setting at its default (window: adaptive)


def streams(quick: bool) -> dict[str, StreamSpec]:
    length = 16 if quick else 30
    return {
        "abrupt": StreamSpec(kind="abrupt", batches=length, batch_rows=300, drift_at=length // 3, seed=31),
        "gradual": StreamSpec(kind="gradual", batches=length, batch_rows=300, drift_at=length // 3,
                              gradual_over=6, seed=32),
        "stationary": StreamSpec(kind="stationary", batches=20 if quick else 50, batch_rows=300, seed=33),
        "covariate": StreamSpec(kind="covariate", batches=length, batch_rows=300, drift_at=length // 3, seed=34),
    }


# --------------------------------------------------------------------------- Keel, the real loop
def run_keel(spec: StreamSpec, settings: dict, folder: Path) -> dict:
    keel = Keel.open(folder)
    initial = folder / "initial.csv"
    initial_training_data(INITIAL_ROWS).to_csv(initial, index=False)
    keel.create_project("bench", initial, "default", "classification", settings)
    keel.deploy("bench", keel.train("bench")["version"])
    values, decisions, alert_batches, seconds = [], [], [], []
    inbox = keel.workspace.inbox_dir("bench")
    for index, frame in stream(spec):
        path = inbox / f"batch-{index:03d}.csv"
        frame.to_csv(path, index=False)
        record_sightings(keel, "bench", now=time.time() - 120)  # seen complete by an earlier sweep
        started = time.perf_counter()
        result = keel.monitor("bench", by="scheduler")
        seconds.append(time.perf_counter() - started)
        values.append(result["batches"][0]["value"])
        decisions.append(result["decision"])
        if any(a["rule"] in ("metric_threshold", "metric_drop", "drift_share") for a in result["alerts_opened"]):
            alert_batches.append(index)
    keel.close()
    return {"values": values, "decisions": decisions, "alert_batches": alert_batches,
            "retrains": sum(d.startswith("retrained") for d in decisions),
            "deployments": sum(d == "retrained_deployed" for d in decisions),
            "seconds_per_cycle": float(np.mean(seconds))}


# --------------------------------------------------------------------------- baselines
def run_baselines(spec: StreamSpec, schema: dict) -> tuple[dict, dict]:
    def clean(frame):
        return datasets.clean(datasets.RawTable(frame, "bench"), schema, purpose="ingest").frame

    def fit(frame):
        pipeline = training.make_pipeline(schema, "classification", "hgb", {}, seed=42)
        return pipeline.fit(datasets.to_model_frame(frame, schema), datasets.target_array(frame, schema))

    def accuracy(model, frame):
        return float(np.mean(model.predict(datasets.to_model_frame(frame, schema)) == datasets.target_array(frame, schema)))

    window = clean(initial_training_data(INITIAL_ROWS))
    never = fit(window)
    latest = never
    never_values, every_values, retrains = [], [], 0
    for index, raw in stream(spec):
        frame = clean(raw)
        never_values.append(accuracy(never, frame))
        every_values.append(accuracy(latest, frame))
        window = pd.concat([window, frame], ignore_index=True).iloc[-INITIAL_ROWS:]
        if index < spec.batches - 1:  # a retrain after the last batch would score nothing
            latest = fit(window)
            retrains += 1
    return ({"values": never_values, "retrains": 0, "alert_batches": []},
            {"values": every_values, "retrains": retrains, "alert_batches": []})


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
    agreement = max(abs(keel_result[n]["wasserstein_norm"] - naive_result[n]["wasserstein_norm"])
                    for n in reference.columns if n not in categorical)
    ks_agreement = max(abs(keel_result[n]["ks"] - naive_result[n]["ks"]) for n in reference.columns if n not in categorical)
    js_agreement = max(abs(keel_result[n]["jensen_shannon"] - naive_result[n]["js"]) for n in categorical)
    return {"rows": rows, "columns": reference.shape[1], "reference_rows": reference_rows,
            "prepare_seconds": prepare_seconds, "keel_seconds": float(np.min(keel_times)),
            "keel_median_seconds": float(np.median(keel_times)), "keel_cpu_seconds": float(np.min(keel_cpu)),
            "naive_seconds": float(np.min(naive_times)), "naive_median_seconds": float(np.median(naive_times)),
            "threads": min(4, os.cpu_count() or 1), "load_average": os.getloadavg()[0],
            "max_abs_difference": {"wasserstein_norm": agreement, "ks": ks_agreement, "jensen_shannon": js_agreement},
            "drifted_features": len(drift.drifted_names(keel_result))}


# --------------------------------------------------------------------------- report
def summarise(name: str, spec: StreamSpec, runs: dict) -> dict:
    drift_at = spec.drift_at if spec.kind != "stationary" else None
    summary = {}
    for strategy, run in runs.items():
        values = np.array(run["values"], dtype=float)
        after = values[drift_at + 3:] if drift_at is not None else values
        first_alert = next((i for i in run["alert_batches"] if drift_at is None or i >= drift_at), None)
        summary[strategy] = {
            "retrains": run["retrains"],
            "alerts": len(run["alert_batches"]),
            "batches_to_first_alert": (first_alert - drift_at) if (first_alert is not None and drift_at is not None) else None,
            "mean": float(np.mean(values)),
            "mean_from_drift_plus_3": float(np.mean(after)),
            "values": [round(float(v), 4) for v in values],
            **({"seconds_per_cycle": run["seconds_per_cycle"], "decisions": run["decisions"]}
               if "decisions" in run else {}),
        }
    return summary


def print_stream(name: str, spec: StreamSpec, summary: dict) -> None:
    where = f"drift at batch {spec.drift_at}" if spec.kind != "stationary" else "no drift"
    print(f"\n{name}: {spec.batches} batches of {spec.batch_rows} rows, {where}")
    print(f"  {'strategy':<20} {'retrains':>8} {'alerts':>6} {'to alert':>8} {'mean acc':>9} {'mean d+3..':>11}")
    for strategy, s in summary.items():
        to_alert = "-" if s["batches_to_first_alert"] is None else str(s["batches_to_first_alert"])
        print(f"  {strategy:<20} {s['retrains']:>8} {s['alerts']:>6} {to_alert:>8} {s['mean']:>9.4f} "
              f"{s['mean_from_drift_plus_3']:>11.4f}")
    for strategy, s in summary.items():
        print(f"  {strategy:<20} " + " ".join(f"{v:.2f}" for v in s["values"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter streams")
    parser.add_argument("--only", nargs="*", help="run only these streams (no targets, no JSON)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows while it runs, also into a file
    results = {"settings": KEEL_SETTINGS, "streams": {}}
    specs = {name: spec for name, spec in streams(args.quick).items() if not args.only or name in args.only}
    schema = None
    with tempfile.TemporaryDirectory() as scratch:
        for name, spec in specs.items():
            runs = {"keel": run_keel(spec, KEEL_SETTINGS, Path(scratch) / name)}
            if name == "abrupt":  # why the adaptive window: the same loop with the default window (all rows)
                runs["keel (window all)"] = run_keel(spec, {"policy": "auto", "window": None}, Path(scratch) / f"{name}-all")
            if name == "gradual":  # a drift that keeps moving after the first retrain: the new-rows trigger
                runs["keel (+rows 1500)"] = run_keel(spec, {**KEEL_SETTINGS, "retrain_after_rows": INITIAL_ROWS},
                                                     Path(scratch) / f"{name}-rows")
            if schema is None:
                probe = Keel.open(Path(scratch) / name)
                schema = probe.project("bench")["schema"]
                probe.close()
            runs["never retrain"], runs["retrain every batch"] = run_baselines(spec, schema)
            summary = summarise(name, spec, runs)
            results["streams"][name] = {"spec": spec.__dict__, "strategies": summary}
            print_stream(name, spec, summary)

    if args.only:
        return 0
    abrupt = results["streams"]["abrupt"]["strategies"]
    stationary = results["streams"]["stationary"]["strategies"]
    ratio = abrupt["keel"]["mean_from_drift_plus_3"] / abrupt["retrain every batch"]["mean_from_drift_plus_3"]
    retrain_share = abrupt["keel"]["retrains"] / abrupt["retrain every batch"]["retrains"]
    targets = {
        "abrupt: mean d+3.. >= 95% of retrain-every-batch": {"value": ratio, "met": ratio >= 0.95},
        "abrupt: retrains <= 25% of retrain-every-batch": {"value": retrain_share, "met": retrain_share <= 0.25},
        "abrupt: alert within 2 batches of the drift": {
            "value": abrupt["keel"]["batches_to_first_alert"],
            "met": abrupt["keel"]["batches_to_first_alert"] is not None and abrupt["keel"]["batches_to_first_alert"] <= 2},
        "stationary: no retrain": {"value": stationary["keel"]["retrains"], "met": stationary["keel"]["retrains"] == 0},
    }
    timing = time_drift()
    targets["drift on 100k x 25 <= 0.3 s (best of 7)"] = {"value": timing["keel_seconds"], "met": timing["keel_seconds"] <= 0.3}
    results["targets"], results["drift_timing"] = targets, timing

    print(f"\nDrift computation: {timing['rows']:,} rows x {timing['columns']} columns "
          f"(reference {timing['reference_rows']:,} training rows, prepared once in {timing['prepare_seconds']:.3f} s)")
    print(f"  {'implementation':<34} {'best of 7':>9} {'median':>8}   (load average {timing['load_average']:.1f})")
    print(f"  {'Keel (prepared reference)':<34} {timing['keel_seconds']:>9.3f} {timing['keel_median_seconds']:>8.3f}"
          f"   CPU {timing['keel_cpu_seconds']:.3f} s, up to {timing['threads']} threads")
    print(f"  {'plain numpy/scipy (nothing kept)':<34} {timing['naive_seconds']:>9.3f} "
          f"{timing['naive_median_seconds']:>8.3f}")
    print(f"  largest difference between the two: {timing['max_abs_difference']}")
    print("\nTargets")
    for label, target in targets.items():
        value = target["value"]
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"  {'met ' if target['met'] else 'MISS'}  {label}: {shown}")
    out = ROOT / "bench" / "results" / "drift_loop.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwritten {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
