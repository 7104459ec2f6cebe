"""What to do after a monitoring cycle: nothing, alert, restore an earlier version, or
retrain and wait for approval or deploy (the project's `policy` setting: off, alert,
approve, auto).

Each cycle, for every policy but off:
  * change points: an alert of a measured or drift rule, or the change detector (a CUSUM
    on the champion's per-batch loss, app/core/ml/change.py) dates a change; the latest
    one is where "rows since the change" start;
  * earlier versions are challengers too: up to 5 earlier production versions (distinct,
    most recently deployed first) are scored with the champion on the cycle's labelled
    rows (which none of them saw); one that passes the gate (below; alpha shared among
    them) is restored under auto (decision `restored`, a policy rollback), becomes the
    waiting candidate under approve (`restore_waiting`), or is named in an alert
    (`earlier_version_better`) under alert. A restore fits nothing and is not a retrain.

Triggers of a retrain (policies approve and auto):
  * a measured-metric rule fires in the cycle (metric_threshold, metric_drop); the drift
    rule (drift_share) when its alert opens, while it fires once a rejected challenger's
    back-off has run out, or on every firing batch when nothing was measured (the
    label-free estimate never triggers one: under concept drift it stays confidently wrong);
  * a champion fitted soon after a change (it saw fewer than RECENT_WINDOW_ROWS rows since
    the change) has as many newer rows since the change as it saw;
  * a champion trained before the latest change (restored, or its challengers rejected), on a
    cycle that measured labelled rows;
  * the change detector fires (a steady slide, before any threshold is crossed);
  * during a drift (from a detected change or a metric_drop alert until DRIFT_END_REJECTIONS
    challengers in a row fail), every cycle with labelled rows while the budget has a whole
    challenger (a follow-up waits for DRIFT_FOLLOW_UP_BATCHES batches its champion never saw);
  * outside a drift, the last challenger was promoted (a drift may still be going on) and the
    budget has a whole challenger: one every 4 batches until a challenger is rejected;
  * optionally, `retrain_after_rows`: that many labelled rows arrived since the
    last training.
A triggered retrain is held (decision `held`, with its numbers; a streak of holds is one
`retrain_held` event and one `retrain_hold_ended`) when the champion was fitted after the
latest change and the gate would hold fewer than FOLLOW_UP_GATE_ROWS of the rows it never
saw, by the back-off (after a challenger was rejected against the same champion, the next
one waits until the rows the champion never saw have doubled, until the champion scores
worse than it did at that gate by more than `max_drop`: the drift went on, or until a new
change is detected) or by the budget (a token bucket: a quarter of a challenger per
batch, at most 4 in a row; and at most a quarter of the batches seen, or 3).

The training window: `all`, the newest N rows, or `adaptive` (the default): candidate
windows (all rows; rows since the latest change; the newest RECENT_WINDOW_ROWS and half as
many rows) are fitted on the rows before a selection slice and scored on it (the newest
rows before the gate: prequential); the newest RECENT_WINDOW_ROWS are kept unless another is
better in a paired test at WINDOW_SWITCH_P, and the window chosen is tested by the gate. `train`
makes the same choice (training_window).

The gate: the champion and the chosen window fitted without the gate's rows are scored on
the same recent labelled rows that neither was trained on (the newest third of the rows
the champion has never seen); the challenger registered is the window with those rows, refitted on
all of them after its own hold-out evaluation (the gate is its test).
It is promoted only if the tested fit is better by at least `margin` (in the metric's
direction) and a one-sided paired test at level `alpha` agrees: McNemar for accuracy,
a paired bootstrap for other metrics; during a drift, unless the paired test shows it worse at
`alpha` (two challengers in a row not better in the point estimate end the drift). A challenger
that fails is kept, not deployed.

PolicyService holds the rules that read or write the store (the policy state, the audit log); it is
handed the inbox and monitoring services, whose methods a cycle calls, and the lifecycle actions it
takes (train, deploy, rollback). The module's functions are the computations that need no store:
the gate and its paired tests, the candidate windows, the budget.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from app.core.domain.decisions import (
    BackoffHold,
    BudgetHold,
    ChallengerFit,
    ChangeFinding,
    ChosenWindow,
    CycleDetails,
    DecisionDetails,
    DetectorState,
    DriftSpell,
    GateVerdict,
    HeldDetails,
    Hold,
    HoldStreak,
    NewRowsHold,
    PairedTest,
    RestoreCandidate,
    RestoreDetails,
    RetrainBudget,
    RetrainDetails,
    SamplingRecord,
    WindowChoice,
    WindowParameters,
)
from app.core.domain.entities import Project, TrainingData
from app.core.domain.errors import BusyError, Cancelled, KeelError, ValidationError
from app.core.domain.results import MonitorOutcome, ProductionChange
from app.core.domain.settings import ProjectSettings, drop_from, higher_is_better
from app.core.ml import datasets, training
from app.core.ml.change import LossCusum
from app.core.ml.childproc import ChildQueue, capped_native_threads, report_failure, run_in_child
from app.core.ml.evaluation import is_better, mcnemar_test, paired_bootstrap_test
from app.core.services.cache import BoundedCache
from app.core.services.cycle import CHANGE_RULES, CycleResult
from app.core.services.dependencies import Deploy, DeployHoldingLock, Progress, Rollback, Train
from app.core.services.project_data import LoadedModel, ProjectData
from app.core.store import policy_state as store
from app.core.store.policy_state import PolicyState
from app.core.store.registry import Registry
from app.core.store.workspace import FileLock, Workspace, project_lock

if TYPE_CHECKING:
    from app.core.services.inbox import InboxService
    from app.core.services.monitoring import MonitoringService

log = logging.getLogger("keel.policy")

MEASURED_RULES = ("metric_threshold", "metric_drop")
MIN_GATE_ROWS = 30
MAX_GATE_ROWS = 5000
GATE_SHARE = 1 / 3
BOOTSTRAP_RESAMPLES = 500
MAX_RESTORE_CANDIDATES = 5
RESTORE_RULE = "earlier_version_better"
RECENT_WINDOW_ROWS = 2000
# a window other than the newest RECENT_WINDOW_ROWS is chosen when it scores better in a one-sided paired test
# at this level: on a stream with no change, the level of 0.16 used before left the newest rows for 6 of 40
# choices on noise, this one for 2 (bench/drift_bound.py --noise). (The same level shared by the candidates,
# Bonferroni, left them for none, but also missed the newest 1,000 rows of a gradual change: loan-gradual
# 0.894 against 0.898, the hyperplane 0.853 either way.)
WINDOW_SWITCH_P = 0.05
# A champion fitted after the latest change is challenged once the gate would hold this many rows:
# the gain over a recent model is small, and on fewer rows the paired test cannot see it
FOLLOW_UP_GATE_ROWS = 250
# The retrain budget, a token bucket: each batch adds BUDGET_PER_BATCH of a challenger, up to
# BUDGET_BURST; fitting one spends 1. A new project starts with 1 (it may answer its first drift
# at once), so over N batches at most 1 + N/4 challengers are fitted, and a drift after a quiet
# spell may be answered by up to BUDGET_BURST challengers in a row. (The share cap below keeps every stream within
# a quarter of its batches; a burst of 4 lets a drift seen late still spend the budget's rate: 7 challengers from
# batch 16 to 28 of 30, where a burst of 3 allowed 6.)
BUDGET_PER_BATCH = 0.25
BUDGET_BURST = 4.0
BUDGET_START = 1.0
# ... and, whatever the bucket holds, the challengers fitted stay within a quarter of the batches seen
# (any project may fit BUDGET_FLOOR, the burst: a drift after a quiet spell is answered at once)
BUDGET_FLOOR = 3
# During a drift (from a detected change until two challengers in a row are not better in the point
# estimate) the gate promotes a challenger unless the paired test shows it worse, and a follow-up
# challenger waits only for this many gate rows: under a drift that goes on, a model a batch or two
# fresher is a point or two better, which no paired test confirms on a few hundred rows (and which the
# point estimate on them misses about one time in four: each such miss was a fit thrown away).
DRIFT_FOLLOW_UP_GATE_ROWS = 150
# ... and for this many labelled batches the champion never saw: a challenger one batch fresher than its
# champion is hardly better on a slow drift, and two such ties in a row would end the drift
DRIFT_FOLLOW_UP_BATCHES = 2
DRIFT_END_REJECTIONS = 2
# a drift is confirmed by the change detector or by the metric_drop alert (the champion's metric fell from its
# training value); not by a threshold the user set, nor by a covariate shift (the concept may be unchanged)
DRIFT_RULES = ("metric_drop",)
GATE_RULES = {"better": "significantly better", "no worse": "not significantly worse"}
DECISIONS = ("none", "alert", "retrained_waiting", "retrained_deployed", "retrained_rejected",
             "restored", "restore_waiting", "held")


@dataclass
class Outcome:
    decision: str
    message: str = ""
    details: DecisionDetails = field(default_factory=CycleDetails)
    challenger_version: int | None = None


@dataclass
class Observation:
    """What the policy learned from one cycle's batches about its champion."""
    change: ChangeFinding | None = None  # the change detector fired: where and with which numbers
    recent: pd.DataFrame | None = None  # the cycle's labelled rows, newest last (none of the models saw them)


