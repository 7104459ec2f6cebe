"""Read-only views over a project that the GUI shows: health at a glance, the
production model card, and a side-by-side comparison of model versions.

The rules (what counts as healthy, which importance to show) live here, not in widgets.
"""

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any

from app.core.domain.cards import (
    AlertsSince,
    CommonRows,
    ComparedVersion,
    FeatureDistribution,
    HealthState,
    MetricChange,
    MissingShares,
    ProductionCard,
    ProductionModel,
    ProjectHealth,
    TrainingDataset,
    TrainingFacts,
    VersionCard,
    VersionComparison,
    VersionDeployment,
)
from app.core.domain.decisions import SamplingRecord
from app.core.domain.entities import Deployment, ModelVersion, MonitorResult, Project
from app.core.domain.errors import NotFoundError
from app.core.domain.settings import (
    drop_from,
    higher_is_better,
    past_threshold,
)
from app.core.services.dependencies import Progress
from app.core.services.project_data import LoadedModel, ProjectData
from app.core.store.registry import Registry
from app.core.store.workspace import Workspace

MAX_COMMON_ROWS = 5000  # the newest labelled rows neither compared version has seen
MAX_IMPORTANCE_ROWS = 2000
SPARKLINE_POINTS = 50


def native_importances(pipeline: Any, features: list[str]) -> dict[str, float] | None:
    """The estimator's own importances (trees), summed back onto the input columns; None if it has none."""
    import numpy as np

    steps = getattr(pipeline, "named_steps", {})
    model, preprocess = steps.get("model"), steps.get("preprocess")
    values = getattr(model, "feature_importances_", None)
    if values is None or preprocess is None or not hasattr(preprocess, "output_indices_"):
        return None
    totals = {}
    for transformer_name, transformer, columns in preprocess.transformers_:
        block = preprocess.output_indices_.get(transformer_name)
        if block is None or transformer == "drop" or not len(columns):
            continue
        widths = [1] * len(columns)
        encoder = getattr(transformer, "named_steps", {}).get("onehot")
        if encoder is not None:
            widths = [len(c) for c in encoder.categories_]
        start = block.start
        for column, width in zip(columns, widths):
            totals[str(column)] = float(np.sum(values[start:start + width]))
            start += width
        if start != block.stop:
            return None
    return {f: totals.get(f, 0.0) for f in features}


def importances(loaded: LoadedModel, X: Any, y: Any, task: str, seed: int = 0) -> tuple[str, dict[str, float]]:
    """(kind, {feature: importance}): native when the estimator has them, else permutation importance."""
    features = list(X.columns)
    native = native_importances(loaded.model, features)
    if native is not None:
        return "impurity", native
    from sklearn.inspection import permutation_importance

    scoring = "accuracy" if task == "classification" else "r2"
    result = permutation_importance(loaded.model, X, y, scoring=scoring, n_repeats=3, random_state=seed, n_jobs=1)
    return "permutation", {f: float(v) for f, v in zip(features, result.importances_mean)}


def metric_comparison(entries: Sequence[ComparedVersion], primary_metric: str, *,
                      on_common_rows: bool = False) -> tuple[MetricChange, ...]:
    """Each metric of two compared versions (recorded at training, or, on_common_rows, scored on the
    rows neither saw), the primary metric first; the verdict respects whether the metric is better
    high or low."""
    first, second = entries

    def scores(entry: ComparedVersion) -> dict[str, float]:
        return (entry.common_metrics or {}) if on_common_rows else entry.metrics

    names = sorted(set(scores(first)) | set(scores(second)), key=lambda k: (k != primary_metric, k))
    rows = []
    for name in names:
        a, b = scores(first).get(name), scores(second).get(name)
        delta = b - a if isinstance(a, float) and isinstance(b, float) else None
        better = None if delta is None or delta == 0 else ((delta > 0) == higher_is_better(name))
        verdict = "" if better is None else f"v{(second if better else first).version} better"
        rows.append(MetricChange(metric=name, a=a, b=b, delta=delta, verdict=verdict))
    return tuple(rows)


