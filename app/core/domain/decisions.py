"""The retraining policy's decisions and their numbers (app/core/services/policy.py), typed.

Each value is frozen and pickles; `to_json()` gives the document `monitor --once --json` prints under
`details` (and `change_detected`) and the audit log stores as an event's details, with the keys in the
order they always had (tests/test_policy_decision_documents.py pins them); `from_json()` reads back
what the policy state table stores.

A decision's details are one of: RetrainDetails (a challenger fitted and gated), RestoreDetails (an
earlier version gated against the champion), HeldDetails (a triggered retrain waits) or
CycleDetails (no action: at most the change the detector found).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeAlias

JSON = dict[str, Any]


# --------------------------------------------------------------------------- samples and findings
@dataclass(frozen=True)
class SamplingRecord:
    """Rows sampled to fit the training memory budget: sampled_rows of of_rows were kept."""

    sampled_rows: int
    of_rows: int
    memory_budget_mb: int

    def with_rows(self, rows: int) -> SamplingRecord:
        """The same sample, of which `rows` were taken (a training window of it)."""
        return replace(self, sampled_rows=rows)

    def to_json(self) -> JSON:
        return {"sampled_rows": self.sampled_rows, "of_rows": self.of_rows, "memory_budget_mb": self.memory_budget_mb}

    @classmethod
    def from_json(cls, data: JSON) -> SamplingRecord:
        return cls(sampled_rows=data["sampled_rows"], of_rows=data["of_rows"], memory_budget_mb=data["memory_budget_mb"])


@dataclass(frozen=True)
class ChangeFinding:
    """A change the detector (app/core/ml/change.LossCusum) found: dated to the batch started_at (a dataset
    version), found on detected_at, with the CUSUM's numbers."""

    started_at: Any  # the label of a batch: a dataset version in the policy
    detected_at: Any
    statistic: float
    limit: float
    allowance: float
    reference_loss: float  # the mean loss of the batches before the change
    batch_loss: float  # the mean loss of the batch it was found on
    reference_rows: int
    excursion_started_at: Any  # the first batch since the statistic was last 0

    def to_json(self) -> JSON:
        return {"started_at": self.started_at, "detected_at": self.detected_at, "statistic": self.statistic,
                "limit": self.limit, "allowance": self.allowance, "reference_loss": self.reference_loss,
                "batch_loss": self.batch_loss, "reference_rows": self.reference_rows,
                "excursion_started_at": self.excursion_started_at}

    @classmethod
    def from_json(cls, data: JSON) -> ChangeFinding:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


# --------------------------------------------------------------------------- the paired tests
@dataclass(frozen=True)
class McNemarTest:
    """Exact McNemar test on paired correctness, one-sided: the challenger is better."""

    only_challenger_right: int
    only_champion_right: int
    p_value: float
    test: ClassVar[str] = "mcnemar"

    def to_json(self) -> JSON:
        return {"test": self.test, "only_challenger_right": self.only_challenger_right,
                "only_champion_right": self.only_champion_right, "p_value": self.p_value}


@dataclass(frozen=True)
class BootstrapTest:
    """One-sided paired bootstrap: p_value is the share of resamples where the challenger is not better."""

    observed_difference: float  # the challenger's metric minus the champion's
    p_value: float
    test: ClassVar[str] = "paired_bootstrap"

    def to_json(self) -> JSON:
        return {"test": self.test, "observed_difference": self.observed_difference, "p_value": self.p_value}


PairedTest: TypeAlias = McNemarTest | BootstrapTest


# --------------------------------------------------------------------------- the gate
GATE_RULES = ("better", "no worse")


