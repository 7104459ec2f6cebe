"""The two report screenshots in docs/, taken in a real browser (Debian's headless chromium).

    .venv/bin/python scripts/report_screenshots.py [--workspace DIR] [--keep DIR]

Builds the demo project and plays its whole data stream through monitoring (as the
window does on an empty workspace: a concept change, alerts, a policy retrain and
redeploy), then a few batches whose inputs shift (feature drift), writes
the default report (the production model card, then its monitoring since it was deployed),
prints each report's size, and saves docs/report-model-card.png (the top of the page) and
docs/report-monitoring.png (the monitoring section: the same page with the card hidden).
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DOCS = ROOT / "docs"
WINDOW = "1200,2400"
SHIFTED_BATCHES = 5


def play_demo(folder: Path) -> None:
    """The demo project with its whole stream monitored, batch by batch."""
    from app.core.services.lifecycle import Keel
    from app.demo import DEMO_PROJECT
    from app.demo.demo_project import create_demo
    from app.demo.demo_stream import DEMO_STREAM, demo_batch
    from app.demo.simulator import make_batch

    if folder.exists():
        shutil.rmtree(folder)
    keel = Keel.open(folder)
    try:
        create_demo(keel)
        batches = [demo_batch(index) for index in range(DEMO_STREAM.batches)]
        # the demo stream changes the concept only; inputs that shift show the drift section too
        batches += [make_batch(DEMO_STREAM.batch_rows, seed=900 + step, concept=1.0, shift=step / SHIFTED_BATCHES)
                    for step in range(1, SHIFTED_BATCHES + 1)]
        for index, batch in enumerate(batches):
            path = folder / "demo" / f"demo-batch-{index + 1:03d}.csv"
            batch.to_csv(path, index=False)
            keel.ingest(DEMO_PROJECT, path, by="scheduler")
            keel.policy.monitor(DEMO_PROJECT, by="scheduler")
    finally:
        keel.close()


def write_report(workspace: Path, output: Path) -> int:
    from app.core.services.lifecycle import Keel
    from app.demo import DEMO_PROJECT

    keel = Keel.open(workspace)
    try:
        return keel.reports.write_report(DEMO_PROJECT, output).bytes
    finally:
        keel.close()


def monitoring_only(html: Path) -> Path:
    """The same page with the model card hidden, so the monitoring section starts at the top
    (headless chromium's --screenshot ignores a #fragment)."""
    copy = html.with_name(html.stem + "-monitoring.html")
    text = html.read_text(encoding="utf-8")
    copy.write_text(text.replace("</style>", "#model-card, nav { display: none; }</style>", 1), encoding="utf-8")
    return copy


def screenshot(html: Path, png: Path) -> None:
    profile = tempfile.mkdtemp(prefix="keel-chromium-")
    try:
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={WINDOW}",
             html.as_uri()],
            check=True, capture_output=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", default=str(Path(tempfile.gettempdir()) / "keel-report-demo"))
    parser.add_argument("--reuse", action="store_true", help="keep an already played workspace")
    args = parser.parse_args()
    workspace = Path(args.workspace)
    if not (args.reuse and (workspace / "registry.db").exists()):
        play_demo(workspace)
    html = Path(tempfile.mkdtemp(prefix="keel-report-")) / "demo-credit-report.html"
    size = write_report(workspace, html)
    print(f"report {html}: {size:,} bytes ({size / 1e6:.2f} MB)")
    screenshot(html, DOCS / "report-model-card.png")
    screenshot(monitoring_only(html), DOCS / "report-monitoring.png")
    print(f"saved {DOCS / 'report-model-card.png'} and {DOCS / 'report-monitoring.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
