"""CLI commands that keep a workspace whole: verify, backup, restore, retention, bundle."""

import json

from app.core.services import verify as verify_service


def register_parser(commands, command) -> None:
    verify = command("verify", "check the registry and every file; --repair mends what it safely can")
    verify.add_argument("--quick", action="store_true", help="presence only: skip hashing the files")
    verify.add_argument("--repair", action="store_true",
                        help="remove temporaries, rewrite stale manifests, move orphans to quarantine/")


def _verify(keel, args):
    result = verify_service.verify(keel, quick=args.quick, repair=args.repair)
    print(json.dumps(result) if args.json else format_verify(result), flush=True)
    return 0 if result["healthy"] else 1


def format_verify(result: dict) -> str:
    checked = result["checked"]
    lines = [f"{'Repaired: ' + entry['action'] + ' ' + entry['path']}" for entry in result["repaired"]]
    for problem in result["problems"]:
        marker = "error" if problem["error"] else "note"
        fix = f" [--repair: {problem['repair']}]" if problem["repair"] and problem["error"] else ""
        lines.append(f"{marker}: {problem['check']}: {problem['path']}: {problem['message']}{fix}")
    hashed = "hashed" if checked["hashed"] else "presence only (--quick)"
    verdict = "healthy" if result["healthy"] else "NOT healthy"
    lines.append(f"Workspace {result['workspace']} is {verdict}: {checked['projects']} project(s), "
                 f"{checked['model_files']} model file(s), {checked['dataset_files']} dataset file(s) checked, {hashed}")
    return "\n".join(lines)


HANDLERS = {
    ("verify", None): _verify,
}
