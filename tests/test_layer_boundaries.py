"""The front ends (CLI, runner, GUI), the adapters (server, scheduler) and the demo reach the
store only through the service objects (keel.policy, keel.inbox, ...): no store object and no
dependency bundle taken off Keel or a service. No SQL outside the store. (import-linter, run by
`make test`, forbids importing app.core.store and the dependency bundles from them.)"""

import ast
import re
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
OUTER_PACKAGES = ("frontends", "adapters", "demo")
STORE_ATTRIBUTES = {"registry", "_registry", "workspace", "_workspace"}
# Keel's wiring of the services (its dependency bundles, the shared reads) and a service's own dependencies
DEPENDENCY_ATTRIBUTES = {"services", "_services", "_data", "_deps", "deps"}
DEPENDENCY_MODULES = ("app.core.services.dependencies", "app.core.services.project_data")
SQL = re.compile(r"\b(SELECT\b.+\bFROM|INSERT\s+INTO|UPDATE\b.+\bSET|DELETE\s+FROM)\b", re.DOTALL)


def outer_modules() -> list[Path]:
    return sorted(path for package in OUTER_PACKAGES for path in (APP / package).rglob("*.py"))


def store_attribute_uses(source: str) -> list[int]:
    """Lines that read a store attribute (keel.services.registry, keel.workspace) off an object; the parsed
    command line's --workspace option (args.workspace) is a folder name, not a store object."""
    return sorted(node.lineno for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Attribute) and node.attr in STORE_ATTRIBUTES
                  and not (isinstance(node.value, ast.Name) and node.value.id == "args"))


def dependency_uses(source: str) -> list[int]:
    """Lines that take a dependency bundle: Keel's wiring (keel._services, keel.services), a service's
    dependencies (keel.policy._deps), or an import of the bundles' modules."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in DEPENDENCY_ATTRIBUTES:
            found.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(DEPENDENCY_MODULES):
            found.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "app.core.services" and any(
                f"app.core.services.{alias.name}".startswith(DEPENDENCY_MODULES) for alias in node.names):
            found.append(node.lineno)
        elif isinstance(node, ast.Import) and any(alias.name.startswith(DEPENDENCY_MODULES) for alias in node.names):
            found.append(node.lineno)
    return sorted(found)


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


def test_no_front_end_adapter_or_demo_holds_a_dependency_bundle():
    uses = [f"{path.relative_to(APP.parent)}:{line}" for path in outer_modules()
            for line in dependency_uses(path.read_text())]
    assert uses == []


def test_the_dependency_check_catches_each_form():
    leaky = ("from app.core.services import batches\n"
             "batches.ingest_files(keel.services.batches, name, files)\n"
             "deps = self.keel._services.policy\n"
             "keel.policy._deps.registry\n"
             "from app.core.services.dependencies import Dependencies\n"
             "from app.core.services import project_data\n"
             "import app.core.services.dependencies\n"
             "keel.batches.ingest_files(name, files)\n")
    assert dependency_uses(leaky) == [2, 3, 4, 5, 6, 7]


def test_no_sql_outside_the_store():
    store = APP / "core" / "store"
    modules = [path for path in APP.rglob("*.py") if store not in path.parents]
    found = [f"{path.relative_to(APP.parent)}:{line}" for path in modules for line in sql_strings(path.read_text())]
    assert found == []


RAW_QUERY_METHODS = {"_query", "_query_one"}


def raw_query_calls(source: str) -> list[int]:
    """Lines that call the store's raw query (SQL in, dicts out): registry._query(...), ._query_one(...)."""
    return sorted(node.lineno for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Attribute) and node.attr in RAW_QUERY_METHODS)


def test_only_the_store_runs_its_raw_query():
    """The rest of the app and the benches read through the store's named reads, which hand out typed values."""
    from app.core.store.registry import Registry

    store = APP / "core" / "store"
    modules = [path for path in [*APP.rglob("*.py"), *(APP.parent / "bench").rglob("*.py")] if store not in path.parents]
    found = [f"{path.relative_to(APP.parent)}:{line}" for path in modules for line in raw_query_calls(path.read_text())]
    assert found == []
    assert not hasattr(Registry, "query") and not hasattr(Registry, "query_one")
    assert raw_query_calls("rows = keel_store._query('SELECT 1')\nrow = registry._query_one(sql)\n") == [1, 2]


