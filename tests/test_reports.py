"""HTML reports: a version's model card and its monitoring, in one self-contained file."""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from loop_helpers import batch, cli, make_project

from app.core.domain.handoff import ReportWritten
from app.core.services import reports
from app.core.services.lifecycle import Keel
from app.demo import DEMO_PROJECT

DEMO_REPORT_LIMIT = 1_000_000


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    """A deployed logreg project with four monitored batches, the last two with shifted inputs."""
    workspace = tmp_path_factory.mktemp("reports") / "workspace"
    keel = make_project(workspace, settings={"threshold": 0.8})
    for index, shift in enumerate((0.0, 0.0, 1.0, 1.0)):
        path = workspace / f"batch-{index}.csv"
        batch(100 + index, shift=shift).to_csv(path, index=False)
        keel.ingest("loan", path)
        keel.policy.monitor("loan")
    keel.close()
    return workspace


def write(workspace: Path, output: Path, **options) -> tuple[ReportWritten, str]:
    keel = Keel.open(workspace)
    try:
        result = keel.reports.write_report("loan", output, **options)
    finally:
        keel.close()
    return result, output.read_text(encoding="utf-8")


class Resources(HTMLParser):
    """Every attribute that makes a browser load something, and every <script>/<style> body."""

    LOADING = {"src", "href", "xlink:href", "data", "poster", "srcset", "action", "background"}

    def __init__(self):
        super().__init__()
        self.references: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in self.LOADING and value is not None:
                self.references.append((tag, name, value))
            if name == "style" and value:
                self.styles.append(value)
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def assert_self_contained(html: str) -> None:
    parser = Resources()
    parser.feed(html)
    assert "script" not in parser.tags and "iframe" not in parser.tags and "object" not in parser.tags
    assert "link" not in parser.tags, "a <link> loads a stylesheet or an icon from elsewhere"
    for tag, name, value in parser.references:
        if tag == "a" and name == "href" and (value.startswith("#") or value.startswith("https://")):
            continue  # in-page anchors, and links a reader may follow: nothing is loaded
        assert value.startswith("#"), f"<{tag} {name}={value!r}> loads something from outside the file"
    for style in parser.styles:
        assert "@import" not in style
        for target in re.findall(r"url\(\s*['\"]?([^)'\"]*)", style):
            assert target.startswith("#") or target.startswith("data:"), f"style loads {target!r}"
    assert "svg" in parser.tags


def test_default_report_is_the_production_card_then_its_monitoring(monitored, tmp_path, store):
    result, html = write(monitored, tmp_path / "report.html")
    assert result.version == 1 and result.batches == 4 and result.period_end is None
    keel = Keel.open(monitored)
    try:
        model_version = store(keel).model_version(keel.project("loan").id, 1)
        params = store(keel).run_params(model_version.run_id)
        deployed_at = store(keel).current_deployment(keel.project("loan").id).deployed_at
    finally:
        keel.close()
    assert result.period_start == deployed_at
    card, monitoring = html.split('<section id="monitoring">')
    assert "Model card: v1" in card and "Logistic regression" in card and "<code>default</code>" in card
    assert f"{params['test_rows']:,} labelled rows kept out of training" in card
    assert "Confusion matrix" in card and "true \\ predicted" in card
    assert model_version.sha256 in card and "scikit-learn" in card and "skops" in card
    assert "loan-initial.csv" in card  # the training data's source file
    assert "still in production" in card
    assert 'id="importances"' in card and "<svg" in card.split('id="importances"')[1]
    for dataset_version in (2, 3, 4, 5):
        assert f"<td class=\"num\">v{dataset_version}</td>" in monitoring
    assert "Threshold: 0.8" in monitoring
    assert "Reference vs current distributions" in monitoring and "<strong>income</strong>" in monitoring
    assert "drifted feature(s) on dataset v4" in monitoring  # the drift alert's message


def test_report_opens_anywhere_nothing_loaded_from_outside(monitored, tmp_path):
    _, html = write(monitored, tmp_path / "report.html")
    assert_self_contained(html)
    assert "@media print" in html and "@page" in html


def test_report_of_a_version_never_deployed_says_so(monitored, tmp_path):
    keel = Keel.open(monitored)
    try:
        version = keel.train("loan").version
    finally:
        keel.close()
    result, html = write(monitored, tmp_path / "v2.html", version=version)
    assert result.version == version and result.period_start is None and result.batches == 0
    assert f"v{version} was never in production" in html and "Never deployed." in html
    assert_self_contained(html)


def test_report_of_an_imported_version_says_where_it_came_from(monitored, tmp_path):
    keel = Keel.open(monitored)
    try:
        keel.export_model("loan", 1, tmp_path / "outside.skops")
        version = keel.import_model("loan", tmp_path / "outside.skops").version
    finally:
        keel.close()
    _, html = write(monitored, tmp_path / "imported.html", version=version)
    assert "imported from <code>" in html and "outside.skops" in html
    assert "Scored on the project's training data when it was imported" in html
    assert "an imported model has no hold-out" in html


