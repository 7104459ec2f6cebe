"""Each service is an object built once per workspace by Keel (keel.policy, keel.inbox, ...) and
handed only its dependencies: the lifecycle actions it may call, the shared reads, and caches that
belong to the workspace and have a bound. A front end holds the service objects, never their
dependencies or the store. The tests look at the wiring through the service objects themselves."""

from types import SimpleNamespace

from app.core.services.cache import BoundedCache
from app.core.services.dependencies import Dependencies
from app.core.services.lifecycle import Keel
from app.core.services.policy import PolicyService


def test_each_service_gets_the_workspaces_store_and_only_the_lifecycle_actions_it_calls(tmp_path):
    keel = Keel.open(tmp_path / "ws")
    try:
        wired = {name: vars(getattr(keel, name))["_deps"] for name in ("insights", "inbox", "monitoring", "backup")}
        assert wired["inbox"].ingest == keel.ingest
        assert wired["backup"].rewrite_production_manifest == keel.rewrite_production_manifest
        for deps in wired.values():
            assert deps.registry is wired["insights"].registry and deps.workspace == wired["insights"].workspace
            assert deps.clock is keel.clock
        assert not hasattr(wired["insights"], "deploy") and not hasattr(wired["inbox"], "train")
        assert not hasattr(keel, "registry")  # front ends never take the store off Keel
        assert not hasattr(keel, "workspace") and not hasattr(keel, "services")
    finally:
        keel.close()


def test_the_policy_is_handed_the_services_it_calls_and_the_lifecycle_actions_it_takes(tmp_path):
    keel = Keel.open(tmp_path / "ws")
    try:
        policy_wiring = vars(keel.policy)
        assert policy_wiring["_inbox"] is keel.inbox and policy_wiring["_monitoring"] is keel.monitoring
        assert policy_wiring["_deploy"] == keel.deploy and policy_wiring["_rollback"] == keel.rollback
        assert policy_wiring["_train"] == keel.train and policy_wiring["_deploy_holding_lock"] == keel.deploy_holding_lock
        shared = vars(keel.insights)["_deps"]  # what every service reads through
        assert policy_wiring["_registry"] is shared.registry and policy_wiring["_data"] is shared.data
        assert isinstance(policy_wiring["_loaded_models"], BoundedCache)
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


# Services whose methods still hand a dependency bundle to their module's functions
PASSING_A_BUNDLE = {"inbox", "batches", "monitoring", "insights", "traffic", "labels", "reports", "mlflow",
                    "backup", "bundle", "verifier", "upkeep"}


def test_a_service_that_owns_its_rules_holds_its_dependencies_one_by_one_not_a_bundle(tmp_path):
    keel = Keel.open(tmp_path / "ws")
    try:
        for name in SERVICE_OBJECTS:
            bundles = [attribute for attribute, value in vars(getattr(keel, name)).items()
                       if isinstance(value, Dependencies)]
            assert bool(bundles) == (name in PASSING_A_BUNDLE), (name, bundles)
    finally:
        keel.close()


def test_two_workspaces_never_share_a_cache(tmp_path):
    first, second = Keel.open(tmp_path / "one"), Keel.open(tmp_path / "two")
    try:
        assert vars(first.policy)["_loaded_models"] is not vars(second.policy)["_loaded_models"]
        assert vars(first.monitoring)["_deps"].drift_references is not vars(second.monitoring)["_deps"].drift_references
    finally:
        first.close()
        second.close()


def test_the_policy_loads_a_model_version_once_and_keeps_a_bounded_number():
    loads = []

    def load_version(name, version):
        loads.append((name, version))
        return f"{name} v{version}"

    versions = {1: "aa", 2: "bb", 3: "cc"}
    cache = BoundedCache(2)
    service = PolicyService(
        registry=SimpleNamespace(model_version=lambda project_id, version: SimpleNamespace(
            id=version, sha256=versions[version])),
        data=SimpleNamespace(project=lambda name: SimpleNamespace(id=7, name=name), load_version=load_version),
        loaded_models=cache, workspace=None, inbox=None, monitoring=None,  # a load needs none of these
        train=None, deploy=None, deploy_holding_lock=None, rollback=None)
    assert service.loaded_model("p", 1) == service.loaded_model("p", 1) == "p v1"
    assert loads == [("p", 1)]
    service.loaded_model("p", 2)
    service.loaded_model("p", 3)  # over the bound: v1, the least recently used, goes
    assert len(cache) == 2
    service.loaded_model("p", 1)
    assert loads == [("p", 1), ("p", 2), ("p", 3), ("p", 1)]
    versions[3] = "dd"  # a file replaced under the same version id is loaded again, never served stale
    service.loaded_model("p", 3)
    assert loads[-1] == ("p", 3)
