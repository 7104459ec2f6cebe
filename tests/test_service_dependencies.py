"""Each service is handed its dependencies, wired once per workspace by Keel (Keel.services):
the lifecycle actions it may call, the shared reads, and caches that belong to the workspace
and have a bound."""

from types import SimpleNamespace

from app.core.services import policy
from app.core.services.cache import BoundedCache
from app.core.services.lifecycle import Keel


def test_each_service_gets_the_workspaces_store_and_only_the_lifecycle_actions_it_calls(tmp_path):
    keel = Keel.open(tmp_path / "ws")
    try:
        services = keel.services
        assert services.policy is services.policy  # built once, then kept
        assert services.policy.inbox is services.inbox and services.policy.monitoring is services.monitoring
        assert services.policy.deploy == keel.deploy and services.policy.rollback == keel.rollback
        assert services.inbox.ingest == keel.ingest
        assert services.workspace_upkeep.rewrite_production_manifest == keel.rewrite_production_manifest
        for deps in (services.insights, services.inbox, services.monitoring, services.policy, services.workspace_upkeep):
            assert deps.registry is services.registry and deps.workspace == services.workspace
        assert not hasattr(services.insights, "deploy") and not hasattr(services.inbox, "train")
        assert not hasattr(keel, "registry")  # front ends never take the store off Keel
    finally:
        keel.close()


def test_two_workspaces_never_share_a_cache(tmp_path):
    first, second = Keel.open(tmp_path / "one"), Keel.open(tmp_path / "two")
    try:
        assert first.services.loaded_models is not second.services.loaded_models
        assert first.services.drift_references is not second.services.drift_references
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
