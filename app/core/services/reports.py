"""Reports a person can open anywhere: one self-contained HTML file holding a version's model
card followed by the monitoring of a period.

`build_report` gathers the facts (a typed Report, no markup); `render_report` turns them into
HTML with a Jinja2 template and matplotlib SVG charts (app/core/services/report_charts.py);
`write_report` does both and writes the file atomically, outside the workspace.

The period: with neither --version nor --since, the production version's card and its
monitoring since it was deployed. --version N: version N's card and the monitoring of its
latest time in production (none if it never was). --since DATE: the monitoring of every
version from DATE until now.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.domain.cards import CommonRows, ComparedVersion
from app.core.domain.clock import Clock
from app.core.domain.entities import Deployment, Event, MonitorResult, Project, Run
from app.core.domain.errors import KeelError
from app.core.domain.handoff import (
    DriftCell,
    FeatureDrift,
    FeatureValues,
    GateDecision,
    LaterData,
    LineageDataset,
    MetricValue,
    ModelCard,
    MonitoringReport,
    ProductionStint,
    Report,
    ReportBatch,
    ReportPeriod,
    ReportWritten,
    TrainingSummary,
)
from app.core.domain.settings import higher_is_better
from app.core.ml.training import PRESET_LABELS
from app.core.services.project_data import ProjectData
from app.core.store.registry import Registry
from app.core.store.workspace import Workspace

if TYPE_CHECKING:
    from app.core.services.insights import InsightsService

MAX_DISTRIBUTION_FEATURES = 6  # drifted features whose distributions are drawn
DECISION_EVENTS = ("deployed", "rolled_back", "retrain_decision", "alert_acknowledged", "change_detected",
                   "settings_changed")
BOOKKEEPING_PARAMS = {"preset", "overrides", "holdout_share", "cv_folds", "seed", "train_rows", "test_rows",
                      "fit_seconds", "source", "accepted_types", "training_sample"}


# --------------------------------------------------------------------------- arguments
def parse_since(text: str | None) -> str | None:
    """A date or date-time in local time (the GUI shows local times) -> ISO 8601 UTC, as stored."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise KeelError(f"--since {text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a naive time is local
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- gathering
def _period(stints: tuple[ProductionStint, ...], since: str | None, version: int) -> ReportPeriod:
    if since is not None:
        return ReportPeriod(start=since, end=None, label="since the given date")
    if not stints:
        return ReportPeriod(start=None, end=None, label=f"v{version} was never in production: no monitoring to report")
    latest = stints[-1]
    label = f"while v{version} was in production" if latest.until else f"since v{version} was deployed"
    return ReportPeriod(start=latest.deployed_at, end=latest.until, label=label)


def _decision(event: Event) -> GateDecision:
    """A gate decision from its audit-log line (the details the policy recorded)."""
    details = event.details
    return GateDecision(
        at=event.at, by=event.by, message=event.message, decision=details.get("decision", ""),
        champion_version=details.get("champion_version"), champion_value=details.get("champion_value"),
        challenger_value=details.get("challenger_value"), gate_rows=details.get("gate_rows"),
        test=details.get("test"), p_value=details.get("p_value"), accepted=details.get("accepted"))


def _deployments_of(deployments: list[Deployment], version: int) -> tuple[ProductionStint, ...]:
    """The times this version went into production, each with when it was replaced (None: still there)."""
    stints = []
    for index, deployment in enumerate(deployments):
        if deployment.version != version:
            continue
        following = deployments[index + 1] if index + 1 < len(deployments) else None
        stints.append(ProductionStint(deployed_at=deployment.deployed_at, by=deployment.by, reason=deployment.reason,
                                      is_rollback=deployment.is_rollback,
                                      until=following.deployed_at if following else None,
                                      replaced_by=following.version if following else None))
    return tuple(stints)


def _largest_first(importances: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(importances.items(), key=lambda item: -abs(item[1])))


def _later_data(common: CommonRows | None, scored: ComparedVersion) -> LaterData | None:
    """A version's metrics on the labelled rows that arrived after it was trained (None: none yet)."""
    if common is None:
        return None
    return LaterData(rows=common.rows, dataset_versions=common.dataset_versions, metrics=scored.common_metrics or {})


def _read_only(values: Any) -> Any:
    values.flags.writeable = False
    return values


def _in_period(at: str | None, start: str, end: str | None) -> bool:
    return at is not None and at >= start and (end is None or at < end)


def _batch(result: MonitorResult) -> ReportBatch:
    return ReportBatch(
        at=result.at, dataset_version=result.dataset_version, model_version=result.model_version, rows=result.rows,
        labelled_rows=result.labelled_rows, value=result.value, estimated_value=result.estimated_value,
        drift_share=result.drift_share, drifted=tuple(result.drifted_features), fired=tuple(result.details.fired()))


def _drift_cell(result: MonitorResult, feature: str) -> DriftCell | None:
    """A feature's drift statistics on one monitored batch (None: not measured there)."""
    stats = result.details.features.get(feature)
    if stats is None:
        return None
    return DriftCell(dataset_version=result.dataset_version, psi=stats.psi, drifted=stats.drifted,
                     effect=stats.effect, kind=stats.kind)


def _feature_drift(results: list[MonitorResult]) -> tuple[FeatureDrift, ...]:
    """Per feature: its statistics on each batch of the period, and how often it drifted."""
    names: list[str] = []
    for result in results:
        names.extend(n for n in result.details.features if n not in names)
    rows = []
    for name in names:
        cells = tuple(_drift_cell(result, name) for result in results)
        measured = [cell for cell in cells if cell is not None]
        rows.append(FeatureDrift(name=name, cells=cells,
                                 drifted_in=tuple(cell.dataset_version for cell in measured if cell.drifted),
                                 kind=next((cell.kind for cell in measured), "numeric")))
    return tuple(sorted(rows, key=lambda row: (-len(row.drifted_in), row.name)))


def render_report(report: Report) -> str:
    """The report as one self-contained HTML document: inline CSS and SVG, no script, nothing fetched."""
    import jinja2

    from app.core.services import report_charts

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("app.core.services", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(number=_number, when=_when, short_hash=lambda text: (text or "")[:12])
    charts = report_charts.charts_for(report)
    return environment.get_template("report.html.j2").render(report=report, card=report.card,
                                                             monitoring=report.monitoring, charts=charts)


def _number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}" if value == value else "n/a"


def _when(iso: str | None) -> str:
    from app.core.domain.clock import to_local_display

    return to_local_display(iso) if iso else "now"


class ReportService:
    """The one-file HTML report of a model version and its monitoring (Keel.reports); the model card's
    scores come from the insights service."""

    def __init__(self, *, registry: Registry, workspace: Workspace, data: ProjectData, clock: Clock, insights: InsightsService) -> None:
        self._registry = registry
        self._workspace = workspace
        self._data = data
        self._clock = clock
        self._insights = insights

    def build_report(self, name: str, version: int | None = None, since: str | None = None) -> Report:
        """Everything the report shows, as data (since: ISO 8601 UTC, see parse_since)."""
        project = self._data.project(name)
        production = self._data.production_version(name)
        if version is None:
            if production is None:
                raise KeelError(f"project {name!r} has no production model yet: give --version N")
            version = production
        card = self._model_card(project, version)
        period = _period(card.deployments, since, version)
        monitoring = self._monitoring_report(project, period.start, period.end) if period.start is not None else None
        return Report(project=name, generated_at=self._clock(), production_version=production, card=card,
                      period=period, monitoring=monitoring)

    def _model_card(self, project: Project, version: int) -> ModelCard:
        registry = self._registry
        model_version = registry.model_version(project.id, version)
        run = registry.run(model_version.run_id) if model_version.run_id else None
        params = registry.run_params(run.id) if run else {}
        metrics = self._data.model_metrics(model_version)
        compared = self._insights.compare_versions(project.name, [version])  # the scores on its hold-out
        scored = compared.versions[0]
        events = registry.events(project.id)
        return ModelCard(
            version=version, created_at=model_version.created_at, task=project.task, target=project.target,
            metric=project.metric, notes=model_version.notes, aliases=tuple(model_version.aliases),
            archived=model_version.archived, preset=run.preset if run else None,
            preset_label=PRESET_LABELS.get(run.preset, run.preset) if run and run.preset else None,
            seed=run.seed if run else None, overrides=params.get("overrides") or {},
            parameters={k: v for k, v in sorted(params.items()) if k not in BOOKKEEPING_PARAMS},
            kind=run.kind if run else "unknown", import_source=params.get("source"),
            training=self._training_data(project, run, params),
            trained=self._registry.version_created_event(project.id, version),
            metrics=tuple(MetricValue(name=k, value=v, primary=k == project.metric) for k, v in
                          sorted(metrics.items(), key=lambda item: (item[0] != project.metric, item[0]))),
            holdout_rows=params.get("test_rows"), train_rows=params.get("train_rows"),
            refit_on_all_rows=bool(params.get("refit_on_all_rows")),
            scored_rows=scored.rows, classes=scored.classes, confusion=scored.confusion,
            importance_kind=scored.importance_kind, importances=_largest_first(scored.importances),
            later_data=_later_data(compared.common, scored),
            gate=tuple(_decision(e) for e in events
                       if e.kind == "retrain_decision" and e.details.get("challenger_version") == version),
            deployments=_deployments_of(registry.deployments(project.id), version),
            library_versions=dict(run.library_versions) if run else {},
            sha256=model_version.sha256, artifact=Path(model_version.artifact_path).name, settings=project.settings)

    def _training_data(self, project: Project, run: Run | None, params: dict) -> TrainingSummary:
        used = set(run.dataset_versions) if run else set()
        rows = self._registry.dataset_versions(project.id)
        by_id: dict[int | None, int] = {row.id: row.version for row in rows}
        window = project.settings.window
        return TrainingSummary(
            dataset_versions=tuple(LineageDataset(version=row.version, rows=row.rows, labelled_rows=row.labelled_rows,
                                                  source=row.source, created_at=row.created_at,
                                                  sha256=row.content_sha256, parent=by_id.get(row.parent_id))
                                   for row in rows if row.version in used),
            train_rows=params.get("train_rows"), holdout_rows=params.get("test_rows"),
            holdout_share=params.get("holdout_share"), cv_folds=params.get("cv_folds"),
            window="all" if window is None else window)

    def _monitoring_report(self, project: Project, start: str, end: str | None) -> MonitoringReport:
        registry = self._registry
        settings = project.settings
        results = [r for r in registry.monitor_results(project.id) if _in_period(r.at, start, end)]
        deployments = registry.deployments(project.id)
        features = _feature_drift(results)
        alerts = [a for a in registry.alerts(project.id)
                  if a.opened_at < (end or "\uffff") and (a.closed_at is None or a.closed_at >= start)]
        return MonitoringReport(
            metric=project.metric, higher_is_better=higher_is_better(project.metric), threshold=settings.threshold,
            max_drop=settings.max_drop, drift_share_limit=settings.drift_share,
            batches=tuple(_batch(r) for r in results),
            deployments=tuple(d for d in deployments if _in_period(d.deployed_at, start, end)),
            training_values=self._training_values(project, results), features=features,
            distributions=self._distributions(project, results, features), alerts=tuple(alerts),
            decisions=tuple(e for e in registry.events(project.id)
                            if e.kind in DECISION_EVENTS and _in_period(e.at, start, end)))

    def _training_values(self, project: Project, results: list[MonitorResult]) -> dict[int, float | None]:
        values = {}
        for model_version in {r.model_version for r in results}:
            row = self._registry.model_version(project.id, model_version)
            values[model_version] = self._data.model_metrics(row).get(project.metric)
        return values

    def _distributions(self, project: Project, results: list[MonitorResult],
                       features: tuple[FeatureDrift, ...]) -> tuple[FeatureValues, ...]:
        """Reference (the monitoring model's training rows) vs current (the latest batch where the
        feature drifted) values of the drifted features."""
        from app.core.ml import datasets

        schema = project.schema
        by_dataset = {r.dataset_version: r for r in results}
        frames: dict[tuple, object] = {}

        def values(kind: str, key: int) -> Any:
            if (kind, key) not in frames:
                if kind == "reference":
                    reference = self._data.reference_frame(project.name, key)
                    if reference is not None and "__split__" in reference:
                        reference = reference[reference["__split__"] == "train"]
                    frames[(kind, key)] = None if reference is None else datasets.to_model_frame(reference, schema)
                else:
                    frames[(kind, key)] = datasets.to_model_frame(self._data.dataset_frame(project.name, key), schema)
            return frames[(kind, key)]

        drawn = []
        for feature in [f for f in features if f.drifted_in][:MAX_DISTRIBUTION_FEATURES]:
            dataset_version = feature.drifted_in[-1]
            model_version = by_dataset[dataset_version].model_version
            reference = values("reference", model_version)
            if reference is None or dataset_version is None:
                continue
            current = values("batch", dataset_version)
            drawn.append(FeatureValues(name=feature.name, kind=feature.kind, model_version=model_version,
                                       dataset_version=dataset_version,
                                       reference=_read_only(reference[feature.name].to_numpy()),
                                       current=_read_only(current[feature.name].to_numpy())))
        return tuple(drawn)

    def write_report(self, name: str, output: str | os.PathLike, version: int | None = None,
                     since: str | None = None) -> ReportWritten:
        """Write the report to output (an .html file outside the workspace); record it in the audit log."""
        from app.core.services.paths import check_output_path, user_output

        destination = check_output_path(self._workspace.root, output).resolve()  # refused before the work
        if destination.is_dir():
            raise KeelError(f"--output {output}: is a directory; give a file name such as report.html")
        report = self.build_report(name, version, parse_since(since))
        html = render_report(report).encode("utf-8")
        with user_output(self._workspace.root, destination) as tmp:
            tmp.write_bytes(html)
        project = self._data.project(name)
        version, period = report.card.version, report.period
        with self._registry.transaction():
            self._registry.add_event(project, "report_exported", f"report of v{version} written to {destination}",
                                     "user", {"version": version, "since": period.start, "output": str(destination)})
        return ReportWritten(project=name, version=version, output=str(destination), bytes=len(html),
                             period_start=period.start, period_end=period.end,
                             batches=len(report.monitoring.batches) if report.monitoring else 0)
