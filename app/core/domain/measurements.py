"""What monitoring measures on an ingested batch or on a window of served traffic, as typed values:
each feature's drift against the training reference, the drift of the model's predictions, the
per-class metrics and confusion matrix of a labelled batch, the alert rules' messages. They are
what MonitorResult.details and TrafficWindow.details hold, read back from the stored details_json.

to_json() gives the JSON Keel has always stored, key for key and in the same order (the registry
writes it with json.dumps), and from_json() reads what any release stored; a workspace written by
an earlier release reads back and writes the same bytes (tests/test_monitoring_details_stored.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from app.core.domain.decisions import SamplingRecord


@dataclass(frozen=True)
class ChiSquare:
    """The chi-square test of homogeneity of two rows of counts (reference, current)."""

    chi2: float
    chi2_pvalue: float

    def to_json(self) -> dict[str, Any]:
        return {"chi2": self.chi2, "chi2_pvalue": self.chi2_pvalue}


@dataclass(frozen=True)
class NumericDrift:
    """A numeric column of a batch against its training reference (docs/cli.md, "Settings": drifted when
    PSI or the normalised Wasserstein distance is large AND the KS or chi-square test says beyond noise).
    The distances are None when the batch or the reference has no value that is not missing."""

    kind: ClassVar[str] = "numeric"
    psi: float
    missing_share: float  # of the batch's rows
    chi2: float  # over the reference's quantile bins and the missing values
    chi2_pvalue: float
    wasserstein: float | None
    wasserstein_norm: float | None  # divided by the reference's standard deviation
    ks: float | None
    ks_pvalue: float | None
    drifted: bool

    @property
    def effect(self) -> float | None:
        """The effect size the drift decision rests on beside PSI."""
        return self.wasserstein_norm

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NumericDrift:
        return cls(psi=data["psi"], missing_share=data["missing_share"], chi2=data["chi2"],
                   chi2_pvalue=data["chi2_pvalue"], wasserstein=data.get("wasserstein"),
                   wasserstein_norm=data.get("wasserstein_norm"), ks=data.get("ks"), ks_pvalue=data.get("ks_pvalue"),
                   drifted=data["drifted"])

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "psi": self.psi, "missing_share": self.missing_share, "chi2": self.chi2,
                "chi2_pvalue": self.chi2_pvalue, "wasserstein": self.wasserstein,
                "wasserstein_norm": self.wasserstein_norm, "ks": self.ks, "ks_pvalue": self.ks_pvalue,
                "drifted": self.drifted}


@dataclass(frozen=True)
class CategoricalDrift:
    """A categorical (or boolean) column of a batch against its training reference: drifted when PSI or
    the Jensen-Shannon distance is large AND the chi-square test says beyond noise."""

    kind: ClassVar[str] = "categorical"
    psi: float
    jensen_shannon: float
    missing_share: float  # of the batch's rows
    unseen_categories: tuple[str, ...]  # categories the reference never had (the first 20)
    chi2: float
    chi2_pvalue: float
    drifted: bool

    @property
    def effect(self) -> float | None:
        """The effect size the drift decision rests on beside PSI."""
        return self.jensen_shannon

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CategoricalDrift:
        return cls(psi=data["psi"], jensen_shannon=data["jensen_shannon"], missing_share=data["missing_share"],
                   unseen_categories=tuple(data.get("unseen_categories") or ()), chi2=data["chi2"],
                   chi2_pvalue=data["chi2_pvalue"], drifted=data["drifted"])

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "psi": self.psi, "jensen_shannon": self.jensen_shannon,
                "missing_share": self.missing_share, "unseen_categories": list(self.unseen_categories),
                "chi2": self.chi2, "chi2_pvalue": self.chi2_pvalue, "drifted": self.drifted}


FeatureDrift = NumericDrift | CategoricalDrift


def feature_drift_from_json(data: Mapping[str, Any]) -> FeatureDrift:
    """One column's drift as stored: its `kind` says which."""
    return CategoricalDrift.from_json(data) if data.get("kind") == "categorical" else NumericDrift.from_json(data)


def features_from_json(data: Mapping[str, Mapping[str, Any]] | None) -> dict[str, FeatureDrift]:
    return {name: feature_drift_from_json(stats) for name, stats in (data or {}).items()}


