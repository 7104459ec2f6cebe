"""The front ends (CLI, runner, GUI), the adapters (server, scheduler) and the demo reach the
store only through the services: no store object taken off a service. No SQL outside the store.
(import-linter, run by `make test`, forbids importing app.core.store from them.)"""

import ast
import re
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
OUTER_PACKAGES = ("frontends", "adapters", "demo")
STORE_ATTRIBUTES = {"registry", "_registry", "workspace", "_workspace"}
SQL = re.compile(r"\b(SELECT\b.+\bFROM|INSERT\s+INTO|UPDATE\b.+\bSET|DELETE\s+FROM)\b", re.DOTALL)


def outer_modules() -> list[Path]:
    return sorted(path for package in OUTER_PACKAGES for path in (APP / package).rglob("*.py"))


def store_attribute_uses(source: str) -> list[int]:
    """Lines that read a store attribute (keel.registry, keel.workspace) off an object; the parsed
    command line's --workspace option (args.workspace) is a folder name, not a store object."""
    return sorted(node.lineno for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Attribute) and node.attr in STORE_ATTRIBUTES
                  and not (isinstance(node.value, ast.Name) and node.value.id == "args"))


def sql_strings(source: str) -> list[int]:
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value)]


def test_the_outer_layers_are_found():
    names = {path.name for path in outer_modules()}
    assert {"cli.py", "runner.py", "main_window.py", "serving.py", "scheduling.py", "demo_stream.py"} <= names


def test_no_front_end_adapter_or_demo_takes_the_store_off_a_service():
    uses = [f"{path.relative_to(APP.parent)}:{line}" for path in outer_modules()
            for line in store_attribute_uses(path.read_text())]
    assert uses == []


def test_no_sql_outside_the_store():
    store = APP / "core" / "store"
    modules = [path for path in APP.rglob("*.py") if store not in path.parents]
    found = [f"{path.relative_to(APP.parent)}:{line}" for path in modules for line in sql_strings(path.read_text())]
    assert found == []


def test_the_checks_catch_a_store_reach_and_sql():
    leaky = ("name = args.workspace\n"
             "rows = keel.registry.query(\n    'SELECT id FROM projects WHERE name = ?', (name,))\n"
             "root = self.keel.workspace.root\n")
    assert store_attribute_uses(leaky) == [2, 4]
    assert sql_strings(leaky) == [3]
    assert sql_strings("conn.execute('INSERT INTO events (kind) VALUES (?)')") == [1]
    assert sql_strings("label = 'Select a version to deploy from the list'") == []


def private_keel_calls(source: str) -> list[int]:
    """Lines that reach a private member of the lifecycle service (keel._x, self.keel._x)."""
    def names_keel(node) -> bool:
        return (isinstance(node, ast.Name) and node.id == "keel") or (
            isinstance(node, ast.Attribute) and node.attr == "keel")
    return sorted(node.lineno for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                  and names_keel(node.value))


def test_no_service_or_front_end_reaches_into_the_lifecycle_service_privately():
    lifecycle = APP / "core" / "services" / "lifecycle.py"
    found = [f"{path.relative_to(APP.parent)}:{line}" for path in APP.rglob("*.py") if path != lifecycle
             for line in private_keel_calls(path.read_text())]
    assert found == []
    assert private_keel_calls("with keel._locked(name):\n    self.keel._deploy_locked(name, 1)\nkeel.deploy(n, 1)\n") == [1, 2]
