"""The report's charts as inline SVG, drawn with matplotlib's object API (no pyplot, so no
global backend and no Qt: safe in the GUI process and off its main thread).

Text stays text (svg.fonttype "none"): smaller files that print sharply.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from app.core.domain.handoff import FeatureValues, MonitoringReport, Report, ReportBatch, ReportCharts

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

    from app.core.domain.entities import Deployment

MAX_IMPORTANCES = 15
MAX_CATEGORIES = 12
HISTOGRAM_BINS = 24
REFERENCE_COLOUR = "#8a9bb0"
CURRENT_COLOUR = "#d9822b"
LINE_COLOUR = "#1f5f99"
ALERT_COLOUR = "#c23030"
STYLE: dict[RcKeyType, Any] = {  # mypy checks each key is a real rcParam
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e7eb",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#9aa5b1",
    "axes.titlesize": 10,
}


def charts_for(report: Report) -> ReportCharts:
    card, monitoring = report.card, report.monitoring
    return ReportCharts(
        importances=importance_chart(card.importances, card.importance_kind) if card.importances else None,
        metric=metric_chart(monitoring) if monitoring and monitoring.batches else None,
        distributions={item.name: distribution_chart(item) for item in (monitoring.distributions if monitoring else ())})


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _svg(figure: Figure, key: str) -> str:
    """The figure as an <svg> element for inline use: no XML prolog or DOCTYPE, no metadata."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({**STYLE, "svg.hashsalt": key}):  # distinct, stable ids per chart
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)


def _styled(draw: Callable[..., str]) -> Callable[..., str]:
    """Apply the report's style while the figure is built (fonts and grid are read at creation)."""
    import matplotlib

    def wrapper(*args: Any, **kwargs: Any) -> str:
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


@_styled
def importance_chart(importances: Sequence[tuple[str, float]], kind: str | None) -> str:
    shown = importances[:MAX_IMPORTANCES][::-1]
    figure = _figure(6.4, 0.3 * len(shown) + 0.8)
    axes = figure.add_subplot()
    axes.barh([name for name, _ in shown], [value for _, value in shown], color=LINE_COLOUR, height=0.6)
    axes.set_xlabel("permutation importance (drop in score when shuffled)" if kind == "permutation"
                    else "impurity importance (share of the trees' splits)")
    axes.grid(axis="y", visible=False)
    return _svg(figure, "importances")


@_styled
def metric_chart(monitoring: MonitoringReport) -> str:
    """The metric of each batch in monitoring order (one step per batch, so batches monitored
    seconds apart stay readable), the threshold, and the deployments between batches."""
    batches = monitoring.batches
    metric = monitoring.metric
    figure = _figure(7.6, 3.0)
    axes = figure.add_subplot()
    positions = np.arange(len(batches))
    measured = [(x, b.value) for x, b in zip(positions, batches) if b.value is not None]
    estimated = [(x, b.estimated_value) for x, b in zip(positions, batches) if b.estimated_value is not None]
    if measured:
        axes.plot(*zip(*measured), marker="o", markersize=4, color=LINE_COLOUR, label=f"{metric} (measured)")
    if estimated:
        axes.plot(*zip(*estimated), marker="o", markersize=4, markerfacecolor="white", linestyle="--",
                  linewidth=0.8, color=LINE_COLOUR, alpha=0.7, label=f"{metric} (estimated, label-free)")
    if monitoring.threshold is not None:
        axes.axhline(monitoring.threshold, color=ALERT_COLOUR, linestyle=":", linewidth=1.2,
                     label=f"threshold {monitoring.threshold:g}")
    marks = _deployment_marks(batches, monitoring.deployments)
    for position, labels in marks.items():
        axes.axvline(position, color="#52606d", linewidth=0.8, linestyle="-.")
        axes.annotate(", ".join(labels), (position, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                      va="top", ha="right", fontsize=7.5, color="#52606d")
    step = max(1, len(batches) // 16)
    axes.set_xticks(positions[::step], [f"v{b.dataset_version}" for b in batches][::step])
    axes.set_xlim(min([-0.5, *marks]) - 0.5, max([len(batches) - 1, *marks]) + 0.5)
    axes.set_xlabel("dataset version, in monitoring order")
    axes.set_ylabel(metric)
    axes.legend(loc="lower left", fontsize=8, frameon=False)
    return _svg(figure, "metric")


def _deployment_marks(batches: Sequence[ReportBatch], deployments: Sequence[Deployment]) -> dict[float, list[str]]:
    """x position -> labels: a deployment sits just before the first batch monitored after it."""
    marks: dict[float, list[str]] = {}
    for deployment in deployments:
        before = sum(1 for b in batches if b.at < deployment.deployed_at)
        label = ("rollback to " if deployment.is_rollback else "deploy ") + f"v{deployment.version}"
        marks.setdefault(before - 0.5, []).append(label)
    return marks


@_styled
def distribution_chart(item: FeatureValues) -> str:
    figure = _figure(3.6, 2.2)
    axes = figure.add_subplot()
    reference_label = f"reference (v{item.model_version} training rows)"
    current_label = f"dataset v{item.dataset_version}"
    if item.kind == "numeric":
        _numeric_histograms(axes, item.reference, item.current, reference_label, current_label)
    else:
        _category_bars(axes, item.reference, item.current, reference_label, current_label)
    axes.legend(fontsize=7, frameon=False, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2)
    return _svg(figure, f"distribution-{item.name}")


def _numeric_histograms(axes: Axes, reference: Any, current: Any, reference_label: str, current_label: str) -> None:
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    reference, current = reference[np.isfinite(reference)], current[np.isfinite(current)]
    edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins=HISTOGRAM_BINS)
    axes.hist(reference, bins=edges.tolist(), weights=_shares(reference), color=REFERENCE_COLOUR, alpha=0.6,
              label=reference_label)
    axes.hist(current, bins=edges.tolist(), weights=_shares(current), histtype="step", linewidth=1.4, color=CURRENT_COLOUR,
              label=current_label)
    axes.set_ylabel("share of rows")
    axes.grid(axis="x", visible=False)


def _shares(values: np.ndarray) -> np.ndarray:
    """Weights that make a histogram's bars the share of rows in each bin (comparable across sizes)."""
    return np.full(len(values), 1 / len(values)) if len(values) else values


def _category_bars(axes: Axes, reference: Any, current: Any, reference_label: str, current_label: str) -> None:
    import pandas as pd

    reference_shares = pd.Series(reference, dtype=object).fillna("(missing)").astype(str).value_counts(normalize=True)
    current_shares = pd.Series(current, dtype=object).fillna("(missing)").astype(str).value_counts(normalize=True)
    categories = list(reference_shares.add(current_shares, fill_value=0).sort_values(ascending=False).index)
    categories = categories[:MAX_CATEGORIES]
    positions = np.arange(len(categories))
    axes.bar(positions - 0.2, [reference_shares.get(c, 0.0) for c in categories], width=0.4,
             color=REFERENCE_COLOUR, label=reference_label)
    axes.bar(positions + 0.2, [current_shares.get(c, 0.0) for c in categories], width=0.4,
             color=CURRENT_COLOUR, label=current_label)
    axes.set_xticks(positions, categories, rotation=30 if len(categories) > 4 else 0, ha="right")
    axes.set_ylabel("share of rows")
    axes.grid(axis="x", visible=False)