def features_to_json(features: Mapping[str, FeatureDrift]) -> dict[str, dict[str, Any]]:
    return {name: stats.to_json() for name, stats in features.items()}


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall and F1 of one class on a labelled batch, and how many rows had that label."""

    precision: float
    recall: float
    f1: float
    support: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClassMetrics:
        return cls(precision=data["precision"], recall=data["recall"], f1=data["f1"], support=data["support"])

    def to_json(self) -> dict[str, Any]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "support": self.support}


@dataclass(frozen=True)
class Confusion:
    """The confusion matrix of a labelled batch: matrix[true][predicted], in the order of classes."""

    classes: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Confusion:
        return cls(classes=tuple(data["classes"]), matrix=tuple(tuple(row) for row in data["matrix"]))

    def to_json(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "matrix": [list(row) for row in self.matrix]}


@dataclass(frozen=True)
class BatchDetails:
    """What a monitoring cycle measured on one ingested batch beyond its result's columns
    (MonitorResult.details). Mappings of one value type: metrics by name, per-class metrics and
    per-feature drift by name, each rule's message by rule ("" when it holds; a rule without the
    data to decide is absent). A field that is None was not measured and is not stored."""

    features: dict[str, FeatureDrift] = field(default_factory=dict)  # every feature column, in the schema's order
    metrics: dict[str, float] | None = None  # None: an unlabelled batch
    per_class: dict[str, ClassMetrics] | None = None  # classifiers, on a labelled batch
    confusion: Confusion | None = None
    prediction_drift: FeatureDrift | None = None  # the model's predictions against those on its training rows
    sample: SamplingRecord | None = None  # the batch was measured on a sample that fits the memory budget
    rules: dict[str, str] = field(default_factory=dict)
    training_value: float | None = None  # the model's metric at training, which metric_drop compares with
    has_ids: bool | None = None  # its rows carry IDs, so late labels can find them (None: not recorded, before 0.2)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchDetails:
        per_class, confusion, prediction = data.get("per_class"), data.get("confusion"), data.get("prediction_drift")
        return cls(features=features_from_json(data.get("features")), metrics=data.get("metrics"),
                   per_class=None if per_class is None else {name: ClassMetrics.from_json(stats)
                                                             for name, stats in per_class.items()},
                   confusion=None if confusion is None else Confusion.from_json(confusion),
                   prediction_drift=None if prediction is None else feature_drift_from_json(prediction),
                   sample=None if data.get("sample") is None else SamplingRecord.from_json(data["sample"]),
                   rules=dict(data.get("rules") or {}),
                   training_value=data.get("training_value"), has_ids=data.get("has_ids"))

    def to_json(self) -> dict[str, Any]:
        """As stored: the measurements a batch had, then its rules' messages and the training value."""
        stored: dict[str, Any] = {}
        if self.metrics is not None:
            stored["metrics"] = self.metrics
        if self.per_class is not None:
            stored["per_class"] = {name: stats.to_json() for name, stats in self.per_class.items()}
        if self.confusion is not None:
            stored["confusion"] = self.confusion.to_json()
        if self.prediction_drift is not None:
            stored["prediction_drift"] = self.prediction_drift.to_json()
        stored["features"] = features_to_json(self.features)
        if self.sample is not None:
            stored["sample"] = self.sample.to_json()
        stored.update(rules=self.rules, training_value=self.training_value)
        if self.has_ids is not None:
            stored["has_ids"] = self.has_ids
        return stored

    def fired(self) -> list[str]:
        """The rules that fired on the batch, sorted."""
        return sorted(rule for rule, message in self.rules.items() if message)


@dataclass(frozen=True)
class WindowDetails:
    """What a monitoring cycle measured on one window of served traffic beyond its columns
    (TrafficWindow.details): per-feature drift by name, the drift of the predictions and of the
    classifier's probabilities, the share of each predicted class, each rule's message by rule."""

    model_versions: tuple[int, ...] = ()  # the ids of the model versions that scored its records
    features: dict[str, FeatureDrift] = field(default_factory=dict)
    prediction_drift: FeatureDrift | None = None
    probability_drift: NumericDrift | None = None  # classifiers whose reference kept the probabilities
    prediction_shares: dict[str, float] | None = None  # classifiers: predicted class -> share of the records
    rules: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WindowDetails:
        prediction, probability = data.get("prediction_drift"), data.get("probability_drift")
        return cls(model_versions=tuple(data.get("model_versions") or ()),
                   features=features_from_json(data.get("features")),
                   prediction_drift=None if prediction is None else feature_drift_from_json(prediction),
                   probability_drift=None if probability is None else NumericDrift.from_json(probability),
                   prediction_shares=data.get("prediction_shares"), rules=dict(data.get("rules") or {}))

    def to_json(self) -> dict[str, Any]:
        """As stored: every key, null where nothing was measured."""
        return {"model_versions": list(self.model_versions), "features": features_to_json(self.features),
                "prediction_drift": None if self.prediction_drift is None else self.prediction_drift.to_json(),
                "probability_drift": None if self.probability_drift is None else self.probability_drift.to_json(),
                "prediction_shares": self.prediction_shares, "rules": self.rules}