DISTRIBUTION_BINS = 20
TOP_CATEGORIES = 12


def _share(count: float, total: int) -> float:
    return float(count) / total if total else 0.0


RUN_FACTS = ("seed", "train_rows", "test_rows", "fit_seconds", "training_sample")  # logged with the parameters, not parameters
OVERRIDES_PARAM = "overrides"  # logged by a training: the project's own parameters, over the preset's defaults


def sampling_of(run_facts: dict[str, Any]) -> SamplingRecord | None:
    """The training's sample as its run logged it (training_sample); None: it fitted every row."""
    logged = run_facts.get("training_sample")
    return None if logged is None else SamplingRecord.from_json(logged)


def differing_parameters(entries: Sequence[ComparedVersion]) -> list[str]:
    """The parameter names whose value is not the same in every compared version."""
    keys = sorted({key for entry in entries for key in entry.params})
    return [key for key in keys if len({repr(entry.params.get(key)) for entry in entries}) > 1]


class InsightsService:
    """The read-only views the window shows (Keel.insights); no store object leaves it."""

    def __init__(self, *, registry: Registry, workspace: Workspace, data: ProjectData) -> None:
        self._registry = registry
        self._workspace = workspace
        self._data = data

    def health(self, name: str, since: str | None = None) -> ProjectHealth:
        """One line of health for the project list: production version, metric now vs at
        training, open alerts, and a state: none | ok | warning | alert. With `since` (when the
        user last looked), the alerts opened and recovered since then count too: a project that
        had alerts is at least `warning` until the user has looked."""
        result = self._health(name)
        counted = self.alerts_since(name, since) if since else AlertsSince(opened=0, recovered=0)
        if not (counted.opened or counted.recovered):
            return dataclasses.replace(result, since=counted)
        reason = f"{counted.opened} alert(s) opened and {counted.recovered} recovered since you last looked"
        state = result.state
        if state in ("ok", "none") and result.production_version is not None:
            state = "warning"
        return dataclasses.replace(result, since=counted, state=state, reasons=(*result.reasons, reason))

    def alerts_since(self, name: str, since: str) -> AlertsSince:
        """How many alerts opened, and how many recovered by themselves, after `since` (UTC ISO time):
        a run can open and close ten alerts between two looks, leaving nothing open to see."""
        rows = self._registry.alerts(self._data.project(name).id)
        return AlertsSince(opened=sum(1 for a in rows if a.opened_at >= since),
                           recovered=sum(1 for a in rows if a.status == "recovered" and (a.closed_at or "") >= since))

    def production_card(self, name: str) -> ProductionCard:
        """What the Overview shows: the production model, since when, by whom and why,
        the metric now vs at training, and the recent monitored values (a sparkline)."""
        project = self._data.project(name)
        deployment, model_version = self._production_model_version(project)
        production = None
        if deployment is not None and model_version is not None:
            production = ProductionModel(version=deployment.version, deployed_at=deployment.deployed_at,
                                         by=deployment.by, reason=deployment.reason,
                                         is_rollback=deployment.is_rollback,
                                         metrics=self._data.model_metrics(model_version),
                                         sha256=model_version.sha256, notes=model_version.notes)
        rows = self._registry.recent_monitor_values(project.id, SPARKLINE_POINTS)
        measured = (r.value if r.value is not None else r.estimated_value for r in reversed(rows))
        sparkline = tuple(value for value in measured if value is not None)
        return ProductionCard(project=name, task=project.task, target=project.target, metric=project.metric,
                              settings=project.settings, health=self.health(name),
                              versions=len(self._registry.model_versions(project.id)),
                              dataset_versions=len(self._registry.dataset_versions(project.id)),
                              deployments=len(self._registry.deployments(project.id)), production=production,
                              sparkline=sparkline)

    def version_card(self, name: str, version: int) -> VersionCard:
        """Everything about one model version: parameters, metrics, the data it was trained on,
        library versions, sha256, who trained it and why, and its deployments."""
        project = self._data.project(name)
        model_version = self._registry.model_version(project.id, version)
        run = self._registry.run(model_version.run_id) if model_version.run_id else None
        facts = self._registry.run_params(model_version.run_id) if run and model_version.run_id else {}
        datasets = {d.version: d for d in self._data.dataset_versions(name)}
        used = run.dataset_versions if run else ()
        trained = self._registry.version_created_event(project.id, version)
        training = TrainingFacts(
            seed=facts.get("seed"), train_rows=facts.get("train_rows"), test_rows=facts.get("test_rows"),
            seconds=run.seconds if run else None, sample=sampling_of(facts),
            dataset_versions=tuple(TrainingDataset(version=v, rows=datasets[v].rows,
                                                   labelled_rows=datasets[v].labelled_rows, source=datasets[v].source)
                                   for v in used if v in datasets))
        return VersionCard(
            project=name, version=version, metric=project.metric, created_at=model_version.created_at,
            sha256=model_version.sha256, aliases=tuple(model_version.aliases),
            archived=model_version.archived, imported=run is None,
            parameters={k: v for k, v in self._version_parameters(model_version).items() if k != OVERRIDES_PARAM},
            parameter_overrides=facts.get(OVERRIDES_PARAM) if OVERRIDES_PARAM in facts else None,
            metrics=self._data.model_metrics(model_version), training=training,
            library_versions=dict(run.library_versions) if run else {},
            trained_by=trained.by if trained else None, why=trained.message if trained else "",
            deployments=tuple(VersionDeployment(at=d.deployed_at, by=d.by, reason=d.reason, rollback=d.is_rollback)
                              for d in self._registry.deployments(project.id) if d.version == version),
        )

    def compare_versions(self, name: str, versions: list[int], progress: Progress | None = None,
                         cancel_event: threading.Event | None = None) -> VersionComparison:
        """Side by side: recorded metrics (each on its own hold-out), metrics on labelled data that
        arrived after both were trained (when there is any), confusion matrices (classification)
        and feature importances."""
        import numpy as np

        from app.core.ml.evaluation import confusion

        report = progress or (lambda fraction, message: None)
        project = self._data.project(name)
        compared: list[ComparedVersion] = []
        loaded_models = []
        for index, version in enumerate(versions):
            if cancel_event is not None and cancel_event.is_set():
                from app.core.domain.errors import Cancelled

                raise Cancelled("comparison cancelled")
            report(index / len(versions), f"scoring v{version}")
            loaded = self._data.load_version(name, version)
            loaded_models.append(loaded)
            X, y, evaluated_proba = self._holdout(name, version, project)
            entry = ComparedVersion(version=version, metrics=self._data.model_metrics(loaded.model_version),
                                    rows=len(X), confusion=None, classes=(), importance_kind=None, importances={},
                                    params=self._version_parameters(loaded.model_version))
            if len(X):
                if project.task == "classification":
                    classes = [c.item() if hasattr(c, "item") else c for c in
                               getattr(loaded.model, "classes_", np.unique(y))]
                    predicted = (loaded.model.predict(X) if evaluated_proba is None
                                 else np.asarray(loaded.model.classes_)[evaluated_proba.argmax(axis=1)])
                    entry = dataclasses.replace(entry, classes=tuple(str(c) for c in classes),
                                                confusion=tuple(map(tuple, confusion(y, predicted, classes))))
                kind, by_feature = importances(loaded, X, y, project.task)
                entry = dataclasses.replace(entry, importance_kind=kind, importances=by_feature)
            compared.append(entry)
        common, common_metrics = self._common_metrics(project, loaded_models)
        if common is not None:
            compared = [dataclasses.replace(entry, common_metrics=metrics)
                        for entry, metrics in zip(compared, common_metrics)]
        report(1.0, "done")
        return VersionComparison(project=name, task=project.task, metric=project.metric, versions=tuple(compared),
                                 common=common)

    def feature_distribution(self, name: str, feature: str, dataset_version: int | None = None) -> FeatureDistribution:
        """How one feature is distributed in the production model's reference rows and in a batch
        (the latest by default): shares per bin (numbers, bins shared by both) or per category
        (the most frequent ones; missing values counted apart). What the drift score summarises."""
        import numpy as np
        import pandas as pd

        from app.core.ml import batch_reading

        project = self._data.project(name)
        kinds = project.schema.column_kinds()
        if feature not in kinds:
            raise NotFoundError(f"{name} has no feature column {feature!r}")
        production = self._data.production_version(name)
        reference = self._data.reference_frame(name, production) if production is not None else None
        versions = [d.version for d in self._data.dataset_versions(name)]
        batch = dataset_version if dataset_version is not None else (versions[-1] if versions else None)
        if reference is None or batch is None or production is None:
            raise NotFoundError(f"{name}: no production model or no batch to compare")
        ref, cur = reference[feature], batch_reading.column(self._data.dataset_path(name, batch), feature)
        shown = FeatureDistribution(
            project=name, feature=feature, dataset_version=batch, model_version=production,
            reference_rows=int(len(ref)), batch_rows=int(len(cur)),
            missing=MissingShares(reference=_share(ref.isna().sum(), len(ref)), batch=_share(cur.isna().sum(), len(cur))),
            kind="numeric", categories=(), edges=(), reference=(), batch=())
        if kinds[feature] == "categorical":
            ref_counts = ref.dropna().astype(str).value_counts()
            cur_counts = cur.dropna().astype(str).value_counts()
            categories = tuple(str(c) for c in
                               ref_counts.add(cur_counts, fill_value=0).sort_values(ascending=False).index[:TOP_CATEGORIES])
            return dataclasses.replace(shown, kind="categorical", categories=categories,
                                       reference=tuple(_share(ref_counts.get(c, 0), len(ref)) for c in categories),
                                       batch=tuple(_share(cur_counts.get(c, 0), len(cur)) for c in categories))
        ref_values = pd.to_numeric(ref, errors="coerce").dropna().to_numpy(dtype=float)
        cur_values = pd.to_numeric(cur, errors="coerce").dropna().to_numpy(dtype=float)
        both = np.concatenate([ref_values, cur_values])
        low, high = (float(both.min()), float(both.max())) if len(both) else (0.0, 1.0)
        edges = np.linspace(low, high if high > low else low + 1.0, DISTRIBUTION_BINS + 1)
        return dataclasses.replace(shown, edges=tuple(edges.tolist()),
                                   reference=tuple((np.histogram(ref_values, edges)[0] / max(1, len(ref))).tolist()),
                                   batch=tuple((np.histogram(cur_values, edges)[0] / max(1, len(cur))).tolist()))

    def _health(self, name: str) -> ProjectHealth:
        """The project's health, before the alerts since the user last looked are counted."""
        project = self._data.project(name)
        settings = project.settings
        metric = project.metric
        deployment, model_version = self._production_model_version(project)
        open_alerts = self._registry.open_alerts(project.id)
        result = ProjectHealth(project=name, metric=metric, production_version=None, training_value=None,
                               current_value=None, current_is_estimate=False, open_alerts=len(open_alerts),
                               state="none", reasons=(), since=AlertsSince(opened=0, recovered=0))
        if deployment is None or model_version is None:
            return dataclasses.replace(result, reasons=("no production model yet",))
        trained = self._data.model_metrics(model_version).get(metric)
        current, is_estimate = None, False
        last = self._last_monitor_value(project)
        if last is not None and last.model_version_id == model_version.id:
            if last.value is not None:
                current = last.value
            elif last.estimated_value is not None:
                current, is_estimate = last.estimated_value, True
        state: HealthState = "ok"
        reasons = []
        if open_alerts:
            state = "alert"
            reasons.append(f"{len(open_alerts)} open alert(s)")
        if current is not None:
            if settings.threshold is not None and past_threshold(metric, current, settings.threshold):
                state = "alert"
                reasons.append(f"{metric} {current:.3f} past the threshold {settings.threshold:g}")
            elif trained is not None and drop_from(metric, trained, current) > settings.max_drop:
                state = "alert" if state == "alert" else "warning"
                reasons.append(f"{metric} dropped from {trained:.3f} to {current:.3f}")
        return dataclasses.replace(result, production_version=deployment.version, training_value=trained,
                                   current_value=current, current_is_estimate=is_estimate, state=state,
                                   reasons=tuple(reasons))

    def _production_model_version(self, project: Project) -> tuple[Deployment | None, ModelVersion | None]:
        deployment = self._registry.current_deployment(project.id)
        if deployment is None:
            return None, None
        return deployment, self._registry.model_version_by_id(deployment.model_version_id)

    def _last_monitor_value(self, project: Project) -> MonitorResult | None:
        return self._registry.last_monitor_result(project.id)

    def _holdout(self, name: str, version: int, project: Project) -> tuple[Any, Any, Any]:
        """(X, y, the evaluated fit's probabilities or None) of a version's hold-out rows. A model refitted on
        all its rows saw them: its confusion matrix comes from the probabilities its evaluated fit gave them."""
        from app.core.ml import datasets

        reference = self._data.reference_frame(name, version)
        if reference is None or "__split__" not in reference:
            frame, _ = self._data.training_frame(name)
        else:
            frame = reference[reference["__split__"] == "holdout"]
            if frame.empty:
                frame = reference
        frame = frame[frame[project.target].notna()]
        if len(frame) > MAX_IMPORTANCE_ROWS:
            frame = frame.sample(MAX_IMPORTANCE_ROWS, random_state=0)
        return (datasets.to_model_frame(frame, project.schema), datasets.target_array(frame, project.schema),
                datasets.stored_holdout_proba(frame))

    def _unseen_by_all(self, project: Project,
                       model_versions: list[ModelVersion]) -> tuple[Any, Any, list[int]] | None:
        """Labelled rows ingested after the newest of these models was trained: data none of them
        saw, so their metrics on it compare like with like. -> (X, y, dataset versions) or None."""
        from app.core.ml import batch_reading, datasets

        newest = max(mv.created_at for mv in model_versions)
        later = [d for d in self._registry.dataset_versions(project.id)
                 if d.labelled_rows and d.created_at > newest]
        if not later:
            return None
        target = project.target
        frame = batch_reading.newest_labelled_rows([self._workspace.root / d.path for d in later], target, MAX_COMMON_ROWS)
        return (datasets.to_model_frame(frame, project.schema), datasets.target_array(frame, project.schema),
                [d.version for d in later])

    def _common_metrics(self, project: Project,
                        loaded_models: list[LoadedModel]) -> tuple[CommonRows | None, list[dict[str, float]]]:
        """The rows none of the models saw, and each model's metrics on them (None, []: no such rows)."""
        from app.core.ml.training import evaluate_pipeline

        common = self._unseen_by_all(project, [loaded.model_version for loaded in loaded_models])
        if common is None:
            return None, []
        X, y, dataset_versions = common
        return (CommonRows(rows=len(X), dataset_versions=tuple(dataset_versions)),
                [evaluate_pipeline(loaded.model, project.task, X, y) for loaded in loaded_models])

    def _version_parameters(self, model_version: ModelVersion) -> dict:
        """The preset and the estimator's parameters a version was trained with ({} for an import)."""
        if not model_version.run_id:
            return {}
        run = self._registry.run(model_version.run_id)
        params = self._registry.run_params(model_version.run_id)
        return {"preset": run.preset, **{k: v for k, v in sorted(params.items()) if k not in RUN_FACTS}}