def test_the_checks_catch_a_store_reach_and_sql():
    leaky = ("name = args.workspace\n"
             "rows = keel.registry.query(\n    'SELECT id FROM projects WHERE name = ?', (name,))\n"
             "root = self.keel.workspace.root\n")
    assert store_attribute_uses(leaky) == [2, 4]
    assert sql_strings(leaky) == [3]
    assert sql_strings("conn.execute('INSERT INTO events (kind) VALUES (?)')") == [1]
    assert sql_strings("label = 'Select a version to deploy from the list'") == []


SERVICES = APP / "core" / "services"
LIFECYCLE = SERVICES / "lifecycle.py"


def private_reaches(source: str) -> list[int]:
    """Lines that reach a private member of another module or service: `inbox._sweep(...)`,
    `from app.core.services.policy import _gate`, `keel._registry`, `deps.inbox._x`,
    `keel.services._reads`. A module's own privates (self._x, _helper()) are its business."""
    tree = ast.parse(source)
    app_names = {"keel", "deps", "services"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app."):
            app_names |= {alias.asname or alias.name for alias in node.names}
            if any(_private(alias.name) for alias in node.names):
                found.append(node.lineno)
        elif isinstance(node, ast.Import):
            app_names |= {alias.asname or alias.name for alias in node.names if alias.name.startswith("app.")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and (
                app_names & set(_chain(node.value)) or _held_dependency(node.value)):
            found.append(node.lineno)
    return sorted(found)


def _held_dependency(node) -> bool:
    """self._monitoring (a dependency an object holds): its private members are another object's business."""
    return (isinstance(node, ast.Attribute) and _private(node.attr)
            and isinstance(node.value, ast.Name) and node.value.id == "self")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _chain(node) -> list[str]:
    """The names of an attribute chain: self.keel.services -> [services, keel, self]."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        names.append(node.id)
    return names


def test_no_module_reaches_into_another_service_privately():
    found = [f"{path.relative_to(APP.parent)}:{line}" for path in APP.rglob("*.py")
             for line in private_reaches(path.read_text())]
    assert found == []


def test_the_private_reach_check_catches_each_form():
    leaky = ("from app.core.services import inbox\n"
             "from app.core.services.policy import _gate, gate\n"
             "inbox._sweep(deps, name)\n"
             "rows = self.keel._registry.projects()\n"
             "deps.inbox._cache.clear()\n"
             "keel.services._reads_and_records\n"
             "self._lock.acquire()\n"
             "_helper(deps)\n"
             "frame._values\n"
             "self._monitoring._store_reference(loaded)\n"
             "self._monitoring.run_cycle(name)\n")
    assert private_reaches(leaky) == [2, 3, 4, 5, 6, 10]


def handed_the_lifecycle_service(source: str) -> list[int]:
    """Lines of a service that name Keel: a parameter or variable `keel`, or an import of lifecycle."""
    tree = ast.parse(source)
    return sorted({node.lineno for node in ast.walk(tree)
                   if (isinstance(node, ast.Name) and node.id == "keel")
                   or (isinstance(node, ast.arg) and node.arg == "keel")
                   or (isinstance(node, ast.Attribute) and node.attr == "keel")
                   or (isinstance(node, ast.ImportFrom) and (node.module or "").endswith("services.lifecycle"))})


def test_no_service_is_handed_the_lifecycle_service():
    """Each service gets its dependencies (app/core/services/dependencies.py), never Keel itself."""
    found = [f"{path.relative_to(APP.parent)}:{line}" for path in sorted(SERVICES.glob("*.py")) if path != LIFECYCLE
             for line in handed_the_lifecycle_service(path.read_text())]
    assert found == []
    assert handed_the_lifecycle_service("def sweep(keel, name):\n    return keel.ingest(name)\n") == [1, 2]
    assert handed_the_lifecycle_service("log = logging.getLogger('keel.inbox')\n") == []


MODULE_LEVEL_BUILDS_ALLOWED = {"getLogger", "compile", "TypeVar", "timedelta"}
MUTATORS = {"append", "extend", "insert", "update", "add", "setdefault", "pop", "popitem", "remove", "discard", "clear"}


def module_level_state(source: str) -> list[int]:
    """Lines that keep state in a module: a `global` statement; a lower-case module-level name bound to
    a built object or a container (an UPPER_CASE name is a constant; loggers and compiled patterns are
    fine); or a module-level container, whatever its name, that the module's code changes (a registry
    filled at import is state, not a constant)."""
    tree = ast.parse(source)
    found = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Global)]
    containers = set()
    for node in tree.body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        value = node.value
        built = isinstance(value, (ast.Call, ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp))
        if isinstance(value, ast.Call) and _chain(value.func)[:1] and _chain(value.func)[0] in MODULE_LEVEL_BUILDS_ALLOWED:
            built = False
        if built:
            containers.update(names)
        if built and any(not name.isupper() for name in names):
            found.append(node.lineno)
    found += _changes_to(tree, containers)
    return sorted(set(found))


def _changes_to(tree: ast.Module, names: set[str]) -> list[int]:
    """Lines that change one of the module-level `names`: NAME.append(...), NAME[key] = ..., del NAME[key]."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS
                and isinstance(node.func.value, ast.Name) and node.func.value.id in names):
            found.append(node.lineno)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            if any(isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id in names
                   for t in targets):
                found.append(node.lineno)
    return found


