"""Each service is an object built once per workspace by Keel (keel.policy, keel.inbox, ...) and
handed only its dependencies (wired by ServiceDependencies, which Keel keeps private): the lifecycle
actions it may call, the shared reads, and caches that belong to the workspace and have a bound. A
front end holds the service objects, never their dependencies or the store."""

from types import SimpleNamespace

from store_helpers import service_dependencies

from app.core.services import policy
from app.core.services.cache import BoundedCache
from app.core.services.lifecycle import Keel


def test_each_service_gets_the_workspaces_store_and_only_the_lifecycle_actions_it_calls(tmp_path, store):
    keel = Keel.open(tmp_path / "ws")
    try:
        services = service_dependencies(keel, store(keel))  # wired as Keel wires its own
        assert services.policy is services.policy  # built once, then kept
        assert services.policy.inbox is services.inbox and services.policy.monitoring is services.monitoring
        assert services.policy.deploy == keel.deploy and services.policy.rollback == keel.rollback
        assert services.inbox.ingest == keel.ingest
        assert services.workspace_upkeep.rewrite_production_manifest == keel.rewrite_production_manifest
        for deps in (services.insights, services.inbox, services.monitoring, services.policy, services.workspace_upkeep):
            assert deps.registry is services.registry and deps.workspace == services.workspace
            assert deps.clock is keel.clock
        assert not hasattr(services.insights, "deploy") and not hasattr(services.inbox, "train")
        assert not hasattr(keel, "registry")  # front ends never take the store off Keel
        assert not hasattr(keel, "workspace") and not hasattr(keel, "services")
    finally:
        keel.close()


SERVICE_OBJECTS = ("inbox", "batches", "monitoring", "policy", "insights", "traffic", "labels", "reports", "mlflow",
                   "backup", "bundle", "verifier", "upkeep")


def test_each_service_object_is_built_once_and_shows_no_dependencies_or_store(tmp_path):
    keel = Keel.open(tmp_path / "ws")
    try:
        for name in SERVICE_OBJECTS:
            service = getattr(keel, name)
            assert getattr(keel, name) is service, name  # built once per workspace, then kept
            public = {attribute for attribute in vars(service) if not attribute.startswith("_")}
            assert public == set(), (name, public)  # its dependencies stay private: no registry, no workspace
    finally:
        keel.close()


def test_two_workspaces_never_share_a_cache(tmp_path, store):
    first, second = Keel.open(tmp_path / "one"), Keel.open(tmp_path / "two")
    try:
        one, two = service_dependencies(first, store(first)), service_dependencies(second, store(second))
        assert one.loaded_models is not two.loaded_models
        assert one.drift_references is not two.drift_references
    finally:
        first.close()
        second.close()


def test_the_policy_loads_a_model_version_once_and_keeps_a_bounded_number():
    loads = []

    def load_version(name, version):
        loads.append((name, version))
        return f"{name} v{version}"

    versions = {1: "aa", 2: "bb", 3: "cc"}
    deps = SimpleNamespace(
        data=SimpleNamespace(project=lambda name: SimpleNamespace(id=7, name=name), load_version=load_version),
        registry=SimpleNamespace(model_version=lambda project_id, version: SimpleNamespace(
            id=version, sha256=versions[version])),
        loaded_models=BoundedCache(2))
    assert policy.loaded_model(deps, "p", 1) == policy.loaded_model(deps, "p", 1) == "p v1"
    assert loads == [("p", 1)]
    policy.loaded_model(deps, "p", 2)
    policy.loaded_model(deps, "p", 3)  # over the bound: v1, the least recently used, goes
    assert len(deps.loaded_models) == 2
    policy.loaded_model(deps, "p", 1)
    assert loads == [("p", 1), ("p", 2), ("p", 3), ("p", 1)]
    versions[3] = "dd"  # a file replaced under the same version id is loaded again, never served stale
    policy.loaded_model(deps, "p", 3)
    assert loads[-1] == ("p", 3)
