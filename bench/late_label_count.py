"""The late-label rule's worst case: every batch awaiting labels is past the delay and under the coverage.

    nice .venv/bin/python bench/late_label_count.py --sizes 1000 4000 16000

A registry holds N monitored batches of a project with an ID column, all unlabelled and older
than the delay, so the rule counts every one of them. Times (in this process, median of 11)
the registry's indexed count that the rule runs each cycle, next to what the rule did before:
read every monitoring result and decode its details to find the batches with IDs.
Prints a table; writes bench/results/late_label_count.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, print_table, write_report

sys.path.insert(0, str(ROOT))


def median_seconds(work, repeats: int = 11) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    from app.core.domain.entities import Column, Schema
    from app.core.domain.measurements import BatchDetails, NumericDrift
    from app.core.store.registry import Registry

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="keel-bench-late-labels-") as tmp:
        registry = Registry(Path(tmp) / "registry.db")
        project = registry.insert_project("p", "classification", "y", "accuracy",
                                          Schema("y", "classification", "integer", (Column("x", "numeric"),)), {})
        model = registry.insert_model_version(project_id=project, version=1, artifact_path="m", sha256="0")
        stats = NumericDrift(psi=0.1, missing_share=0.0, chi2=1.0, chi2_pvalue=0.5, wasserstein=0.1,
                             wasserstein_norm=0.01, ks=0.05, ks_pvalue=0.5, drifted=False)
        details = BatchDetails(features={f"f{i}": stats for i in range(10)}, has_ids=True)
        held = 0
        for size in sorted(args.sizes):
            with registry.transaction():
                for version in range(held + 1, size + 1):
                    dataset = registry.insert_dataset_version(project_id=project, version=version, path="d",
                                                              content_sha256=str(version), rows=300, labelled_rows=0,
                                                              source="s", report={})
                    registry.insert_monitor_result(project_id=project, model_version_id=model,
                                                   dataset_version_id=dataset, at="2026-01-01", rows=300,
                                                   labelled_rows=0, metric="accuracy", details=details)
            held = size
            now = median_seconds(lambda: registry.late_label_totals(project, "2026-02-01", 0.5))
            before = median_seconds(lambda: [r for r in registry.monitor_results(project)
                                             if r.labelled_rows == 0 and r.details.has_ids], 5)
            rows.append({"batches": size, "indexed_count_s": now, "decode_every_result_s": before})
        registry.close()
    print_table(["batches late", "indexed count ms", "decode every result ms", "ratio"],
                [[r["batches"], r["indexed_count_s"] * 1000, r["decode_every_result_s"] * 1000,
                  r["decode_every_result_s"] / r["indexed_count_s"]] for r in rows])
    path = write_report("late_label_count", {"sizes": rows}, Path(args.output) if args.output else None)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