def test_report_since_a_date_covers_every_version_monitored_since(monitored, tmp_path):
    result, html = write(monitored, tmp_path / "since.html", since="2000-01-01")
    assert result.batches == 4 and result.period_start == reports.parse_since("2000-01-01")
    assert "since the given date" in html.lower()


def test_report_cli_refuses_bad_input_and_writes_nothing(monitored, tmp_path, capsys):
    inside = monitored / "report.html"
    code, out = cli(capsys, monitored, "report", "loan", "--output", str(inside))
    assert code == 2 and "inside the workspace" in out["error"]["message"] and not inside.exists()
    outside = tmp_path / "r.html"
    for args, words in ((["--since", "last week"], "is not a date"), (["--version", "99"], "unknown model version"),
                        ([], None)):
        code, out = cli(capsys, monitored, "report", "nope" if words is None else "loan", *args,
                        "--output", str(outside))
        assert code == 2 and (words or "unknown project") in out["error"]["message"]
        assert not outside.exists()
    code, out = cli(capsys, monitored, "report", "loan", "--output", str(tmp_path))
    assert code == 2 and "is a directory" in out["error"]["message"]


def test_report_cli_writes_the_file_and_records_it(monitored, tmp_path, capsys):
    output = tmp_path / "cli.html"
    code, out = cli(capsys, monitored, "report", "loan", "--output", str(output))
    assert code == 0 and out["output"] == str(output) and out["bytes"] == output.stat().st_size
    assert set(out) >= {"project", "version", "output", "bytes", "period_start", "period_end", "batches"}
    code, history = cli(capsys, monitored, "history", "loan")
    assert history["events"][-1]["kind"] == "report_exported"


def test_project_without_production_model_needs_a_version(workspace, tmp_path, capsys):
    make_project(workspace, deploy=False).close()
    code, out = cli(capsys, workspace, "report", "loan", "--output", str(tmp_path / "r.html"))
    assert code == 2 and "--version" in out["error"]["message"]


def test_demo_report_is_under_one_megabyte(demo_workspace, tmp_path):
    """The demo project (built once per test session, gui_fixtures) with its whole stream monitored
    (a concept change, alerts, retrains)."""
    from app.demo.demo_stream import DEMO_STREAM, demo_batch

    keel = Keel.open(demo_workspace)
    try:
        for index in range(DEMO_STREAM.batches):
            path = tmp_path / f"demo-{index}.csv"
            demo_batch(index).to_csv(path, index=False)
            keel.ingest(DEMO_PROJECT, path, by="scheduler")
            keel.policy.monitor(DEMO_PROJECT, by="scheduler")
        result = keel.reports.write_report(DEMO_PROJECT, tmp_path / "demo.html", since="2000-01-01")
    finally:
        keel.close()
    assert result.batches == DEMO_STREAM.batches
    assert 20_000 < result.bytes <= DEMO_REPORT_LIMIT
    assert_self_contained((tmp_path / "demo.html").read_text(encoding="utf-8"))


@pytest.mark.parametrize("outside", [
    '<img src="logo.png">', '<link rel="stylesheet" href="style.css">', '<script src="x.js"></script>',
    "<style>@import 'https://example.org/x.css';</style>", '<div style="background: url(https://e.org/a.png)"></div>',
    '<svg><image xlink:href="http://e.org/a.png"/></svg>',
])
def test_self_containment_check_catches_anything_loaded_from_outside(outside):
    with pytest.raises(AssertionError):
        assert_self_contained(f"<html><body><svg></svg>{outside}</body></html>")


@pytest.mark.parametrize("command", ["report", "export-mlflow"])
def test_no_output_reaches_into_the_workspace_directly_through_dots_or_a_symlink(monitored, tmp_path, capsys, command):
    link = tmp_path / "link-to-workspace"
    link.symlink_to(monitored, target_is_directory=True)
    ways = [monitored / "report.html", monitored / "artifacts", tmp_path / ".." / tmp_path.name / "link-to-workspace" / "x",
            link / "registry.db", link / "new-folder"]
    for output in ways:
        before = sorted(str(p) for p in monitored.rglob("*") if "logs" not in p.parts and "locks" not in p.parts)
        args = (["report", "loan"] if command == "report"
                else ["export", "loan", "--version", "1", "--format", "mlflow"])
        code, out = cli(capsys, monitored, *args, "--output", str(output))
        assert code == 2 and "inside the workspace" in out["error"]["message"], (output, out)
        after = sorted(str(p) for p in monitored.rglob("*") if "logs" not in p.parts and "locks" not in p.parts)
        assert after == before, output


def test_the_card_of_a_model_refitted_on_all_rows_says_its_hold_out_rows_were_refitted_on(workspace, tmp_path):
    from app.core.domain.entities import TrainingData

    keel = make_project(workspace)
    try:
        rows, versions = keel.training_frame("loan")
        version = keel.train("loan", data=TrainingData(rows, versions, refit_on_all_rows=True)).version
    finally:
        keel.close()
    _, html = write(workspace, tmp_path / "report.html", version=version)
    card = html.split('<section id="monitoring">')[0]
    assert "kept out of training" not in card
    assert f"the model was then fitted again on all {len(rows):,} rows" in card