@dataclass(frozen=True)
class GateVerdict:
    """A challenger (or an earlier version) and the champion scored on the same rows, and the paired test.
    rule "better": accepted when better by the margin and the test agrees; "no worse" (during a drift):
    accepted unless the test in the other direction (p_value_worse) shows it worse."""

    metric: str
    champion_value: float
    challenger_value: float
    gate_rows: int
    paired: PairedTest
    better_by_margin: bool
    rule: str  # one of GATE_RULES
    accepted: bool
    p_value_worse: float | None = None  # rule "no worse" only
    better_in_point_estimate: bool | None = None  # rule "no worse" only

    @property
    def test(self) -> str:
        return self.paired.test

    @property
    def p_value(self) -> float:
        return float(self.paired.p_value)

    def to_json(self, with_test_details: bool = True) -> JSON:
        document: JSON = {"metric": self.metric, "champion_value": self.champion_value,
                          "challenger_value": self.challenger_value, "gate_rows": self.gate_rows,
                          "test": self.test, "p_value": self.p_value}
        if with_test_details:
            document["test_details"] = self.paired.to_json()
        document.update({"better_by_margin": self.better_by_margin, "rule": self.rule, "accepted": self.accepted})
        if self.rule == "no worse":
            document.update({"p_value_worse": self.p_value_worse,
                             "better_in_point_estimate": self.better_in_point_estimate})
        return document


# --------------------------------------------------------------------------- the training window
@dataclass(frozen=True)
class WindowChoice:
    """How the training window was chosen: "forced" by the window setting, or "adaptive": each candidate
    scored on the newest selection_rows (none: too few rows to score, the window is taken by its
    definition), and the newest rows (`default`) kept unless another is better at switch_p.
    scores and p_values: one value per window name."""

    mode: str  # "forced" | "adaptive"
    scores: dict[str, float] = field(default_factory=dict)
    selection_rows: int = 0
    scored: bool = False  # the candidates were scored: default, p_values and switch_p say how one was kept
    default: str | None = None
    p_values: dict[str, float] = field(default_factory=dict)
    switch_p: float | None = None

    def to_json(self) -> JSON:
        document: JSON = {"mode": self.mode}
        if self.mode == "adaptive":
            document.update({"scores": self.scores, "selection_rows": self.selection_rows})
        if self.scored:
            document.update({"default": self.default, "p_values": self.p_values, "switch_p": self.switch_p})
        return document


@dataclass(frozen=True)
class WindowParameters:
    """The run parameters that name a training window the policy chose: its name, its rows, and the
    candidates' scores by window name (empty: none scored)."""

    training_window: str
    training_window_rows: int
    training_window_scores: dict[str, float]

    def to_json(self) -> JSON:
        return {"training_window": self.training_window, "training_window_rows": self.training_window_rows,
                "training_window_scores": self.training_window_scores}


@dataclass(frozen=True)
class ChosenWindow:
    """The training window a challenger was fitted on (name, description) and how it was chosen."""

    chosen: str  # "all", "since change", "recent", "latest"
    description: str
    choice: WindowChoice

    def to_json(self) -> JSON:
        return {"chosen": self.chosen, "description": self.description, **self.choice.to_json()}


# --------------------------------------------------------------------------- the decisions' details
def _change(change_detected: ChangeFinding | None) -> JSON:
    return {"change_detected": change_detected.to_json()} if change_detected is not None else {}


@dataclass(frozen=True)
class CycleDetails:
    """A cycle that took no action of its own (none, alert, a retrain skipped): the change found, if any."""

    change_detected: ChangeFinding | None = None

    def to_json(self) -> JSON:
        return _change(self.change_detected)


@dataclass(frozen=True)
class ChallengerFit:
    """A challenger fitted by the policy before its gate: against which champion, on which rows, why."""

    champion_version: int
    challenger_version: int
    unseen_rows: int  # labelled rows the champion never saw
    train_rows: int  # the challenger's rows (the window with the gate's rows)
    tested_rows: int  # the window without the gate's rows: the fit the gate tests
    reasons: tuple[str, ...]
    dataset_versions: tuple[int, ...]
    window: ChosenWindow

    def to_json(self) -> JSON:
        return {"champion_version": self.champion_version, "challenger_version": self.challenger_version,
                "unseen_rows": self.unseen_rows, "train_rows": self.train_rows, "tested_rows": self.tested_rows,
                "reasons": list(self.reasons), "dataset_versions": list(self.dataset_versions),
                "window": self.window.to_json()}


