"""Crash harness: SIGKILL Keel in the middle of its work, then check nothing committed was lost
and that `verify` passes, or `verify --repair` restores health.

    .venv/bin/python bench/crash_harness.py [--kills 300] [--seed 1] [--keep DIR]

Each trial runs one operation in a child process — ingest, train, deploy, rollback, a
monitoring cycle with policy auto (an inbox file waiting, a threshold that fires, so it
retrains and gates a challenger), or a backup — and kills it with SIGKILL either at a
random moment or at an injected point the child arms by wrapping Keel's own functions:

    after_file_write     right after a file is renamed into place (fileio.atomic_path)
    inside_transaction   after the statements of a registry transaction, before its COMMIT
    after_commit         right after a registry transaction commits
    before_manifest      after a deployment's commit, before its production.json is renamed into
                         place (or before a backup's archive manifest is written)
    before_inbox_move    before an ingested inbox file is moved to processed/ (or rejected/)

(the k-th occurrence, k random in 1..3, so that later writes of an operation are hit too).
Before each trial the harness records what is committed (the ids of every table's rows
and each version's sha256); after the kill it checks those rows are all still there
(a "lost commit" otherwise), runs the full `verify`, and `verify --repair` if needed
("unrepairable" if the workspace is still not healthy), and checks that a killed
backup left no file at its destination. The workspace carries on to the next trial,
so later operations run on what earlier kills left behind.

Prints a table and writes bench/results/crash_harness.json. Target: 0 lost commits,
0 unrepairable workspaces.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OPERATIONS = ("ingest", "train", "deploy", "rollback", "monitor", "backup")
POINTS = ("random", "after_file_write", "inside_transaction", "after_commit", "before_manifest", "before_inbox_move")
# the points each operation can reach (a kill is only counted when the child really died)
REACHABLE = {
    "ingest": ("random", "after_file_write", "inside_transaction", "after_commit"),
    "train": ("random", "after_file_write", "inside_transaction", "after_commit"),
    "deploy": ("random", "inside_transaction", "after_commit", "before_manifest", "after_file_write"),
    "rollback": ("random", "inside_transaction", "after_commit", "before_manifest", "after_file_write"),
    "monitor": POINTS,
    "backup": ("random", "after_file_write", "before_manifest", "after_commit"),
}
PROJECT = "loans"
# the dropped inbox file is complete by construction (renamed in): no need for the sweeps' quiet time
CHILD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "KEEL_INBOX_QUIET_SECONDS": "0"}


# ====================================================================== the child process
def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str, hit: int) -> dict:
    """Wrap Keel's functions so that the hit-th occurrence of point kills this process."""
    from contextlib import contextmanager

    from app.core import fileio
    from app.core.services import inbox, lifecycle
    from app.core.store import archive
    from app.core.store.registry import Registry

    count = {"n": 0}

    def reached() -> None:
        count["n"] += 1
        if count["n"] >= hit:
            _die()

    if point == "after_file_write":
        original_fsync = fileio._fsync_directory

        def fsync_then_die(folder):
            original_fsync(folder)
            reached()
        fileio._fsync_directory = fsync_then_die
    elif point in ("inside_transaction", "after_commit"):
        original_transaction = Registry.transaction

        @contextmanager
        def transaction(self):
            outermost = not self.conn.in_transaction
            with original_transaction(self) as registry:
                yield registry
                if outermost and point == "inside_transaction":
                    reached()
            if outermost and point == "after_commit":
                reached()
        Registry.transaction = transaction
    elif point == "before_manifest":
        original_manifest = lifecycle.Keel._install_manifest
        original_archive_manifest = archive.ArchiveWriter._write_manifest

        def manifest(self, staged):
            reached()
            return original_manifest(self, staged)

        def archive_manifest(self):
            reached()
            return original_archive_manifest(self)
        lifecycle.Keel._install_manifest = manifest
        archive.ArchiveWriter._write_manifest = archive_manifest
    elif point == "before_inbox_move":
        original_free_name = inbox.free_name

        def free_name(folder, name):
            reached()
            return original_free_name(folder, name)
        inbox.free_name = free_name
    return count