def test_no_module_keeps_state_at_module_level():
    """Caches, counters and registries belong to the object that owns them: Keel (per workspace), the
    main window, the application or the job runner; constants are UPPER_CASE and never changed."""
    modules = sorted(APP.rglob("*.py"))
    assert {"main_window.py", "jobs.py", "plots.py", "file_dialogs.py", "logs.py", "cli.py"} <= {p.name for p in modules}
    found = [f"{path.relative_to(APP.parent)}:{line}" for path in modules for line in module_level_state(path.read_text())]
    assert found == []


def test_the_module_level_state_check_catches_each_form():
    assert module_level_state("models = ModelCache()\nlog = logging.getLogger('x')\nSIZES = {'a': 1}\n") == [1]
    assert module_level_state("def f():\n    global _cache\n") == [2]
    assert module_level_state("_ids = itertools.count(1)\n_classes: dict = {}\n") == [1, 2]
    registry = ("HANDLERS = {}\nEXTENSIONS = []\nLIMITS = {'rows': 5}\n"
                "def extension(register, handlers):\n    EXTENSIONS.append(register)\n    HANDLERS.update(handlers)\n"
                "def cap(rows):\n    HANDLERS['x'] = rows\n    return min(rows, LIMITS['rows'])\n")
    assert module_level_state(registry) == [5, 6, 8]


def dependency_taking_functions(source: str) -> set[str]:
    """A service module's functions that take a dependency bundle first (`def sweep(deps, name)`): rules
    that belong to its service object. Functions that need no dependencies (statistics, shapes) are fine."""
    return {node.name for node in ast.parse(source).body
            if isinstance(node, ast.FunctionDef) and node.args.args and node.args.args[0].arg == "deps"}


def calls_into_other_services(source: str, taking: dict[str, set[str]]) -> list[str]:
    """Where a module reaches another service module's dependency-taking function (`monitoring.run_cycle(deps,
    ...)` or `from app.core.services.inbox import sweep`) instead of calling that service's object.
    taking: service module -> its dependency-taking functions. -> ["line: module.function"]"""
    tree = ast.parse(source)
    aliases = {}  # a local name -> the service module it names
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "app.core.services":
            aliases |= {alias.asname or alias.name: alias.name for alias in node.names if alias.name in taking}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("app.core.services."):
            module = node.module.rsplit(".", 1)[1]
            found += [f"{node.lineno}: {module}.{alias.name}" for alias in node.names
                      if alias.name in taking.get(module, ())]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                module = alias.name.rsplit(".", 1)[1] if alias.name.startswith("app.core.services.") else None
                if module in taking and alias.asname:
                    aliases[alias.asname] = module
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            module = aliases[node.value.id]
            if node.attr in taking[module]:
                found.append(f"{node.lineno}: {module}.{node.attr}")
    return sorted(found, key=lambda entry: int(entry.split(":")[0]))


