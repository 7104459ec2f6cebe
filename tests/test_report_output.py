"""The HTML report stays what it is, byte for byte: a small project monitored on a fixed clock
(a policy retrain, drift, alerts) and reported twice, the production version and the one it
replaced (tests/fixtures/report_expected/, with each model file's sha256 and the library
versions of this machine filled in); and `report --json` keeps its keys in order."""

import dataclasses
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli
from loop_helpers import batch
from store_helpers import opened_store

from app.core.domain.clock import Clock
from app.core.domain.handoff import MetricValue, Report, ReportWritten
from app.core.services.lifecycle import Keel
from app.demo.simulator import initial_training_data

EXPECTED = Path(__file__).parent / "fixtures" / "report_expected"
REPORT_KEYS = ["project", "version", "output", "bytes", "period_start", "period_end", "batches"]
START_SECONDS = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC
# (input shift, concept change) of each monitored batch: the first retrain comes with the drift,
# the second once the concept has changed.
BATCHES = ((0.0, 0.0), (1.0, 1.0), (1.0, 1.0))


class SteppedClock:
    """Now, moved on by the test between steps (every call within a step reads the same time)."""

    def __init__(self) -> None:
        self.seconds = START_SECONDS

    def clock(self) -> Clock:
        return Clock(lambda: self.seconds)


def monitored_project(root: Path, now: SteppedClock) -> Path:
    """`loan`: v1 trained and deployed, then three batches monitored under the auto policy."""
    workspace = root / "workspace"
    keel = Keel.open(workspace, clock=now.clock())
    try:
        data = root / "loan-initial.csv"
        initial_training_data(rows=300, seed=3).to_csv(data, index=False)
        keel.create_project("loan", data, "default", "classification",
                            {"preset": "logreg", "threshold": 0.8, "policy": "auto", "window": None})
        now.seconds += 60
        version = keel.train("loan").version
        now.seconds += 60
        keel.deploy("loan", version)
        for index, (shift, concept) in enumerate(BATCHES):
            now.seconds += 3600
            path = root / f"batch-{index}.csv"
            batch(100 + index, rows=150, shift=shift, concept=concept).to_csv(path, index=False)
            keel.ingest("loan", path)
            now.seconds += 60
            keel.policy.monitor("loan")
    finally:
        keel.close()
    return workspace


@pytest.fixture
def utc_local_time(monkeypatch):
    """The report shows local times: this machine's zone is UTC while a test runs."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    now = SteppedClock()
    workspace = monitored_project(tmp_path_factory.mktemp("report-output"), now)
    now.seconds += 3600
    return workspace, now


def written_report(workspace: Path, now: SteppedClock, output: Path, **options) -> dict:
    """Write a report on the stepped clock; -> the typed result's document (what `report --json` prints)."""
    keel = Keel.open(workspace, clock=now.clock())
    try:
        result = keel.reports.write_report("loan", output, **options)
    finally:
        keel.close()
    assert isinstance(result, ReportWritten) and pickle.loads(pickle.dumps(result)) == result
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.bytes = 0  # type: ignore[misc]
    return result.to_json()


def facts_of(workspace: Path, version: int) -> dict[str, str]:
    """The values of a version that differ from machine to machine: its sha256 (skops files are not
    byte-stable) and the versions of the libraries it was trained with."""
    keel = Keel.open(workspace)
    try:
        with opened_store(keel) as registry:
            model_version = registry.model_version(keel.project("loan").id, version)
            return {"sha256": model_version.sha256, **registry.run(model_version.run_id).library_versions}
    finally:
        keel.close()


def expected_report(name: str, values: dict[str, str]) -> str:
    text = (EXPECTED / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    assert "@@" not in text, "a value of the expected report was not filled in"
    return text


@pytest.mark.parametrize(("name", "options", "version", "batches"), [
    ("production.html", {}, 2, 3),
    ("replaced-v1.html", {"version": 1}, 1, 0),
])
def test_the_report_is_the_same_html_it_always_was(project, tmp_path, utc_local_time, name, options, version, batches):
    workspace, now = project
    output = tmp_path / name
    result = written_report(workspace, now, output, **options)
    html = output.read_text(encoding="utf-8")
    assert html == expected_report(name, facts_of(workspace, version))
    assert list(result) == REPORT_KEYS
    assert (result["project"], result["version"], result["output"], result["bytes"], result["batches"]) == (
        "loan", version, str(output), len(html.encode("utf-8")), batches)


def test_report_json_keeps_its_keys_and_values(project, tmp_path, capsys):
    workspace, _ = project
    output = tmp_path / "cli.html"
    code, printed, _ = cli(capsys, workspace, "report", "loan", "--version", "1", "--output", str(output))
    assert code == 0 and list(printed) == REPORT_KEYS
    assert printed == {"project": "loan", "version": 1, "output": str(output), "bytes": output.stat().st_size,
                       "period_start": "2026-09-21T14:15:20.000+00:00", "period_end": "2026-09-21T15:16:20.000+00:00",
                       "batches": 0}


def test_build_report_hands_a_frozen_typed_report_that_pickles(project, utc_local_time):
    workspace, now = project
    keel = Keel.open(workspace, clock=now.clock())
    try:
        report = keel.reports.build_report("loan")
    finally:
        keel.close()
    assert isinstance(report, Report) and (report.card.version, report.production_version) == (2, 2)
    assert report.period.label == "since v2 was deployed" and report.monitoring is not None
    assert [batch.dataset_version for batch in report.monitoring.batches] == [2, 3, 4]
    assert report.card.gate[0].decision == "retrained_deployed" and report.card.gate[0].champion_version == 1
    assert report.card.metrics[0] == MetricValue(name="accuracy", value=report.card.metrics[0].value, primary=True)
    drawn = report.monitoring.distributions
    assert drawn and not drawn[0].reference.flags.writeable and not drawn[0].current.flags.writeable
    for value in (report, report.card, report.monitoring, report.monitoring.batches[0], drawn[0]):
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.project = "changed"  # type: ignore[misc, union-attr]
    again = pickle.loads(pickle.dumps(report))  # crosses the window's child process as it is
    assert again == report
    for copied, item in zip(again.monitoring.distributions, drawn, strict=True):  # the values, left out of ==
        np.testing.assert_array_equal(copied.reference, item.reference)
        np.testing.assert_array_equal(copied.current, item.current)