def child(args) -> int:
    from app.core.services.lifecycle import Keel

    count = arm(args.point, args.hit) if args.point != "random" else {"n": 0}
    keel = Keel.open(args.workspace)
    try:
        if args.child == "ingest":
            keel.ingest(PROJECT, args.data)
        elif args.child == "train":
            keel.train(PROJECT)
        elif args.child == "deploy":
            keel.deploy(PROJECT, keel.status(PROJECT, limit=1).versions[-1].version)
        elif args.child == "rollback":
            keel.rollback(PROJECT)
        elif args.child == "monitor":
            keel.policy.monitor(PROJECT)
        elif args.child == "backup":
            keel.backup.backup(args.dest)
    except Exception as exc:  # noqa: BLE001 - a refusal (nothing to roll back to) is a normal outcome
        print(f"refused: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        keel.close()
        print(f"reached {count['n']}", flush=True)  # how often the point came up, for the next trials' aim
    return 0


# ====================================================================== the parent
def committed_state(workspace: Path) -> dict:
    """What is committed: every row id of the registry's tables, and each version's hash."""
    from app.core.store import maintenance
    from app.core.store.registry import Registry

    registry = Registry(workspace / "registry.db")
    try:
        state = {}
        for table in registry.table_counts():
            columns = [r[1] for r in registry.conn.execute(f'PRAGMA table_info("{table}")')]
            key = "id" if "id" in columns else "rowid"
            state[table] = {r[0] for r in registry.conn.execute(f'SELECT {key} FROM "{table}"')}
        state["model sha256"] = {(model.id, model.sha256) for model in maintenance.model_files(registry)}
        state["dataset sha256"] = {(dataset.id, dataset.content_sha256) for project in registry.projects()
                                   for dataset in registry.dataset_versions(project.id)}
        return state
    finally:
        registry.close()


def lost_rows(before: dict, after: dict) -> dict:
    return {table: len(ids - after.get(table, set())) for table, ids in before.items()
            if table != "schema_version" and ids - after.get(table, set())}


def check_health(workspace: Path) -> tuple[bool, bool, list]:
    """(healthy at once, healthy after repair, problems left). Checked as if an hour had passed:
    a file the killed process left is then an error to repair, not a writer's work in progress."""
    from app.core.services.lifecycle import Keel

    later = time.time() + 3600
    keel = Keel.open(workspace, refresh_manifests=False)  # as `keel verify` opens it: what is on disk
    try:
        first = keel.verifier.verify(now=later)
        if first.healthy:
            return True, True, []
        repaired = keel.verifier.verify(repair=True, now=later)
        return False, repaired.healthy, [problem.to_json() for problem in repaired.errors]
    finally:
        keel.close()


def build_workspace(folder: Path) -> None:
    from app.core.services.lifecycle import Keel
    from app.demo.simulator import make_batch

    keel = Keel.open(folder)
    try:
        data = folder.parent / "initial.csv"
        make_batch(300, seed=1).to_csv(data, index=False)
        keel.create_project(PROJECT, data, "default", "classification",
                            {"preset": "logreg", "policy": "auto", "threshold": 0.99, "window": None,
                             "margin": 0.0, "alpha": 0.99})
        keel.train(PROJECT)
        keel.deploy(PROJECT, 1)
    finally:
        keel.close()


def prepare(op: str, workspace: Path, scratch: Path, trial: int) -> dict:
    from app.demo.simulator import make_batch

    extra = {}
    if op == "ingest":
        path = scratch / f"batch-{trial}.csv"
        make_batch(60, seed=1000 + trial).to_csv(path, index=False)
        extra["data"] = path
    elif op == "monitor":
        inbox = workspace / "projects" / PROJECT / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        staged = scratch / f"drop-{trial}.csv"
        make_batch(60, seed=5000 + trial).to_csv(staged, index=False)
        past = time.time() - 120
        os.utime(staged, (past, past))
        os.replace(staged, inbox / f"drop-{trial}.csv")  # a complete file, settled long ago
    elif op == "backup":
        extra["dest"] = scratch / f"backup-{trial}.keel-backup"
    return extra


def run_trial(op: str, point: str, workspace: Path, scratch: Path, trial: int, rng: random.Random,
              random_window: dict, occurrences: dict) -> dict:
    extra = prepare(op, workspace, scratch, trial)
    before = committed_state(workspace)
    hit = rng.randint(1, occurrences.get((op, point), 1)) if point != "random" else 0
    command = [sys.executable, str(Path(__file__).resolve()), "--child", op, "--workspace", str(workspace),
               "--point", point, "--hit", str(hit)]
    for key, value in extra.items():
        command += [f"--{key}", str(value)]
    env = {**os.environ, **CHILD_ENV}
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    if point == "random":
        low, high = random_window.get(op, (0.5, 4.0))
        try:
            process.wait(timeout=rng.uniform(low, high))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=600)
    seconds = time.perf_counter() - started
    killed = process.returncode == -signal.SIGKILL
    reached = [int(line.split()[1]) for line in stdout.decode().splitlines() if line.startswith("reached ")]
    if point != "random":
        if reached:  # it ran to the end: aim within the occurrences it really has
            occurrences[(op, point)] = max(1, reached[-1])
        elif killed and hit >= occurrences.get((op, point), 1):  # explore a later occurrence next time
            occurrences[(op, point)] = hit + 1
    if not killed and point == "random":  # finished first: aim earlier next time
        low, high = random_window.get(op, (0.5, 4.0))
        random_window[op] = (low, max(low + 0.2, min(high, seconds * 0.9)))
    after = committed_state(workspace)
    healthy, repaired, left = check_health(workspace)
    partial_backup = bool(killed and op == "backup" and extra["dest"].exists() and not _complete_backup(extra["dest"]))
    return {"op": op, "point": point, "hit": hit, "killed": killed, "returncode": process.returncode,
            "seconds": round(seconds, 2), "lost": lost_rows(before, after), "healthy": healthy,
            "repaired": repaired, "problems_left": left, "partial_backup": partial_backup,
            "stderr": stderr.decode(errors="replace").strip().splitlines()[-1:] if not killed else []}