@dataclass(frozen=True)
class RetrainDetails:
    """A retrain's decision (retrained_deployed, _waiting, _rejected): the challenger and its gate.
    production_changed: production moved off the champion while the challenger was gated (to
    production_version), so the challenger was not promoted."""

    fit: ChallengerFit
    verdict: GateVerdict
    production_changed: bool = False
    production_version: int | None = None
    change_detected: ChangeFinding | None = None

    @property
    def champion_version(self) -> int:
        return self.fit.champion_version

    @property
    def challenger_version(self) -> int:
        return self.fit.challenger_version

    def to_json(self) -> JSON:
        return {**self.fit.to_json(), **self.verdict.to_json(),
                **({"production_version": self.production_version} if self.production_changed else {}),
                **_change(self.change_detected)}


@dataclass(frozen=True)
class RestoreCandidate:
    """An earlier production version gated against the champion."""

    version: int
    verdict: GateVerdict

    def to_json(self) -> JSON:
        return {"version": self.version, **self.verdict.to_json(with_test_details=False)}


@dataclass(frozen=True)
class RestoreDetails:
    """An earlier version that passed the gate (restored, restore_waiting, or named in an alert): the best
    of the candidates, each tested at alpha_per_candidate."""

    champion_version: int
    candidates: tuple[RestoreCandidate, ...]
    best: RestoreCandidate
    alpha_per_candidate: float
    change_detected: ChangeFinding | None = None

    @property
    def restored_version(self) -> int:
        return self.best.version

    def to_json(self) -> JSON:
        verdict = self.best.verdict
        return {"champion_version": self.champion_version, "restored_version": self.restored_version,
                "candidates": [candidate.to_json() for candidate in self.candidates],
                "alpha_per_candidate": self.alpha_per_candidate, "metric": verdict.metric,
                "champion_value": verdict.champion_value, "challenger_value": verdict.challenger_value,
                "gate_rows": verdict.gate_rows, "test": verdict.test, "p_value": verdict.p_value,
                **_change(self.change_detected)}


# --------------------------------------------------------------------------- holds
@dataclass(frozen=True)
class NewRowsHold:
    """A champion fitted after the latest change waits for enough rows it never saw (and during a drift,
    for needed_batches batches)."""

    unseen_rows: int
    needed_rows: int
    champion_version: int | None
    unseen_batches: int
    needed_batches: int | None  # during a drift only
    message: str
    hold: ClassVar[str] = "new rows"

    def to_json(self) -> JSON:
        return {"hold": self.hold, "unseen_rows": self.unseen_rows, "needed_rows": self.needed_rows,
                "champion_version": self.champion_version, "unseen_batches": self.unseen_batches,
                **({"needed_batches": self.needed_batches} if self.needed_batches is not None else {}),
                "message": self.message}


@dataclass(frozen=True)
class BackoffHold:
    """A challenger of this champion was rejected: the next waits until the rows it never saw have doubled."""

    unseen_rows: int
    needed_rows: int
    champion_version: int | None
    message: str
    hold: ClassVar[str] = "back-off"

    def to_json(self) -> JSON:
        return {"hold": self.hold, "unseen_rows": self.unseen_rows, "needed_rows": self.needed_rows,
                "champion_version": self.champion_version, "message": self.message}


@dataclass(frozen=True)
class BudgetHold:
    """The retrain budget holds less than a challenger, or the challengers fitted reached their share."""

    budget: float  # the tokens in the bucket
    batches: int
    retrains: int
    allowed: float  # challengers allowed so far
    message: str
    hold: ClassVar[str] = "budget"

    def to_json(self) -> JSON:
        return {"hold": self.hold, "budget": self.budget, "batches": self.batches, "retrains": self.retrains,
                "allowed": self.allowed, "message": self.message}