def row_losses(project: Project, model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Per-row loss of a model: 0/1 errors for a classifier, absolute errors for a regressor."""
    schema = project.schema
    with capped_native_threads():
        predictions = np.asarray(model.predict(datasets.to_model_frame(frame, schema)))
    y = datasets.target_array(frame, schema)
    if project.task == "classification":
        return (predictions != y).astype(float)
    return np.abs(predictions.astype(float) - y.astype(float))


def latest_value(cycle: CycleResult) -> float | None:
    """The newest measured value of the cycle: its last labelled batch, else its last window labelled late."""
    measured = ([late.value for late in cycle.late_windows if late.value is not None]
                + [batch.value for batch in cycle.batches if batch.value is not None])
    return measured[-1] if measured else None


# --------------------------------------------------------------------------- the budget
def budget_tokens(budget: RetrainBudget) -> float:
    """The challengers in the token bucket (a new project starts with BUDGET_START)."""
    return BUDGET_START if budget.tokens is None else budget.tokens


def budget_share(state: PolicyState) -> float:
    """Challengers allowed so far: a quarter of the batches seen (at least BUDGET_FLOOR)."""
    return max(BUDGET_FLOOR, BUDGET_PER_BATCH * (state.budget.batches or 0))


def budget_allows(state: PolicyState) -> bool:
    """A whole challenger in the token bucket, and one more keeps the challengers within a quarter of the batches."""
    budget = state.budget
    return budget_tokens(budget) >= 1 and (budget.retrains or 0) + 1 <= budget_share(state)


def budget_after_challenger(budget: RetrainBudget, promoted: bool,
                            passed_drift_gate: bool | None = None) -> RetrainBudget:
    """The budget after a challenger's decision: a promoted one asks for another once the budget allows; a
    rejected one stops that. During a drift (passed_drift_gate not None), DRIFT_END_REJECTIONS challengers in
    a row that fail end the drift."""
    budget = replace(budget, momentum=promoted)
    drift = budget.drift
    if drift and passed_drift_gate is not None:
        rejected = 0 if passed_drift_gate else drift.rejected + 1
        budget = replace(budget, drift=None if rejected >= DRIFT_END_REJECTIONS else replace(drift, rejected=rejected))
    return budget


def gate_rule(state: PolicyState) -> str:
    """"no worse" during a drift (from a detected change until DRIFT_END_REJECTIONS challengers in a
    row fail), else "better"."""
    return "no worse" if state.budget.drift else "better"


def cycle_position(cycle: CycleResult) -> int | None:
    """The dataset version a cycle's decision follows: its last batch, else its newest labels version."""
    if cycle.batches:
        return cycle.batches[-1].dataset_version
    return max((late.labels_dataset_version for late in cycle.late_windows), default=None)


# --------------------------------------------------------------------------- the training window
def split_gate(frame: pd.DataFrame, unseen_rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training part, gate part): the gate is the newest share of the rows the champion never saw."""
    unseen_rows = min(unseen_rows, len(frame))
    if unseen_rows < MIN_GATE_ROWS:
        raise ValidationError(f"{unseen_rows} new labelled row(s) since the production model was trained; "
                              f"the champion-challenger gate needs at least {MIN_GATE_ROWS}")
    gate_rows = gate_size(unseen_rows)
    return frame.iloc[:-gate_rows].reset_index(drop=True), frame.iloc[-gate_rows:].reset_index(drop=True)


def gate_size(unseen_rows: int) -> int:
    return int(min(MAX_GATE_ROWS, max(MIN_GATE_ROWS, round(unseen_rows * GATE_SHARE))))


def sampled(sampling: SamplingRecord | None, rows: int) -> SamplingRecord | None:
    """A sample of the labelled rows (ProjectData.labelled_rows), of which a training takes rows."""
    return None if sampling is None else sampling.with_rows(rows)


@dataclass
class Window:
    name: str  # "all", "since change", "recent"
    description: str
    rows: pd.DataFrame


def candidate_windows(rows: pd.DataFrame, change_point: int | None, recent_rows: int) -> list[Window]:
    """All rows, the rows since the latest change, the newest rows: distinct and not too small."""
    windows = [Window("all", f"all {len(rows)} rows", rows)]
    if change_point is not None:
        since = rows[rows["__version__"] >= change_point]
        if MIN_GATE_ROWS <= len(since) < len(rows):
            windows.append(Window("since change", f"{len(since)} rows since the change at dataset v{change_point}",
                                  since))
    for name, size in (("recent", recent_rows), ("latest", recent_rows // 2)):
        if len(rows) > size and all(len(w.rows) != size for w in windows):
            windows.append(Window(name, f"the newest {size} rows", rows.iloc[-size:]))
    return windows


def window_named(rows: pd.DataFrame, name: str, change_point: int | None, recent_rows: int) -> Window:
    """The candidate window `name` cut from `rows` by its definition. (candidate_windows leaves out a window
    as large as an earlier one, so a window chosen on some rows may be missing from the candidates of more
    rows: "the newest 2,000" is not "all rows" because the 2,000 rows since the change happen to be as many.)"""
    if name == "since change" and change_point is not None:
        since = rows[rows["__version__"] >= change_point]
        return Window(name, f"{len(since)} rows since the change at dataset v{change_point}", since)
    size = {"recent": recent_rows, "latest": recent_rows // 2}.get(name)
    if size is not None and len(rows) > size:
        return Window(name, f"the newest {size} rows", rows.iloc[-size:])
    return Window("all", f"all {len(rows)} rows", rows)


def forced_window(rows: pd.DataFrame, setting: int | str | None) -> Window:
    if isinstance(setting, int):
        return Window("recent", f"the newest {min(setting, len(rows))} rows (--window {setting})", rows.iloc[-setting:])
    return Window("all", f"all {len(rows)} rows (--window all)", rows)


def choose_window(project: Project, settings: ProjectSettings, before_gate: pd.DataFrame, change_point: int | None,
                  selection_rows: int, cancel_event: threading.Event | None = None,
                  progress: Progress | None = None) -> tuple[Window, WindowChoice]:
    """Adaptive: fit each candidate on the rows before the newest `selection_rows` and score it on them.
    The newest RECENT_WINDOW_ROWS rows are kept unless another window scores better in a one-sided
    paired test at WINDOW_SWITCH_P (the best of those, ties: the first, the larger window); the window
    is returned cut from all the rows before the gate. On a selection slice of
    a hundred or two rows the scores of similar windows differ by noise: the best point estimate gave four
    of six challengers on a rotating hyperplane 500 to 4,500 rows "since the change" instead of the newest.
    cancel_event: the candidates are fitted in a child process that setting the event stops at once
    (a user's train: the fits may take minutes and must not hold this process's interpreter)."""
    if settings.window != "adaptive":
        return forced_window(before_gate, settings.window), WindowChoice("forced")
    earlier, selection = before_gate.iloc[:-selection_rows], before_gate.iloc[-selection_rows:]
    candidates = candidate_windows(earlier, change_point, RECENT_WINDOW_ROWS)

    def final(name: str) -> Window:
        return window_named(before_gate, name, change_point, RECENT_WINDOW_ROWS)

    if len(selection) < MIN_GATE_ROWS or len(candidates) == 1:
        since = final("since change")
        chosen = since if MIN_GATE_ROWS <= len(since.rows) else final("all")
        return chosen, WindowChoice("adaptive")
    scored = [w for w in candidates if len(w.rows) >= MIN_GATE_ROWS]
    if not scored:
        return final("all"), WindowChoice("adaptive")
    default = next((w.name for w in scored if len(w.rows) == RECENT_WINDOW_ROWS), None)
    if cancel_event is None:
        scores, p_values = score_windows(scored, selection, default, project, settings, progress)
    else:
        scores, p_values = run_in_child(_child_score_windows, (scored, selection, default, project, settings),
                                        cancel_event=cancel_event, progress=progress, name="window choice",
                                        cancelled_message="training cancelled; nothing was saved")
    sign = 1 if higher_is_better(project.metric) else -1
    eligible = [name for name in scores if default is None or name == default
                or p_values.get(name, 1.0) < WINDOW_SWITCH_P]
    best = max(eligible, key=lambda name: sign * scores[name])
    return final(best), WindowChoice("adaptive", scores, len(selection), scored=True, default=default,
                                     p_values=p_values, switch_p=WINDOW_SWITCH_P)


def score_windows(windows: list[Window], selection: pd.DataFrame, default: str | None, project: Project,
                  settings: ProjectSettings, progress: Progress | None = None,
                  ) -> tuple[dict[str, float], dict[str, float]]:
    """Each window's model, fitted on the window's rows, scored on the selection rows; and for each
    window that beats the default one, the paired test's p-value. -> (scores, p_values), by window name"""
    report = progress or (lambda fraction, message: None)
    schema, task, metric = project.schema, project.task, project.metric
    X_selection, y_selection = datasets.to_model_frame(selection, schema), datasets.target_array(selection, schema)
    scores, fitted = {}, {}
    for done, window in enumerate(windows):
        report(done / len(windows), f"choosing the training window: fitting {window.description}")
        model = training.fit_window(window.rows, schema, settings.preset, settings.params, settings.seed)
        fitted[window.name] = (model, _model_outputs(model, X_selection, task, metric))
        scores[window.name] = metric_value(task, metric, y_selection, fitted[window.name][1], model)
    sign = 1 if higher_is_better(metric) else -1
    p_values = {}
    if default is not None:
        for name in scores:
            if name != default and sign * scores[name] > sign * scores[default]:
                (model, outputs), (default_model, default_outputs) = fitted[name], fitted[default]
                p_values[name] = float(paired_test(task, metric, y_selection, [default_outputs, outputs],
                                                   (default_model, model)).p_value)
    return scores, p_values


def _child_score_windows(queue: ChildQueue, windows: list[Window], selection: pd.DataFrame, default: str | None,
                         project: Project, settings: ProjectSettings) -> None:
    """score_windows in a spawned child (run_in_child): only the scores and p-values come back."""
    try:
        queue.put(("done", score_windows(windows, selection, default, project, settings,
                                         progress=lambda f, m: queue.put(("progress", f, m)))))
    except BaseException as exc:  # every failure goes back to the parent as a message
        report_failure(queue, exc)


# --------------------------------------------------------------------------- retrain and gate
def same_window(window: Window, rows: pd.DataFrame, change_point: int | None, settings: ProjectSettings) -> Window:
    """The chosen window, cut again from all the rows (the gate's included)."""
    if settings.window != "adaptive":
        return forced_window(rows, settings.window)
    return window_named(rows, window.name, change_point, RECENT_WINDOW_ROWS)


# --------------------------------------------------------------------------- the gate
def gate(project: Project, champion: Any, challenger: Any, gate_frame: pd.DataFrame, margin: float, alpha: float,
         rule: str = "better") -> GateVerdict:
    """Score both models on the same rows and test the challenger. rule "better": better by `margin` and
    a one-sided paired test at `alpha` agrees; "no worse": the paired test in the other direction does not
    show it worse at `alpha` (whether it is better in the point estimate is recorded: it decides when a
    drift ends)."""
    schema, task, metric = project.schema, project.task, project.metric
    X = datasets.to_model_frame(gate_frame, schema)
    y = datasets.target_array(gate_frame, schema)
    models = (champion, challenger)
    outputs = [_model_outputs(model, X, task, metric) for model in models]
    values = [metric_value(task, metric, y, out, model) for out, model in zip(outputs, models)]
    test = paired_test(task, metric, y, outputs, models)
    better = is_better(metric, values[1], values[0], margin)
    verdict = GateVerdict(metric=metric, champion_value=values[0], challenger_value=values[1], gate_rows=int(len(y)),
                          paired=test, better_by_margin=bool(better), rule=rule,
                          accepted=bool(better and test.p_value < alpha))
    if rule == "no worse":
        worse = paired_test(task, metric, y, outputs[::-1], models[::-1])  # H1: the champion is better
        point_better = is_better(metric, values[1], values[0]) and values[1] != values[0]
        verdict = replace(verdict, p_value_worse=float(worse.p_value), better_in_point_estimate=bool(point_better),
                          accepted=bool(worse.p_value >= alpha))
    return verdict


def paired_test(task: str, metric: str, y: Any, outputs: list, models: tuple) -> PairedTest:
    """One-sided paired test that the second model (outputs[1]) is better than the first."""
    if metric == "accuracy":
        return mcnemar_test(outputs[0] == y, outputs[1] == y)
    # each side's probability columns are read with its own model's classes_: a challenger
    # that learned a class the champion never saw has more columns
    first, second = models
    return paired_bootstrap_test(
        lambda y_true, out, _m=metric: _bootstrap_metric(task, _m, y_true, out, first),
        y, outputs[0], outputs[1], higher_is_better(metric), n_boot=BOOTSTRAP_RESAMPLES, seed=0,
        challenger_metric_fn=lambda y_true, out, _m=metric: _bootstrap_metric(task, _m, y_true, out, second))


def _model_outputs(model: Any, X: pd.DataFrame, task: str, metric: str) -> np.ndarray:
    with capped_native_threads():
        if metric in ("roc_auc", "log_loss") and task == "classification":
            return model.predict_proba(X)
        return np.asarray(model.predict(X))


def metric_value(task: str, metric: str, y: Any, output: np.ndarray, model: Any) -> float:
    """One metric in plain numpy (the bootstrap calls this hundreds of times; sklearn's
    input checks would cost ~1 ms a call). Same values as sklearn.metrics (tested)."""
    y = np.asarray(y)
    output = np.asarray(output)
    if metric in ("roc_auc", "log_loss"):
        classes = np.asarray(model.classes_)
        positions = {value: index for index, value in enumerate(classes.tolist())}
        column = np.array([positions.get(value, -1) for value in y.tolist()])
        if metric == "log_loss":
            proba = np.clip(output / output.sum(axis=1, keepdims=True), np.finfo(float).eps, 1 - np.finfo(float).eps)
            picked = np.where(column >= 0, proba[np.arange(len(y)), np.maximum(column, 0)], np.finfo(float).eps)
            return float(-np.mean(np.log(picked)))
        columns = [1] if len(classes) == 2 else range(len(classes))
        areas = [_rank_auc(column == k, output[:, k]) for k in columns]
        return float(np.mean(areas))
    if metric == "accuracy":
        return float(np.mean(output == y))
    if metric == "balanced_accuracy":
        return float(np.mean([np.mean(output[y == c] == c) for c in np.unique(y)]))
    if metric == "f1_macro":
        labels = np.unique(np.concatenate([y, output]))
        return float(np.mean([2 * np.sum((y == c) & (output == c)) / (np.sum(y == c) + np.sum(output == c))
                              for c in labels]))
    errors = output.astype(float) - y.astype(float)
    if metric == "rmse":
        return float(np.sqrt(np.mean(errors ** 2)))
    if metric == "mae":
        return float(np.mean(np.abs(errors)))
    if metric == "r2":
        total = np.sum((y.astype(float) - y.astype(float).mean()) ** 2)
        return float(1 - np.sum(errors ** 2) / total) if total > 0 else float("nan")
    raise KeelError(f"unknown metric {metric!r}")


def _rank_auc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic (ties count half)."""
    from scipy.stats import rankdata

    positives = int(is_positive.sum())
    negatives = len(is_positive) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[is_positive].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _bootstrap_metric(task: str, metric: str, y_true: Any, output: np.ndarray, model: Any) -> float:
    try:
        return metric_value(task, metric, y_true, output, model)
    except ValueError:
        return float("nan")


class PolicyService:
    """The retraining policy of one workspace (Keel.policy): each monitoring cycle acted on (alert,
    restore an earlier version, retrain and gate a challenger), challengers approved, the training
    window chosen. It sweeps the inbox and runs the cycle through those services' objects, and
    deploys, rolls back and trains through the lifecycle actions it is handed."""

    def __init__(self, *, registry: Registry, workspace: Workspace, data: ProjectData,
                 inbox: InboxService, monitoring: MonitoringService, loaded_models: BoundedCache,
                 train: Train, deploy: Deploy, deploy_holding_lock: DeployHoldingLock, rollback: Rollback) -> None:
        """loaded_models: the workspace's bounded cache of loaded model versions (champion and earlier ones)."""
        self._registry = registry
        self._workspace = workspace
        self._data = data
        self._inbox = inbox
        self._monitoring = monitoring
        self._loaded_models = loaded_models
        self._train = train
        self._deploy = deploy
        self._deploy_holding_lock = deploy_holding_lock
        self._rollback = rollback

    def monitor(self, name: str, by: str = "user", progress: Progress | None = None,
                lock_timeout: float = 600.0, cancel_event: threading.Event | None = None) -> MonitorOutcome:
        """Sweep the inbox, run one monitoring cycle, apply the policy: `monitor --once`.
        cancel_event: a retrain fits in child processes that setting the event stops at once; the
        cycle then ends with Cancelled, leaving no challenger behind (no model file, no row of it;
        the audit log says it was cancelled). The cycle's own results, recorded before, stay."""
        report = progress or (lambda fraction, message: None)
        project = self._data.project(name)
        report(0.0, "sweeping the inbox")
        swept = self._inbox.sweep(name, by=by)
        lock = FileLock(self._workspace.project_lock_path(name, "monitor"))
        if not lock.acquire(timeout=lock_timeout):
            raise BusyError(f"project {name!r} is being monitored by another process (lock {lock.path})")
        try:
            if self._registry.current_deployment(project.id) is None:
                ingested = sum(1 for item in swept if item.status == "processed")
                raise KeelError(f"project {name!r} has no production model yet (deploy a version first); "
                                f"{ingested} inbox file(s) ingested")
            settings = project.settings
            cycle = self._monitoring.run_cycle(name, by, progress=lambda f, m: report(0.05 + 0.55 * f, m),
                                               alerts=settings.policy != "off")
            outcome = self._apply(name, cycle, by, progress=lambda f, m: report(0.6 + 0.4 * f, m),
                                  cancel_event=cancel_event)
            if cycle.batches or cycle.late_labels or outcome.decision != "none":
                with self._registry.transaction():
                    self._registry.add_event(project, "monitored",
                                             f"{cycle.summary()} -> {outcome.decision}"
                                             + (f": {outcome.message}" if outcome.message else ""),
                                             by, {"batches": [b.monitored().to_json() for b in cycle.batches],
                                                  "alerts_opened": [a.id for a in cycle.alerts_opened],
                                                  "decision": outcome.decision})
        finally:
            lock.release()
        report(1.0, outcome.decision)
        return MonitorOutcome(
            project=name, batches=tuple(b.monitored() for b in cycle.batches),
            alerts_opened=tuple(cycle.alerts_opened), alerts_recovered=tuple(cycle.alerts_recovered),
            decision=outcome.decision, message=outcome.message, production_version=self._data.production_version(name),
            challenger_version=outcome.challenger_version, challenger_waiting=self.waiting_challenger(name),
            inbox=tuple(swept), details=outcome.details, traffic=tuple(cycle.traffic),
            late_labels=tuple(cycle.late_labels))

    def approve(self, name: str, by: str = "user") -> ProductionChange:
        """Deploy the challenger waiting for approval."""
        version = self.waiting_challenger(name)
        if version is None:
            raise KeelError(f"no challenger is waiting for approval in project {name!r}")
        return self._deploy(name, version, by=by, reason=f"challenger v{version} approved")

    def waiting_challenger(self, name: str) -> int | None:
        """The challenger waiting for approval; None when none waits or production moved past it."""
        project = self._data.project(name)
        model_version_id = self._registry.aliases(project.id).get("challenger")
        if model_version_id is None:
            return None
        version = self._registry.model_version_by_id(model_version_id).version
        return None if version == self._data.production_version(name) else version

    def training_window(self, project: Project, settings: ProjectSettings,
                        cancel_event: threading.Event | None = None,
                        progress: Progress | None = None) -> tuple[TrainingData, WindowParameters]:
        """`train` under --window adaptive with a production model: the window the policy would choose
        now (the same candidates, scored the same way on the newest rows: as many as its gate would
        hold), cut from every labelled row. -> (the rows, the run parameters that name the window).
        cancel_event: fit the candidates in a child process that setting the event stops at once."""
        rows, sampling = self._data.labelled_rows(project.name)
        change_point = self._adaptive_start(project)
        unseen = self._unseen_rows(project)
        basis = unseen if unseen >= MIN_GATE_ROWS else int((rows["__version__"] >= (change_point or 0)).sum())
        window, choice = choose_window(project, settings, rows, change_point, min(gate_size(basis), len(rows) // 2),
                                       cancel_event=cancel_event, progress=progress)
        frame = window.rows.drop(columns="__version__").reset_index(drop=True)
        used = sorted(int(v) for v in window.rows["__version__"].unique())
        parameters = WindowParameters(window.name, len(frame), choice.scores)
        return TrainingData(frame, used, sampled(sampling, len(frame))), parameters

    def earlier_production_versions(self, project: Project, production: int | None) -> list[int]:
        """Distinct earlier production versions, most recently deployed first (archived ones left out)."""
        return self._registry.recently_deployed_versions(project.id, production, MAX_RESTORE_CANDIDATES)

    def loaded_model(self, name: str, version: int) -> LoadedModel:
        """A model version loaded (sha256-checked) once and kept in the workspace's bounded cache, keyed by
        project, version id and hash: a project deleted and created again never gets the old model."""
        model_version = self._registry.model_version(self._data.project(name).id, version)
        key = (name, model_version.id, model_version.sha256)
        return self._loaded_models.get_or_build(key, lambda: self._data.load_version(name, version))

    # ------------------------------------------------------------------- the cycle
    def _apply(self, name: str, cycle: CycleResult, by: str = "user",
               progress: Progress | None = None, cancel_event: threading.Event | None = None) -> Outcome:
        outcome = self._decide_cycle(name, cycle, by, progress, cancel_event)
        if outcome.decision != "held" and (cycle.batches or cycle.late_windows):
            self._end_hold_streak(self._data.project(name), outcome.decision)
        return outcome

    def _decide_cycle(self, name: str, cycle: CycleResult, by: str = "user",
                      progress: Progress | None = None, cancel_event: threading.Event | None = None) -> Outcome:
        project = self._data.project(name)
        settings = project.settings
        firing = {rule: message for rule, message in cycle.firing.items() if message}
        if settings.policy == "off":
            return Outcome("none", "policy off: results recorded, no alerts")
        observation = self._observe(project, cycle, by)
        fallback = Outcome("alert" if firing else "none", "; ".join(firing.values()),
                           CycleDetails(change_detected=observation.change))
        waiting = self.waiting_challenger(name)
        if settings.policy == "approve" and waiting is not None:
            fallback.message = (fallback.message + "; " if fallback.message else "") + \
                f"challenger v{waiting} waits for approval"
            return fallback
        restored = self._try_restore(name, settings, observation, fallback)
        if restored is not None:
            return restored
        if settings.policy == "alert":
            return fallback
        reasons = self._retrain_reasons(project, settings, cycle.firing, observation,
                                        tuple(alert.rule for alert in cycle.alerts_opened))
        if not reasons:
            return fallback
        new_change = (observation.change is not None
                      or any(alert.rule in CHANGE_RULES for alert in cycle.alerts_opened))
        held = self._hold_reason(project, settings, reasons, latest_value(cycle), new_change)
        if held is not None:
            return self._record_hold(project, reasons, held, fallback, cycle_position(cycle))
        try:
            outcome = self._retrain_and_gate(name, reasons, settings, progress, cancel_event)
        except ValidationError as exc:  # not enough (or not the right) data yet: say so, try again later
            log.info("retrain of %s skipped: %s", name, exc)
            return Outcome("alert" if firing else "none", f"retrain needed ({', '.join(reasons)}) but skipped: {exc}",
                           fallback.details)
        if observation.change and isinstance(outcome.details, RetrainDetails):
            outcome.details = replace(outcome.details, change_detected=observation.change)
        return outcome

    # ------------------------------------------------------------------- change points and the detector
    def _observe(self, project: Project, cycle: CycleResult, by: str) -> Observation:
        """Feed the champion's per-batch losses to the change detector, date changes, count batches."""
        name = project.name
        state = store.read_policy_state(self._registry, project.id)
        champion_version = cycle.production_version
        detector = LossCusum.from_json(state.detector.cusum if state.detector.champion_version == champion_version
                                       else None)
        change_point = state.change_point
        for alert in cycle.alerts_opened:
            if alert.rule in CHANGE_RULES:
                change_point = alert.dataset_version
        observation = Observation()
        frames = []
        labelled = self._labelled_windows(project, cycle)
        champion = self.loaded_model(name, champion_version) if labelled and champion_version else None
        for label, frame in labelled:
            frames.append(frame)
            if champion is None:
                continue  # no production model: no loss to watch
            change = detector.update(row_losses(project, champion.model, frame), label)
            if change is not None:
                observation.change = change
                change_point = change.started_at
        if frames:
            observation.recent = pd.concat(frames, ignore_index=True).iloc[-MAX_GATE_ROWS:].reset_index(drop=True)
        # a traffic window labelled late counts as a batch; a batch labelled late was counted when it was monitored
        batches = len(cycle.batches) + sum(1 for late in cycle.late_windows if late.traffic_window is not None)
        budget = replace(state.budget, batches=(state.budget.batches or 0) + batches,
                         tokens=min(BUDGET_BURST, budget_tokens(state.budget) + BUDGET_PER_BATCH * batches))
        if observation.change or any(alert.rule in DRIFT_RULES for alert in cycle.alerts_opened):
            budget = replace(budget, drift=DriftSpell(since=change_point))  # a drift starts (or starts again)
        new_state = state.but(change_point=change_point, budget=budget,
                              detector=DetectorState(champion_version, detector.to_json()))
        with self._registry.transaction():
            store.write_policy_state(self._registry, project.id, new_state)
            if observation.change:
                change = observation.change
                self._registry.add_event(
                    project, "change_detected",
                    f"change detected from dataset v{change.started_at} (on v{change.detected_at}): the loss of "
                    f"v{champion_version} rose from {change.reference_loss:.4f} to {change.batch_loss:.4f} "
                    f"(CUSUM {change.statistic:.2f} > {change.limit:g})", by,
                    {"dataset_version": change.started_at, "rule": "change_detector",
                     "champion_version": champion_version, **change.to_json()})
        return observation

    def _labelled_windows(self, project: Project, cycle: CycleResult) -> list[tuple[int, pd.DataFrame]]:
        """(dataset version, labelled rows) of what the cycle measured, oldest data first: the windows
        labelled late (rows the champion never trained on), then the new labelled batches."""
        name = project.name
        found = []
        if cycle.late_windows and cycle.production_version:
            seen_until = self._champion_seen_until(project)
            found += [(late.labels_dataset_version, late.rows) for late in cycle.late_windows
                      if late.labels_dataset_version > seen_until]
        for batch in cycle.batches:
            if batch.labelled_rows:
                frame, _sample = self._data.batch_within_budget(name, batch.dataset_version, labelled_only=True)
                found.append((batch.dataset_version, frame))  # the monitoring result records a sample
        return found

    def _adaptive_start(self, project: Project) -> int | None:
        """The latest detected change (None: no change yet): where the rows since the change start."""
        return store.read_policy_state(self._registry, project.id).change_point

    # ------------------------------------------------------------------- earlier versions as challengers
    def _try_restore(self, name: str, settings: ProjectSettings, observation: Observation,
                     fallback: Outcome) -> Outcome | None:
        """Gate each earlier production version against the champion on the cycle's rows; act on the best."""
        project = self._data.project(name)
        production = self._data.production_version(name)
        candidates = self.earlier_production_versions(project, production)
        recent = observation.recent
        if production is None or not candidates or recent is None or len(recent) < MIN_GATE_ROWS:
            return None
        champion = self.loaded_model(name, production)
        alpha = settings.alpha / len(candidates)  # Bonferroni: one test per candidate
        verdicts = []
        for version in candidates:
            candidate = self.loaded_model(name, version)
            verdicts.append(RestoreCandidate(version, gate(project, champion.model, candidate.model, recent,
                                                           settings.margin, alpha)))
        accepted = [v for v in verdicts if v.verdict.accepted]
        if not accepted:
            return None
        sign = 1 if higher_is_better(project.metric) else -1
        best = max(accepted, key=lambda v: sign * v.verdict.challenger_value)
        details = RestoreDetails(champion_version=production, candidates=tuple(verdicts), best=best,
                                 alpha_per_candidate=alpha, change_detected=observation.change)
        verdict = best.verdict
        numbers = (f"earlier v{best.version} {verdict.metric} {verdict.challenger_value:.4f} vs champion "
                   f"v{production} {verdict.champion_value:.4f} on the {verdict.gate_rows} newest rows neither saw "
                   f"({verdict.test} p={verdict.p_value:.4g}, margin {settings.margin:g}, alpha {settings.alpha:g} "
                   f"shared by {len(candidates)} earlier version(s))")
        return self._act_on_restore(name, project, settings, details, numbers, fallback)

    def _act_on_restore(self, name: str, project: Project, settings: ProjectSettings, details: RestoreDetails,
                        numbers: str, fallback: Outcome) -> Outcome:
        version = details.restored_version
        if settings.policy == "auto":
            message = f"{numbers}: restored to production (a policy rollback; nothing was trained)"
            self._rollback(name, by="policy", reason=message, to_version=version)
            decision = "restored"
        elif settings.policy == "approve":
            message = f"{numbers}: waits for approval (keel approve {name})"
            decision = "restore_waiting"
        else:
            message = f"{numbers}: an earlier version is better (keel rollback {name} --to {version})"
            decision = "alert"
        with self._registry.transaction():
            if decision == "restore_waiting":
                self._registry.set_alias(project.id, "challenger", self._registry.model_version(project.id, version).id)
            if decision == "alert" and not any(a.rule == RESTORE_RULE for a in self._registry.open_alerts(project.id)):
                alert_id = self._registry.insert_alert(project_id=project.id, rule=RESTORE_RULE, severity="warning",
                                                       message=message, details=details)
                self._registry.add_event(project, "alert_opened", f"alert {alert_id} (warning): {message}", "policy",
                                         {"alert_id": alert_id, "rule": RESTORE_RULE, **details.to_json()})
            self._registry.add_event(project, "restore_decision", message, "policy",
                                     {**details.to_json(), "decision": decision})
        if decision == "alert":
            message = "; ".join(filter(None, [fallback.message, message]))
        return Outcome(decision, message, details, version)

    # ------------------------------------------------------------------- triggers, back-off, budget
    def _retrain_reasons(self, project: Project, settings: ProjectSettings, cycle_rules: Mapping[str, str],
                         observation: Observation | None = None, opened_rules: tuple[str, ...] = ()) -> list[str]:
        """cycle_rules: rule -> message ("" when it held) for the rules the cycle could decide;
        opened_rules: the rules whose alert the cycle opened."""
        reasons = []
        alert_rules = [rule for rule in MEASURED_RULES if cycle_rules.get(rule)]
        measured = any(rule in cycle_rules for rule in MEASURED_RULES)
        # drift: on every firing batch when nothing was measured; with labels, when its alert opens, and
        # again while it fires once a rejected challenger's back-off has run out (more rows may show the gain)
        if cycle_rules.get("drift_share") and (not measured or "drift_share" in opened_rules
                                               or self._backoff_run_out(project)):
            alert_rules.append("drift_share")
        if alert_rules:
            reasons.append("alert: " + ", ".join(alert_rules))
        if observation is not None and observation.change:
            change = observation.change
            reasons.append(f"change detector: loss {change.reference_loss:.4f} -> {change.batch_loss:.4f} "
                           f"since dataset v{change.started_at}")
        measured_now = observation is not None and observation.recent is not None  # the cycle brought labelled rows
        grown = (self._young_champion_outgrown(project)
                 or (self._champion_predates_change(project) if measured_now else None))
        if grown:
            reasons.append(grown)
        state = store.read_policy_state(self._registry, project.id)
        drift = state.budget.drift
        if drift and measured_now and not reasons and budget_allows(state):
            reasons.append(f"a drift since dataset v{drift.since} may go on: a follow-up challenger (until "
                           f"{DRIFT_END_REJECTIONS} in a row are not better)")
        elif state.budget.momentum and budget_allows(state):
            reasons.append("the last challenger was promoted: the drift may go on (until a challenger is rejected)")
        if settings.retrain_after_rows:
            new_rows = store.labelled_rows_since_last_training(self._registry, project.id)
            if new_rows >= settings.retrain_after_rows:
                reasons.append(f"{new_rows} new labelled rows (retrain after {settings.retrain_after_rows})")
        return reasons

    def _backoff_run_out(self, project: Project) -> bool:
        """A challenger of the production model was rejected and the rows it never saw have doubled since."""
        state = store.read_policy_state(self._registry, project.id)
        return (state.backoff_champion_version == self._data.production_version(project.name)
                and self._unseen_rows(project) >= 2 * state.backoff_unseen_rows)

    def _champion_predates_change(self, project: Project) -> str | None:
        """The champion was trained before the latest change (an earlier version restored, or every
        challenger since the change rejected) and rows since the change have arrived: challenge it with
        them (the back-off spaces the attempts)."""
        change_point = store.read_policy_state(self._registry, project.id).change_point
        if change_point is None or self._champion_seen_until(project) >= change_point:
            return None
        since = store.labelled_rows_from(self._registry, project.id, change_point)
        if since < MIN_GATE_ROWS / GATE_SHARE:
            return None
        return (f"champion v{self._data.production_version(project.name)} was trained before the change at "
                f"dataset v{change_point}; {since} rows since")

    def _young_champion_outgrown(self, project: Project) -> str | None:
        """Since the latest change, the champion has seen fewer than RECENT_WINDOW_ROWS rows (it was
        fitted soon after it) and as many newer ones have arrived since: a challenger on the larger
        window is likely better. After a change this retrains at about 200, 400, 800... rows."""
        change_point = store.read_policy_state(self._registry, project.id).change_point
        if change_point is None:
            return None
        seen_until = self._champion_seen_until(project)
        seen_since = store.labelled_rows_between(self._registry, project.id, change_point, seen_until)
        if not 0 < seen_since < RECENT_WINDOW_ROWS:
            return None
        newer = store.labelled_rows_from(self._registry, project.id, max(seen_until + 1, change_point))
        if newer < seen_since:
            return None
        return (f"champion v{self._data.production_version(project.name)} saw {seen_since} rows since the change at "
                f"dataset v{change_point}; {newer} newer rows since")

    def _hold_reason(self, project: Project, settings: ProjectSettings, reasons: list[str],
                     latest: float | None = None, new_change: bool = False) -> Hold | None:
        """Why a triggered retrain waits (too few new rows for a champion fitted after the latest change,
        the back-off, the budget), with its numbers; None: go ahead. The back-off ends when the rows the
        champion never saw have doubled, when the champion scores worse than at the rejected attempt by
        more than --max-drop (the drift went on), or when the cycle detects a new change."""
        state = store.read_policy_state(self._registry, project.id)
        production = self._data.production_version(project.name)
        user_rows = any("new labelled rows" in reason for reason in reasons)  # --retrain-after-rows is exempt
        by_rows = user_rows or all("newer rows since" in reason for reason in reasons)
        unseen = self._unseen_rows(project)
        drift = bool(state.budget.drift)
        gate_rows = DRIFT_FOLLOW_UP_GATE_ROWS if drift else FOLLOW_UP_GATE_ROWS
        needed = round(gate_rows / GATE_SHARE)
        follow_up = state.change_point is not None and self._champion_seen_until(project) >= state.change_point
        if follow_up and not user_rows:
            batches = store.labelled_versions_from(self._registry, project.id,
                                                   self._gate_start(project, state.change_point))
            if unseen < needed or (drift and batches < DRIFT_FOLLOW_UP_BATCHES):
                return NewRowsHold(
                    unseen_rows=unseen, needed_rows=needed, champion_version=production, unseen_batches=batches,
                    needed_batches=DRIFT_FOLLOW_UP_BATCHES if drift else None,
                    message=f"champion v{production} was trained after the latest change; a challenger waits "
                            f"until {needed} rows it never saw give the gate {gate_rows}"
                            + (f", in {DRIFT_FOLLOW_UP_BATCHES} batches" if drift else "")
                            + f" (now {unseen} rows in {batches} batch(es))")
        then = state.backoff_champion_value
        worse = (latest is not None and then is not None
                 and drop_from(project.metric, then, latest) > settings.max_drop)
        if (not by_rows and not worse and not new_change and state.backoff_champion_version == production
                and unseen < 2 * state.backoff_unseen_rows):
            return BackoffHold(
                unseen_rows=unseen, needed_rows=2 * state.backoff_unseen_rows, champion_version=production,
                message=f"a challenger of v{production} was rejected with {state.backoff_unseen_rows} unseen rows; "
                        f"the next waits for {2 * state.backoff_unseen_rows} (now {unseen})")
        if not budget_allows(state):
            held, batches, retrains = budget_tokens(state.budget), state.budget.batches or 0, state.budget.retrains or 0
            return BudgetHold(
                budget=round(held, 3), batches=batches, retrains=retrains, allowed=budget_share(state),
                message=f"the retrain budget holds {held:.2f} of a challenger (one more every "
                        f"{1 / BUDGET_PER_BATCH:g} batches; {retrains} fitted in "
                        f"{batches} batches, at most {budget_share(state):g})")
        return None

    def _record_hold(self, project: Project, reasons: list[str], held: Hold, fallback: Outcome,
                     position: int | None) -> Outcome:
        """A hold streak (consecutive held cycles for the same cause) is one `retrain_held` event at its
        start and one `retrain_hold_ended` at its end; the cycles between only count in the policy state."""
        message = f"retrain held ({held.hold}): {held.message}; triggered by {'; '.join(reasons)}"
        state = store.read_policy_state(self._registry, project.id)
        streak = state.budget.hold_streak
        with self._registry.transaction():
            going_on = streak is not None and streak.hold == held.hold
            if streak is not None and going_on:
                streak = streak.continued(position)
            else:
                if streak is not None:
                    self._record_hold_end(project, streak, f"held ({held.hold})")
                streak = HoldStreak(hold=held.hold, since=position, until=position, batches=1)
            details = HeldDetails(held, tuple(reasons), streak, fallback.details.change_detected)
            if not going_on:
                self._registry.add_event(project, "retrain_held", message, "policy", details.event_json())
            store.write_policy_state(self._registry, project.id,
                                     state.but(budget=replace(state.budget, hold_streak=streak)))
        return Outcome("held", "; ".join(filter(None, [fallback.message, message])), details)

    def _end_hold_streak(self, project: Project, decision: str) -> None:
        state = store.read_policy_state(self._registry, project.id)
        streak = state.budget.hold_streak
        if not streak:
            return
        with self._registry.transaction():
            self._record_hold_end(project, streak, decision)
            store.write_policy_state(self._registry, project.id,
                                     state.but(budget=replace(state.budget, hold_streak=None)))

    def _record_hold_end(self, project: Project, streak: HoldStreak, decision: str) -> None:
        self._registry.add_event(
            project, "retrain_hold_ended",
            f"retrain hold ({streak.hold}) ended after {streak.batches} cycle(s) (dataset v{streak.since} to "
            f"v{streak.until}); next decision: {decision}", "policy", {**streak.to_json(), "next_decision": decision})

    def _champion_seen_until(self, project: Project) -> int:
        """The newest dataset version the production model was trained on (or existed when it was deployed)."""
        deployment = self._registry.current_deployment(project.id)
        if deployment is None:
            raise KeelError(f"project {project.name!r} has no production model yet (deploy a version first)")
        model_version = self._registry.model_version_by_id(deployment.model_version_id)
        used = self._registry.run(model_version.run_id).dataset_versions if model_version.run_id else ()
        if used:
            return max(used)
        return store.dataset_version_at(self._registry, project.id, deployment.deployed_at)

    def _gate_start(self, project: Project, change_point: int | None) -> int:
        """The first dataset version of the gate's rows: unseen by the champion and, after a change, since it."""
        return max(self._champion_seen_until(project) + 1, change_point or 0)

    def _unseen_rows(self, project: Project) -> int:
        """Labelled rows that the production model never saw (since the latest change, if one came after it)."""
        change_point = store.read_policy_state(self._registry, project.id).change_point
        return store.labelled_rows_from(self._registry, project.id, self._gate_start(project, change_point))

    def _spend_budget(self, project: Project) -> None:
        """Every challenger fitted counts, whatever its gate decides."""
        state = store.read_policy_state(self._registry, project.id)
        budget = replace(state.budget, tokens=budget_tokens(state.budget) - 1, retrains=(state.budget.retrains or 0) + 1)
        with self._registry.transaction():
            store.write_policy_state(self._registry, project.id, state.but(budget=budget))

    def _record_momentum(self, project: Project, promoted: bool, passed_drift_gate: bool | None = None) -> None:
        state = store.read_policy_state(self._registry, project.id)
        budget = budget_after_challenger(state.budget, promoted, passed_drift_gate)
        store.write_policy_state(self._registry, project.id, state.but(budget=budget))

    def _record_backoff(self, project: Project, champion_version: int, unseen: int,
                        champion_value: float | None) -> None:
        state = store.read_policy_state(self._registry, project.id)
        store.write_policy_state(self._registry, project.id,
                                 state.but(backoff_champion_version=champion_version, backoff_unseen_rows=unseen,
                                           backoff_champion_value=champion_value))

    # ------------------------------------------------------------------- retrain and gate
    def _retrain_and_gate(self, name: str, reasons: list[str], settings: ProjectSettings,
                          progress: Progress | None = None, cancel_event: threading.Event | None = None) -> Outcome:
        """Choose the window on rows before the gate, fit it without the gate rows (the model the gate
        tests against the champion), register the challenger: the same window with the gate rows, the
        newest, in it; then gate and decide. Every fit comes before the challenger is registered, and
        with a cancel_event each runs in a child process that setting the event stops: a cancelled
        retrain leaves no challenger, its budget is given back and the audit log says so."""
        report = progress or (lambda fraction, message: None)
        project = self._data.project(name)
        schema = project.schema
        champion = self._data.load_production(name)
        rows, sampling = self._data.labelled_rows(name)
        change_point = store.read_policy_state(self._registry, project.id).change_point
        unseen = int((rows["__version__"] >= self._gate_start(project, change_point)).sum())
        before_gate, gate_part = split_gate(rows, unseen)
        training.check_trainable(before_gate, schema, "the challenger's training rows")
        self._spend_budget(project)
        try:
            report(0.0, "choosing the training window")
            window, choice = choose_window(project, settings, before_gate, change_point, len(gate_part),
                                           cancel_event=cancel_event, progress=lambda f, m: report(0.25 * f, m))
            training.check_trainable(window.rows, schema, f"the challenger's training window ({window.description})")
            final = same_window(window, rows, change_point, settings)
            train_part = final.rows.drop(columns="__version__").reset_index(drop=True)
            used = sorted(int(v) for v in final.rows["__version__"].unique())
            report(0.25, f"fitting the window without the {len(gate_part)} newest rows, to test it on them")
            tested = training.fit_window_cancellable(window.rows, schema, settings.preset, settings.params,
                                                     settings.seed, cancel_event)
            reason = f"policy retrain on {final.description}: " + "; ".join(reasons)
            report(0.4, f"training the challenger on {len(train_part)} rows")
            # the gate tests the window on rows it never saw; the challenger is refitted on every row of it
            data = TrainingData(train_part, used, sampled(sampling, len(train_part)), refit_on_all_rows=True)
            trained = self._train(name, by="policy", reason=reason, data=data, cancel_event=cancel_event,
                                  progress=lambda f, m: report(0.4 + 0.45 * f, m))
        except Cancelled:
            self._record_cancelled_retrain(project, reasons)
            raise
        with self._registry.transaction():
            self._registry.log_params(trained.run_id,
                                      WindowParameters(window.name, len(train_part), choice.scores).to_json())
        fit = ChallengerFit(champion_version=champion.version, challenger_version=trained.version, unseen_rows=unseen,
                            train_rows=len(train_part), tested_rows=len(window.rows), reasons=tuple(reasons),
                            dataset_versions=tuple(used), window=ChosenWindow(window.name, final.description, choice))
        try:
            report(0.9, f"testing the window on the {len(gate_part)} newest rows")
            verdict = gate(project, champion.model, tested, gate_part.drop(columns="__version__"),
                           settings.margin, settings.alpha,
                           gate_rule(store.read_policy_state(self._registry, project.id)))
            return self._decide(name, project, settings, RetrainDetails(fit, verdict))
        except BaseException as exc:
            self._record_gate_failure(project, fit, exc)
            raise

    def _record_cancelled_retrain(self, project: Project, reasons: list[str]) -> None:
        """A retrain stopped before its challenger was registered: nothing was fitted for good, so the
        budget it spent is given back; the audit log says it was cancelled."""
        state = store.read_policy_state(self._registry, project.id)
        fitted = 1 if state.budget.retrains is None else state.budget.retrains
        budget = replace(state.budget, tokens=budget_tokens(state.budget) + 1, retrains=max(0, fitted - 1))
        with self._registry.transaction():
            store.write_policy_state(self._registry, project.id, state.but(budget=budget))
            self._registry.add_event(project, "retrain_cancelled",
                                     f"policy retrain cancelled before its challenger was registered "
                                     f"({'; '.join(reasons)}); nothing was saved", "policy", {"reasons": reasons})

    def _record_gate_failure(self, project: Project, fit: ChallengerFit, exc: BaseException) -> None:
        """The challenger is registered but its decision is not: record why, or the audit log has an
        unexplained version and (no decision to back off from) the next firing batch retrains again."""
        version = fit.challenger_version
        try:
            if store.last_decided_challenger(self._registry, project.id) == version:
                return  # the decision was committed; what failed came after it (the manifest file)
            error = f"{type(exc).__name__}: {exc}"
            with self._registry.transaction():
                self._registry.add_event(project, "retrain_decision",
                                         f"challenger v{version} kept but not deployed: the gate against champion "
                                         f"v{fit.champion_version} failed ({error})", "policy",
                                         {**fit.to_json(), "accepted": False, "error": error,
                                          "decision": "retrained_rejected"})
                self._record_backoff(project, fit.champion_version, fit.unseen_rows, None)
        except Exception:
            log.exception("could not record the failed gate of challenger v%s in %s", version, project.name)

    def _decide(self, name: str, project: Project, settings: ProjectSettings, details: RetrainDetails) -> Outcome:
        version, champion_version = details.challenger_version, details.champion_version
        verdict = details.verdict
        numbers = (f"challenger v{version} ({details.fit.window.description}) {project.metric} "
                   f"{verdict.challenger_value:.4f} vs champion v{champion_version} "
                   f"{verdict.champion_value:.4f} on the {verdict.gate_rows} newest rows, which neither the "
                   f"champion nor the challenger's window without them was trained on "
                   f"({verdict.test} p={verdict.p_value:.4g}, margin {settings.margin:g}, alpha {settings.alpha:g})")
        if verdict.rule == "no worse":
            numbers += (f"; during a drift the gate asks for {GATE_RULES['no worse']} "
                        f"(p worse={verdict.p_value_worse:.4g})")
        if not verdict.accepted:
            decision, message = "retrained_rejected", f"{numbers}: not better, kept as v{version} but not deployed"
        elif settings.policy == "auto":
            decision, message = "retrained_deployed", f"{numbers}: promoted to production"
        else:
            decision, message = "retrained_waiting", f"{numbers}: waits for approval (keel approve {name})"
        # under the project lock (every deploy and rollback takes it): production cannot change between
        # the check that it is still the champion the challenger was gated against and the decision's write
        with project_lock(self._workspace, name):
            production_version = self._data.production_version(name)
            if production_version != champion_version:
                details = replace(details, production_changed=True, production_version=production_version)
                if decision != "retrained_rejected":
                    decision = "retrained_rejected"
                    message = (f"{numbers}: not promoted, production changed from v{champion_version} to "
                               f"v{production_version} while the challenger was gated; kept as v{version} but not deployed")

            def record(project: Project) -> None:
                if decision == "retrained_waiting":
                    self._registry.set_alias(project.id, "challenger",
                                             self._registry.model_version(project.id, version).id)
                if decision == "retrained_rejected":
                    self._record_backoff(project, champion_version, details.fit.unseen_rows, verdict.champion_value)
                self._record_momentum(project, decision == "retrained_deployed",
                                      bool(verdict.better_in_point_estimate) if verdict.rule == "no worse" else None)
                self._registry.add_event(project, "retrain_decision", message, "policy",
                                         {**details.to_json(), "decision": decision})

            if decision == "retrained_deployed":  # the deployment and the decision: one transaction
                self._deploy_holding_lock(name, version, by="policy", reason=message, extra_transaction_work=record)
            else:
                with self._registry.transaction():
                    record(project)
        return Outcome(decision, message, details, version)