def _complete_backup(path: Path) -> bool:
    from app.core.store.archive import ArchiveError, ArchiveReader

    try:
        with ArchiveReader(path) as reader:
            reader.verify()
        return True
    except ArchiveError:
        return False


def campaign(kills: int, seed: int, folder: Path, echo=print, max_trials: int | None = None,
             plan: list[tuple[str, str]] | None = None) -> dict:
    rng = random.Random(seed)
    workspace, scratch = folder / "workspace", folder / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    build_workspace(workspace)
    plan = plan or [(op, point) for op in OPERATIONS for point in REACHABLE[op]]
    trials, random_window, occurrences = [], {}, {}
    max_trials = max_trials or kills * 3
    started = time.perf_counter()
    while sum(t["killed"] for t in trials) < kills and len(trials) < max_trials:
        op, point = plan[len(trials) % len(plan)] if len(trials) < len(plan) else rng.choice(plan)
        result = run_trial(op, point, workspace, scratch, len(trials), rng, random_window, occurrences)
        trials.append(result)
        if result["lost"] or not result["repaired"] or result["partial_backup"]:
            echo(f"  !! {op} / {point}: lost={result['lost']} repaired={result['repaired']} "
                 f"left={result['problems_left']}")
        for old in scratch.glob("backup-*.keel-backup"):
            old.unlink()
    return summarise(trials, time.perf_counter() - started)


def summarise(trials: list[dict], seconds: float) -> dict:
    killed = [t for t in trials if t["killed"]]
    by_cell = Counter((t["op"], t["point"]) for t in killed)
    return {
        "trials": len(trials), "kills": len(killed),
        "lost_commits": sum(sum(t["lost"].values()) for t in trials),
        "unrepairable": sum(1 for t in trials if not t["repaired"]),
        "healthy_without_repair": sum(1 for t in killed if t["healthy"]),
        "repaired": sum(1 for t in killed if not t["healthy"] and t["repaired"]),
        "partial_backups": sum(1 for t in trials if t["partial_backup"]),
        "finished_before_kill": len(trials) - len(killed),
        "kills_by_operation": dict(Counter(t["op"] for t in killed)),
        "kills_by_point": dict(Counter(t["point"] for t in killed)),
        "kills_by_operation_and_point": {f"{op}/{point}": n for (op, point), n in sorted(by_cell.items())},
        "repairs_needed_by_point": dict(Counter(t["point"] for t in killed if not t["healthy"])),
        "seconds": round(seconds, 1),
        "failures": [t for t in trials if t["lost"] or not t["repaired"] or t["partial_backup"]],
    }


def print_table(summary: dict) -> None:
    print(f"{'kills':<28}{summary['kills']:>8}   ({summary['trials']} trials; "
          f"{summary['finished_before_kill']} finished before the kill)")
    for key in ("lost_commits", "unrepairable", "healthy_without_repair", "repaired", "partial_backups"):
        print(f"{key.replace('_', ' '):<28}{summary[key]:>8}")
    print("kills by operation:  " + ", ".join(f"{k} {v}" for k, v in sorted(summary["kills_by_operation"].items())))
    print("kills by point:      " + ", ".join(f"{k} {v}" for k, v in sorted(summary["kills_by_point"].items())))
    print("repair needed after: " + (", ".join(f"{k} {v}" for k, v in sorted(summary["repairs_needed_by_point"].items()))
                                     or "none"))
    print(f"time: {summary['seconds']} s. Target: 0 lost commits, 0 unrepairable workspaces.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="keep the workspace in this folder (default: a temporary one)")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "crash_harness.json"))
    parser.add_argument("--child", choices=OPERATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--workspace", help=argparse.SUPPRESS)
    parser.add_argument("--point", default="random", help=argparse.SUPPRESS)
    parser.add_argument("--hit", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--dest", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="keel-crash-"))
    try:
        summary = campaign(args.kills, args.seed, folder)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print_table(summary)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"command": f"bench/crash_harness.py --kills {args.kills} --seed {args.seed}",
                                             **summary}, indent=1, default=str))
    return 0 if summary["lost_commits"] == 0 and summary["unrepairable"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