def test_no_service_module_hands_a_dependency_bundle_to_its_functions():
    """A service's rules are its object's methods over the dependencies it was handed; a module function
    takes no `deps` (it needs no store: a statistic, a frame's shape, a rule's message)."""
    found = {path.name: sorted(dependency_taking_functions(path.read_text())) for path in sorted(SERVICES.glob("*.py"))}
    assert {name: functions for name, functions in found.items() if functions} == {}


def test_each_service_calls_another_through_its_object_never_its_dependency_functions():
    """A service calls another service's methods (self._monitoring.run_cycle(name)), never the other
    module's functions that take that service's dependencies."""
    modules = {path.stem: path.read_text() for path in sorted(SERVICES.glob("*.py"))}
    taking = {name: functions for name, source in modules.items()
              if (functions := dependency_taking_functions(source))}
    found = {}
    for name, source in modules.items():
        calls = [call.split(": ")[1] for call in calls_into_other_services(source, taking)
                 if not call.split(": ")[1].startswith(f"{name}.")]
        if calls:
            found[f"{name}.py"] = sorted(set(calls))
    assert found == {}


def test_the_cross_service_call_check_catches_each_form():
    taking = {"monitoring": {"run_cycle"}, "inbox": {"sweep"}}
    leaky = ("from app.core.services import inbox, monitoring\n"
             "cycle = monitoring.run_cycle(deps.monitoring, name)\n"
             "from app.core.services.inbox import sweep, Rules\n"
             "import app.core.services.monitoring as watch\n"
             "watch.run_cycle(deps, name)\n"
             "self._monitoring.run_cycle(name)\n"
             "self._inbox.sweep(name)\n"
             "rules = inbox.Rules()\n")
    assert calls_into_other_services(leaky, taking) == ["2: monitoring.run_cycle", "3: inbox.sweep",
                                                        "5: monitoring.run_cycle"]
    assert dependency_taking_functions("def sweep(deps, name):\n    pass\ndef gate(project, frame):\n    pass\n") \
        == {"sweep"}


# ------------------------------------------------------------------ the tests themselves
TESTS = Path(__file__).resolve().parent
# Keel's private store, files, wiring and shared reads, and a service's private dependencies
PRIVATE_WIRING = {"_services", "_workspace", "_registry", "_data", "_deps"}


def private_wiring_uses(source: str) -> list[int]:
    """Lines that read Keel's (or a service's) private wiring off an object: keel._services.registry,
    keel._workspace.dataset_dir(...), keel.policy._deps."""
    return sorted(node.lineno for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Attribute) and node.attr in PRIVATE_WIRING)


def test_no_test_bench_or_script_reaches_keels_private_wiring():
    """Tests, benchmarks and scripts open the workspace's store and wire the services' dependencies in
    the open (tests/store_helpers.py: the `store` fixture, opened_store, workspace_of, service_dependencies;
    a bench or a script opens Registry(Workspace(root).registry_path))."""
    sources = [*sorted(TESTS.glob("*.py")), *sorted((TESTS.parent / "bench").glob("*.py")),
               *sorted((TESTS.parent / "scripts").glob("*.py"))]
    uses = [f"{path.relative_to(TESTS.parent)}:{line}" for path in sources
            for line in private_wiring_uses(path.read_text())]
    assert uses == []


def test_the_private_wiring_check_catches_each_form():
    reaching = ("rows = keel._services.registry.dataset_versions(project.id)\n"
                "folder = window.controller.keel._workspace.dataset_dir('p')\n"
                "deps = keel.policy._deps\n"
                "registry = store(keel)\n"
                "services = 'keel._services'\n")
    assert private_wiring_uses(reaching) == [1, 2, 3]
