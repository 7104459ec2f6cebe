"""The headless CLI: `python main.py [--workspace DIR] <command> [arguments] [--json]`.

A function, `main(argv) -> int`, so tests call it in-process. Exit codes: 0 done,
2 the user can fix it, 1 anything else. With --json, stdout holds exactly one JSON
document, on failure too.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from app.core.domain.errors import Cancelled, KeelError, is_disk_full
from app.core.domain.results import ShownAsJson
from app.core.domain.settings import parse_param, parse_prediction_log, parse_window
from app.core.domain.upkeep import DemoCreated
from app.frontends import recovery_cli, runner, serve_cli
from app.frontends.exit_codes import INTERRUPTED, USER_FIXABLE, exit_code_for

if TYPE_CHECKING:
    from app.core.domain.handoff import PushResult, ReportWritten
    from app.core.services.lifecycle import Keel

Handler = Callable[["Keel", argparse.Namespace], Any]  # a command: its result (a dict or a typed result)

log = logging.getLogger("keel.cli")
# Until the workspace log is set up, records go nowhere rather than to logging's
# last-resort handler, which would print a traceback on the terminal.
logging.getLogger("keel").addHandler(logging.NullHandler())


# A full disk is the user's to fix (free space, then run again): exit 2, like a bad argument.
DISK_FULL_EXIT_CODE = USER_FIXABLE
# Opening a workspace rewrites stale production.json files, except for these commands, which
# report the workspace as they find it.
COMMANDS_THAT_REPORT_AS_IS = {"verify"}


class UsageError(KeelError):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so --json can report usage errors too."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", dest="preset", help="preset: logreg|ridge|random_forest|hgb")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="preset hyperparameter")
    parser.add_argument("--clear-params", action="store_true", dest="clear_params",
                        help="drop the preset parameters set before (then apply any --param)")
    parser.add_argument("--metric")
    parser.add_argument("--threshold", type=float, help="absolute floor (ceiling for error metrics)")
    parser.add_argument("--max-drop", type=float, dest="max_drop")
    parser.add_argument("--drift-share", type=float, dest="drift_share")
    parser.add_argument("--policy", choices=["off", "alert", "approve", "auto"])
    parser.add_argument("--retrain-after-rows", dest="retrain_after_rows", help="N, or 'off'")
    parser.add_argument("--window", help="all | N (newest rows) | adaptive")
    parser.add_argument("--margin", type=float)
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--schedule", help="'every 10m' (s, m, h, d)")
    parser.add_argument("--cron", help="a 5-field cron expression")
    parser.add_argument("--schedule-off", action="store_true", dest="schedule_off", help="disable the schedule")
    parser.add_argument("--schedule-on", action="store_true", dest="schedule_on", help="enable the schedule")
    parser.add_argument("--cv", type=int, dest="cv_folds", help="k-fold cross-validation folds (0: off)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--no-threshold", action="store_true", dest="no_threshold", help="remove the threshold")
    parser.add_argument("--id-column", dest="id_column",
                        help="the column that names each row (never a feature; joins late labels)")
    parser.add_argument("--prediction-log", dest="prediction_log",
                        help="off | full | FRACTION: share of scored rows recorded (default: full with an ID column)")
    parser.add_argument("--prediction-log-rows", type=int, dest="prediction_log_rows",
                        help="most records the prediction log keeps (default 1000000)")
    parser.add_argument("--prediction-log-days", type=float, dest="prediction_log_days",
                        help="days a prediction log record is kept (default 90)")
    parser.add_argument("--label-coverage", type=float, dest="label_coverage",
                        help="'labels are late' below this share of a window's rows labelled (default 0.5)")
    parser.add_argument("--label-delay", dest="label_delay",
                        help="...once this long has passed since the window (7d, 12h; default 7d)")


def settings_from_args(args: argparse.Namespace) -> dict:
    changes = {}
    for key in ("preset", "metric", "threshold", "max_drop", "drift_share", "policy", "margin", "alpha",
                "schedule", "cv_folds", "seed", "id_column", "prediction_log_rows", "prediction_log_days",
                "label_coverage", "label_delay"):
        value = getattr(args, key, None)
        if value is not None:
            changes[key] = value
    if getattr(args, "no_threshold", False):
        changes["threshold"] = None
    if args.param or getattr(args, "clear_params", False):
        changes["params"] = dict(parse_param(p) for p in args.param)
    if args.retrain_after_rows is not None:
        text = args.retrain_after_rows.strip().lower()
        if text == "off":
            changes["retrain_after_rows"] = None
        else:
            try:
                changes["retrain_after_rows"] = int(text)
            except ValueError:
                raise UsageError(f"--retrain-after-rows must be a number of rows or 'off', got {text!r}") from None
    if args.window is not None:
        changes["window"] = parse_window(args.window)
    if args.prediction_log is not None:
        changes["prediction_log"] = parse_prediction_log(args.prediction_log)
    if args.cron:
        changes["schedule"] = f"cron {args.cron}"
    if args.schedule_off:
        changes["schedule_enabled"] = False
    if args.schedule_on:
        changes["schedule_enabled"] = True
    return changes


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number (0 or more), got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="keel", description="Keel: offline MLOps for scikit-learn models.")
    parser.add_argument("--workspace", help="workspace folder (default: $KEEL_WORKSPACE, models_store/, or the user data folder)")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    def command(name: str, help_text: str, parent: Any = commands) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--json", action="store_true", help="print one JSON document")
        return sub

    def project_command(name: str, help_text: str, parent: Any = commands) -> argparse.ArgumentParser:
        """A command on one project, named by its first argument."""
        sub = command(name, help_text, parent)
        sub.add_argument("name")
        return sub

    project = commands.add_parser("project", help="create, change or list projects")
    project_commands = project.add_subparsers(dest="project_command", parser_class=_Parser)
    create = project_command("create", "create a project from its first data file", project_commands)
    create.add_argument("--data", required=True, help="CSV or Parquet file")
    create.add_argument("--target", required=True, help="the column to predict")
    create.add_argument("--task", choices=["classification", "regression"])
    _add_settings_flags(create)
    change = project_command("set", "change a project's settings", project_commands)
    _add_settings_flags(change)
    command("list", "list the projects", project_commands)
    delete = project_command("delete", "delete a project and its files", project_commands)
    delete.add_argument("--yes", action="store_true", help="confirm the deletion")

    ingest = project_command("ingest", "add a batch of data (validated, cleaned, versioned)")
    ingest.add_argument("file")
    project_command("train", "train a new version on the project's training data")
    deploy = project_command("deploy", "make a version the production model")
    deploy.add_argument("--version", type=int, required=True)
    deploy.add_argument("--reason", default="")
    rollback = project_command("rollback", "go back to the previous production model")
    rollback.add_argument("--to", type=int, dest="to_version", help="an earlier production version")
    rollback.add_argument("--reason", default="")
    predict = project_command("predict", "score a file with the production model")
    predict.add_argument("--input", required=True)
    predict.add_argument("--output", required=True)
    status = project_command("status", "versions, production model, last metrics, alerts")
    status.add_argument("--limit", type=_count, help="only the newest N model versions and dataset versions")
    history = project_command("history", "the audit log")
    history.add_argument("--limit", type=_count, help="only the newest N events (still oldest first)")
    import_cmd = project_command("import", "register a skops model file trained elsewhere as a new version")
    import_cmd.add_argument("file")
    import_cmd.add_argument("--trust", action="append", default=[], metavar="TYPE",
                            help="accept a type outside Keel's trusted list (after reviewing it)")
    export = project_command("export", "copy a version's model file out of the workspace")
    export.add_argument("--version", type=int, required=True)
    export.add_argument("--output", required=True)
    export.add_argument("--format", choices=["skops", "mlflow"], default="skops", dest="export_format",
                        help="skops: the model file (default); mlflow: an MLflow model directory (a new folder)")
    push = project_command("push", "log versions as MLflow runs and register them on an MLflow tracking server")
    push.add_argument("--tracking-uri", required=True, dest="tracking_uri", help="the server, e.g. http://127.0.0.1:5000")
    push.add_argument("--version", type=int, help="this version (default: the production model)")
    push.add_argument("--all", action="store_true", dest="all_versions", help="every version")
    report = project_command("report", "write a self-contained HTML report: a version's model card and its monitoring")
    report.add_argument("--version", type=int, help="the version to describe (default: the production model)")
    report.add_argument("--since", help="monitoring from this date (YYYY-MM-DD[THH:MM], local time) until now "
                                        "(default: since the version was deployed)")
    report.add_argument("--output", required=True, help="the .html file to write (outside the workspace)")
    archive = project_command("archive", "archive (or restore) a model version")
    archive.add_argument("--version", type=int, required=True)
    archive.add_argument("--restore", action="store_true")
    ack = project_command("ack", "acknowledge an alert")
    ack.add_argument("alert_id", type=int)
    labels = project_command("labels", "join late labels (a file of id,label rows) to earlier predictions and unlabelled rows")
    labels.add_argument("file", help="CSV or Parquet with the columns id,label (or the ID column and the target)")
    traffic = project_command("traffic", "traffic windows, their label coverage and measured metric, request volume")
    traffic.add_argument("--by", choices=["minute", "hour", "day"], default="hour", dest="bucket",
                         help="request volume per minute, hour (default) or day")
    command("demo", "create the demo project (trained and deployed)")
    for extension in EXTENSIONS:
        extension.register_parser(commands, command)
    return parser


# The modules that add subcommands of their own, each with register_parser(commands, command) and
# HANDLERS: serve (the server loads only when `serve` runs); monitor, approve, run (the scheduler loads
# only when `run` runs); verify, backup, restore, retention, bundle.
EXTENSIONS = (serve_cli, runner, recovery_cli)


def _create_demo(keel: Keel, args: argparse.Namespace) -> DemoCreated:
    from app.demo.demo_project import create_demo

    return create_demo(keel)


def _handlers() -> dict[tuple[str, str | None], Handler]:
    return {
        ("project", "create"): lambda keel, a: keel.create_project(a.name, a.data, a.target, a.task, settings_from_args(a)),
        ("project", "set"): lambda keel, a: {"project": a.name, "settings": keel.set_project(
            a.name, settings_from_args(a), replace_params=a.clear_params).to_json()},
        ("project", "list"): lambda keel, a: {"projects": [project.to_json() for project in keel.list_projects()]},
        ("project", "delete"): _delete_project,
        ("ingest", None): _ingest,
        ("train", None): lambda keel, a: keel.train(a.name),
        ("deploy", None): lambda keel, a: keel.deploy(a.name, a.version, reason=a.reason),
        ("rollback", None): lambda keel, a: keel.rollback(a.name, reason=a.reason, to_version=a.to_version),
        ("predict", None): lambda keel, a: keel.predict(a.name, a.input, a.output),
        ("status", None): lambda keel, a: keel.status(a.name, a.limit),
        ("history", None): lambda keel, a: keel.history(a.name, limit=a.limit),
        ("import", None): lambda keel, a: keel.import_model(a.name, a.file, a.trust),
        ("export", None): _export,
        ("report", None): _report,
        ("push", None): _push,
        ("labels", None): lambda keel, a: keel.labels.add_labels(a.name, a.file),
        ("traffic", None): lambda keel, a: keel.traffic.overview(a.name, a.bucket),
        ("archive", None): _archive,
        ("ack", None): lambda keel, a: (keel.acknowledge_alert(a.name, a.alert_id) or {"acknowledged": a.alert_id}),
        ("demo", None): _create_demo,
        **{key: handler for extension in EXTENSIONS for key, handler in extension.HANDLERS.items()},
    }


def _delete_project(keel: Keel, args: argparse.Namespace) -> dict:
    if not args.yes:
        raise UsageError(f"deleting {args.name!r} removes its versions, data and history: add --yes to confirm")
    keel.delete_project(args.name)
    return {"deleted": args.name}


def _ingest(keel: Keel, args: argparse.Namespace) -> Any:
    show = _terminal_progress(args)
    try:
        return keel.ingest(args.name, args.file, progress=show)
    finally:
        if show is not None:
            sys.stderr.write("\r\033[K")  # the progress line goes; the result or the error takes its place
            sys.stderr.flush()


PROGRESS_WIDTH = 78


def _terminal_progress(args: argparse.Namespace) -> Callable[[float, str], None] | None:
    """A progress line on stderr for a command reading a file, when stderr is a terminal and the
    output is not --json (scripts and pipes hear nothing)."""
    if getattr(args, "json", False) or not sys.stderr.isatty():
        return None

    def show(fraction: float, message: str) -> None:
        sys.stderr.write(f"\r\033[K{fraction:4.0%}  {message}"[:PROGRESS_WIDTH + 4])
        sys.stderr.flush()

    return show


def _export(keel: Keel, args: argparse.Namespace) -> Any:
    if args.export_format == "mlflow":

        return keel.mlflow.export_mlflow(args.name, args.version, args.output)
    return keel.export_model(args.name, args.version, args.output)


def _push(keel: Keel, args: argparse.Namespace) -> PushResult:
    from app.adapters import mlflow_push
    from app.adapters.mlflow_rest import MlflowServerError
    from app.frontends.exit_codes import FAILED, CommandError

    try:
        return mlflow_push.push(keel, args.name, args.tracking_uri, version=args.version,
                                all_versions=args.all_versions)
    except MlflowServerError as exc:
        if exc.server_failed:  # the server's own failure is not the user's to fix
            raise CommandError(str(exc), FAILED) from None
        raise


def _report(keel: Keel, args: argparse.Namespace) -> ReportWritten:

    return keel.reports.write_report(args.name, args.output, version=args.version, since=args.since)


def _archive(keel: Keel, args: argparse.Namespace) -> dict:
    keel.archive_version(args.name, args.version, archived=not args.restore)
    return {"version": args.version, "archived": not args.restore}


# --------------------------------------------------------------------------- human output
def _format_human(key: tuple[str, str | None], result: Any) -> str:
    command = key[0] if key[1] is None else f"{key[0]} {key[1]}"
    if not isinstance(result, dict):
        return str(result)
    lines = [f"warning: {w}" for w in result.get("warnings", [])]
    if command == "project create":
        lines.append(f"Created project {result['project']} ({result['task']}, target {result['target']}): "
                     f"dataset v1, {result['rows']} rows")
    elif command == "project list":
        if not result["projects"]:
            lines.append("No projects yet. Create one: keel project create NAME --data FILE --target COLUMN")
        for p in result["projects"]:
            production = f"v{p['production_version']}" if p["production_version"] else "none"
            lines.append(f"{p['name']:<24} {p['task']:<15} target={p['target']:<16} production={production}")
    elif command == "ingest":
        if result["duplicate_of"]:
            lines.append(f"Already stored as dataset v{result['duplicate_of']}; nothing added")
        else:
            lines.append(f"Dataset v{result['dataset_version']}: {result['rows']} rows "
                         f"({'labelled' if result['labelled'] else 'unlabelled'})")
    elif command == "train":
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items())
        lines.append(f"Trained v{result['version']} in {result['seconds']:.1f} s: {metrics}")
    elif command in ("deploy", "rollback", "approve"):
        previous = f" (was v{result['previous_version']})" if result.get("previous_version") else ""
        lines.append(f"Production model is now v{result['production_version']}{previous}")
    elif command == "project set":
        lines.append(f"Settings of {result['project']}:")
        lines.extend(f"  {key:<20} {value}" for key, value in result["settings"].items())
    elif command == "predict":
        lines.append(f"Scored {result['rows']} rows with v{result['version']} -> {result['output']}")
        if result.get("id_column"):
            lines.append(f"IDs in column {result['id_column']} ({result['assigned_ids']} assigned by Keel); "
                         f"{result['logged_rows']} row(s) recorded in the prediction log")
    elif command == "export" and result.get("format") == "mlflow":
        lines.append(f"v{result['version']} exported as an MLflow model directory -> {result['path']}")
    elif command == "push":
        for item in result["versions"]:
            state = "pushed" if item["run_created"] or item["model_version_created"] else "already there"
            lines.append(f"v{item['version']}: run {item['run_id']}, {result['registered_model']} "
                         f"version {item['model_version']} ({state})")
        alias = result["alias"]
        if alias["model_version"]:
            lines.append(f"alias {alias['alias']} -> version {alias['model_version']} (Keel v{alias['keel_version']})"
                         + ("" if alias["changed"] else ", unchanged"))
        lines.append(f"{result['added']} change(s) on {result['tracking_uri']}")
    elif command == "labels":
        lines.extend(format_labels(result))
    elif command == "traffic":
        lines.extend(format_traffic(result))
    elif command == "report":
        period = f"{result['batches']} monitored batch(es)" if result["period_start"] else "no monitoring period"
        lines.append(f"Report of {result['project']} v{result['version']} ({period}, {result['bytes']:,} bytes) "
                     f"-> {result['output']}")
    elif command == "status":
        lines.extend(_format_status(result))
    elif command == "history":
        from app.core.domain.clock import to_local_display

        for e in result["events"]:
            lines.append(f"{to_local_display(e['at'])}  {e['by']:<7} {e['kind']:<18} {e['message']}")
    else:
        lines.append(json.dumps(result, indent=2, default=str))
    return "\n".join(lines)


def format_labels(result: dict) -> list[str]:
    stored = f" -> dataset v{result['dataset_version']}" if result["dataset_version"] else "; nothing stored"
    lines = [f"joined: {result['joined']} label(s){stored}",
             f"unknown: {result['unknown']} ID(s) found in no prediction and no unlabelled row",
             f"duplicate: {result['duplicate']} row(s) repeat an ID given earlier in the file (the first counts)",
             f"already labelled: {result['already_labelled']} ID(s) had a label before"]
    if result.get("unreadable"):
        lines.append(f"unreadable: {result['unreadable']} row(s) without a readable ID or label")
    for window in result["traffic_windows"]:
        lines.append(f"  traffic window {window['window']}: {_coverage(window)}")
    for batch in result["batches"]:
        lines.append(f"  dataset v{batch['dataset_version']}: {_coverage(batch)}")
    return lines


def _coverage(row: dict) -> str:
    measured = f"{row['metric']} {row['value']:.4f}" if row.get("value") is not None else "not measured yet"
    return (f"{row['labelled_rows']}/{row['rows']} rows labelled ({row['label_coverage']:.0%}), {measured}")


def format_traffic(result: dict) -> list[str]:
    lines = [f"{result['project']}: {len(result['windows'])} traffic window(s)"]
    for window in result["windows"]:
        drift = window["prediction_drift"]
        lines.append(f"  window {window['window']} {window['started_at'][:19]}..{window['ended_at'][:19]}: "
                     f"{_coverage(window)}; prediction PSI {drift:.3f}" if drift is not None else
                     f"  window {window['window']}: {_coverage(window)}")
    for batch in result["batches"]:
        lines.append(f"  dataset v{batch['dataset_version']}: {_coverage(batch)}")
    for point in result["volume"]:
        lines.append(f"  {point['at']}  {point['rows']} row(s) scored")
    return lines


def _format_status(result: dict) -> list[str]:
    production = f"v{result['production_version']}" if result["production_version"] else "none"
    lines = [f"{result['project']}: {result['task']}, target {result['target']}, metric {result['metric']}, "
             f"production {production}"]
    for v in result["versions"]:
        marker = "*" if v["in_production"] else " "
        value = v["metrics"].get(result["metric"])
        shown = f"{value:.4f}" if isinstance(value, float) else "-"
        aliases = f" [{', '.join(v['aliases'])}]" if v["aliases"] else ""
        lines.append(f" {marker} v{v['version']:<4} {result['metric']}={shown}{aliases}")
    log_ = result.get("prediction_log")
    if log_:
        lines.append(f"prediction log: {log_['rows']} record(s) (limits {log_['max_rows']} rows, "
                     f"{log_['max_days']:g} days; recording {log_['share']:.0%} of scored rows)")
    for alert in result["open_alerts"]:
        lines.append(f" ! alert {alert['id']} ({alert['severity']}): {alert['message']}")
    return lines


# --------------------------------------------------------------------------- entry points
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    want_json = "--json" in argv
    keel = root = log_file = None
    try:
        args = build_parser().parse_args(argv)
        if args.command is None or (args.command in ("project", "bundle") and not args.project_command):
            raise UsageError("no command given: try `keel --help`")
        key = (args.command, getattr(args, "project_command", None))
        handler = _handlers()[key]
        from app.core.services.lifecycle import Keel
        from app.core.services.session import log_path, open_workspace
        from app.logs import setup_logging

        root = open_workspace(args.workspace)
        log_file = log_path(root)
        setup_logging(log_file)  # before the registry opens, so its failures are logged too
        log.info("command %s", " ".join(argv))
        if args.command == "restore":  # must work when the registry cannot be opened (what a restore is for)
            keel, result = recovery_cli.restore_command(root, args)
        else:
            keel = Keel.open(root, refresh_manifests=args.command not in COMMANDS_THAT_REPORT_AS_IS)
            result = handler(keel, args)
        if result is None:
            return 0
        if isinstance(result, ShownAsJson):  # a service's typed result: its document is what the CLI prints
            result = result.to_json()
        if isinstance(result, int):  # a handler that printed its own output and chose the exit code
            return result
        print(json.dumps(_finite_or_null(result), default=str, allow_nan=False) if want_json
              else _format_human(key, result), flush=True)
        return 0
    except SystemExit as exc:  # argparse after printing --help: main() returns its code, never exits
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        return _fail("interrupted; nothing was written", INTERRUPTED, want_json)
    except BrokenPipeError:  # `keel history | head`: the reader left; nothing to report
        sys.stdout = open(os.devnull, "w")
        return 0
    except (KeelError, Cancelled) as exc:
        log.info("refused: %s", exc)
        return _fail(str(exc), exit_code_for(exc), want_json)
    except Exception as exc:  # anything unexpected: one line here, the traceback in the log
        if is_disk_full(exc):  # every write is atomic: what failed left the workspace as it was
            log.error("disk full: %s\n%s", exc, traceback.format_exc())
            where = root or "the workspace"
            return _fail(f"disk full: {exc}; nothing was saved — free space on the disk holding {where} "
                         "and run the command again", DISK_FULL_EXIT_CODE, want_json)
        log.error("failed: %s\n%s", exc, traceback.format_exc())
        where = f" (details in {log_file})" if log_file else ""
        return _fail(f"internal error: {type(exc).__name__}: {exc}{where}", 1, want_json)
    finally:
        if keel is not None:
            keel.close()


def _finite_or_null(value: Any) -> Any:
    """NaN and infinity (an ROC AUC on a one-class hold-out, say) become null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    return value


def _fail(message: str, code: int, want_json: bool) -> int:
    message = message.strip().splitlines()[0] if message.strip() else "failed"
    if want_json:
        print(json.dumps({"error": {"code": code, "message": message}}), flush=True)
    print(f"keel: error: {message}", file=sys.stderr, flush=True)
    return code


def entry_point() -> None:
    """The installed `keel` command: no arguments opens the GUI, a subcommand runs the CLI."""
    argv = sys.argv[1:]
    if not argv or argv in (["--workspace"],) or (len(argv) == 2 and argv[0] == "--workspace"):
        from app.frontends.gui.launch import run_gui

        sys.exit(run_gui(argv[1] if argv else None))
    sys.exit(main(argv))
