"""Each service is an object built once per workspace by Keel (keel.policy, keel.inbox, ...) and
handed its dependencies one by one, only those it uses: the workspace's store, shared reads, clock
and bounded caches, the other service objects it calls and the lifecycle actions
it takes. A front end holds the service objects, never their dependencies or the store."""

from types import SimpleNamespace

from cli_helpers import rewired

from app.core.services.cache import BoundedCache
from app.core.services.lifecycle import Keel
from app.core.services.policy import PolicyService

SERVICE_OBJECTS = ("inbox", "batches", "monitoring", "policy", "insights", "traffic", "labels", "reports", "mlflow",
                   "backup", "bundle", "verifier", "upkeep")
# What each service is handed besides the store, the shared reads and the clock: the other services it
# calls (Keel's own objects), the lifecycle actions it takes (Keel's bound methods), the workspace's caches
WIRING = {
    "inbox": {"ingest"},
    "batches": {"ingest"},
    "traffic": set(),
    "monitoring": {"traffic", "drift_references"},
    "policy": {"inbox", "monitoring", "loaded_models", "train", "deploy", "deploy_holding_lock", "rollback"},
    "insights": set(),
    "labels": set(),
    "reports": {"insights"},
    "mlflow": set(),
    "backup": {"rewrite_production_manifest"},
    "bundle": {"rewrite_production_manifest"},
    "verifier": {"rewrite_production_manifest"},
    "upkeep": {"backup"},
}
SHARED = {"registry", "workspace", "data", "clock"}


def shared_of(keel) -> dict:
    """The store, files, shared reads and clock of keel's workspace, as the policy holds them (each
    other service must hold the very same objects) and the clock Keel shows."""
    policy = vars(keel.policy)
    return {"registry": policy["_registry"], "workspace": policy["_workspace"], "data": policy["_data"],
            "clock": keel.clock}


def wiring_faults(keel, name: str, service, handed: set[str]) -> list[str]:
    """What is wrong with a service's wiring: a dependency it was not meant to get, or one that is not
    the workspace's own (Keel's store, reads, clock, service objects, bound lifecycle methods, caches)."""
    faults = []
    for attribute, value in vars(service).items():
        dependency = attribute.lstrip("_")
        if dependency in SHARED:
            own = shared_of(keel)[dependency]
            if value is not own:
                faults.append(f"{name}.{dependency} is not the workspace's")
        elif dependency not in handed:
            faults.append(f"{name} holds {dependency}, which it was not meant to get")
        elif dependency in SERVICE_OBJECTS:
            if value is not getattr(keel, dependency):
                faults.append(f"{name}.{dependency} is not Keel's {dependency} service")
        elif dependency in ("drift_references", "loaded_models"):
            holder = {"drift_references": keel.monitoring, "loaded_models": keel.policy}[dependency]
            if value is not vars(holder)[f"_{dependency}"] or not isinstance(value, BoundedCache):
                faults.append(f"{name}.{dependency} is not the workspace's cache")
        elif getattr(value, "__self__", None) is not keel or value != getattr(keel, dependency):
            faults.append(f"{name}.{dependency} is not Keel's {dependency}")
    missing = handed - {attribute.lstrip("_") for attribute in vars(service)}
    return faults + [f"{name} lacks {dependency}" for dependency in sorted(missing)]


def test_each_service_is_handed_the_workspaces_store_and_only_the_services_and_actions_it_calls(tmp_path):
    keel = Keel.open(tmp_path / "ws")
    try:
        assert set(WIRING) == set(SERVICE_OBJECTS)
        for name, handed in WIRING.items():
            assert wiring_faults(keel, name, getattr(keel, name), handed) == [], name
        assert not hasattr(keel, "registry")  # front ends never take the store off Keel
        assert not hasattr(keel, "workspace") and not hasattr(keel, "services")
    finally:
        keel.close()


def test_the_wiring_check_catches_a_foreign_store_a_stray_action_and_a_copy_of_a_service(tmp_path):
    keel, other = Keel.open(tmp_path / "ws"), Keel.open(tmp_path / "other")
    try:
        assert wiring_faults(keel, "inbox", rewired(keel.inbox, registry=vars(other.policy)["_registry"]), {"ingest"}) \
            == ["inbox.registry is not the workspace's"]
        assert wiring_faults(keel, "inbox", keel.inbox, set()) == ["inbox holds ingest, which it was not meant to get"]
        assert wiring_faults(keel, "inbox", rewired(keel.inbox, ingest=other.ingest), {"ingest"}) \
            == ["inbox.ingest is not Keel's ingest"]
        copy = rewired(keel.policy, monitoring=rewired(keel.monitoring))
        assert wiring_faults(keel, "policy", copy, WIRING["policy"]) == ["policy.monitoring is not Keel's monitoring service"]
        assert wiring_faults(keel, "traffic", keel.traffic, {"ingest"}) == ["traffic lacks ingest"]
    finally:
        keel.close()
        other.close()


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


def test_two_workspaces_never_share_a_cache(tmp_path):
    first, second = Keel.open(tmp_path / "one"), Keel.open(tmp_path / "two")
    try:
        assert vars(first.policy)["_loaded_models"] is not vars(second.policy)["_loaded_models"]
        assert vars(first.monitoring)["_drift_references"] is not vars(second.monitoring)["_drift_references"]
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