Hold: TypeAlias = NewRowsHold | BackoffHold | BudgetHold


@dataclass(frozen=True)
class HoldStreak:
    """Consecutive held cycles for the same cause: from dataset version `since` to `until`."""

    hold: str  # the Hold's name
    since: int | None
    until: int | None
    batches: int

    def continued(self, position: int | None) -> HoldStreak:
        return replace(self, batches=self.batches + 1, until=position)

    def to_json(self) -> JSON:
        return {"hold": self.hold, "since": self.since, "until": self.until, "batches": self.batches}

    @classmethod
    def from_json(cls, data: JSON) -> HoldStreak:
        return cls(hold=data["hold"], since=data["since"], until=data["until"], batches=data["batches"])


@dataclass(frozen=True)
class HeldDetails:
    """A triggered retrain held: why (the hold, its numbers), what triggered it, the streak it belongs to."""

    hold: Hold
    reasons: tuple[str, ...]
    hold_streak: HoldStreak
    change_detected: ChangeFinding | None = None

    def event_json(self) -> JSON:
        """The details of the streak's `retrain_held` event."""
        return {**_change(self.change_detected), **self.hold.to_json(), "reasons": list(self.reasons),
                "decision": "held"}

    def to_json(self) -> JSON:
        return {**self.event_json(), "hold_streak": self.hold_streak.to_json()}


DecisionDetails: TypeAlias = RetrainDetails | RestoreDetails | HeldDetails | CycleDetails


# --------------------------------------------------------------------------- the retrain budget
@dataclass(frozen=True)
class DriftSpell:
    """A drift under way: since the change at dataset version `since`; `rejected` challengers in a row failed."""

    since: int | None
    rejected: int = 0

    def to_json(self) -> JSON:
        return {"since": self.since, "rejected": self.rejected}

    @classmethod
    def from_json(cls, data: JSON) -> DriftSpell:
        return cls(since=data.get("since"), rejected=data.get("rejected", 0))


@dataclass(frozen=True)
class RetrainBudget:
    """The retrain budget in the policy state (its budget_json column): labelled batches seen, the token
    bucket, challengers fitted, whether the last one was promoted, the drift under way and the hold
    streak. None: never recorded (the stored document leaves the key out; the policy knows the defaults)."""

    batches: int | None = None
    tokens: float | None = None
    retrains: int | None = None
    momentum: bool | None = None  # the last challenger was promoted
    drift: DriftSpell | None = None
    hold_streak: HoldStreak | None = None

    def to_json(self) -> JSON:
        values = {"batches": self.batches, "tokens": self.tokens,
                  "drift": self.drift.to_json() if self.drift else None, "retrains": self.retrains,
                  "momentum": self.momentum, "hold_streak": self.hold_streak.to_json() if self.hold_streak else None}
        return {key: value for key, value in values.items() if value is not None}

    @classmethod
    def from_json(cls, data: JSON) -> RetrainBudget:
        return cls(batches=data.get("batches"), tokens=data.get("tokens"), retrains=data.get("retrains"),
                   momentum=data.get("momentum"),
                   drift=DriftSpell.from_json(data["drift"]) if data.get("drift") else None,
                   hold_streak=HoldStreak.from_json(data["hold_streak"]) if data.get("hold_streak") else None)


@dataclass(frozen=True)
class DetectorState:
    """The change detector's state in the policy state (its detector_json column), for one champion:
    `cusum` is the detector's own document (app/core/ml/change.LossCusum's to_json, read back by its
    from_json). None: not recorded."""

    champion_version: int | None = None
    cusum: JSON | None = None

    def to_json(self) -> JSON:
        values = {"champion_version": self.champion_version, "cusum": self.cusum}
        return {key: value for key, value in values.items() if value is not None}

    @classmethod
    def from_json(cls, data: JSON) -> DetectorState:
        return cls(champion_version=data.get("champion_version"), cusum=data.get("cusum"))
