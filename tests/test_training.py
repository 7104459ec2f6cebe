"""Training: every preset for both tasks, skops round-trips, --param, metrics, CV, run records, the window."""

import threading

import numpy as np
import pandas as pd
import pytest
from cli_helpers import cli, create_project, loans, write_csv
from sklearn.datasets import load_diabetes, load_iris

from app.core.domain.decisions import SamplingRecord
from app.core.domain.errors import Cancelled, ValidationError
from app.core.ml import artifacts, datasets, training
from app.core.services.lifecycle import Keel


@pytest.fixture(autouse=True)
def one_thread():
    """OpenMP in hgb spins badly on a shared, loaded machine (10 s instead of 0.2 s for one fit
    seen here at load 5 on 2 cores): fit on one thread, as the GUI's child process does."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def raw_table(frame: pd.DataFrame, name: str) -> datasets.RawTable:
    return datasets.RawTable(frame=frame.astype(str), source=name)


def prepared(frame: pd.DataFrame, target: str, name: str):
    raw = raw_table(frame, name)
    schema = datasets.infer_schema(raw, target)
    return datasets.clean(raw, schema, purpose="create").frame, schema


@pytest.fixture(scope="module")
def diabetes():
    """scikit-learn's bundled regression data, with one categorical column."""
    frame = load_diabetes(as_frame=True, scaled=False).frame.head(200)
    frame["sex"] = frame["sex"].map({1.0: "f", 2.0: "m"})
    return prepared(frame, "target", "diabetes.csv")


@pytest.fixture(scope="module")
def iris():
    """Three string classes: one-vs-rest ROC AUC."""
    data = load_iris(as_frame=True)
    frame = data.frame.assign(target=[data.target_names[t] for t in data.target])
    return prepared(frame, "target", "iris.csv")


@pytest.fixture(scope="module")
def credit():
    return prepared(loans(200, seed=9), "default", "loans.csv")


def test_schemas_are_inferred_with_the_right_task_and_kinds(diabetes, iris, credit):
    assert diabetes[1].task == "regression" and diabetes[1].target_kind == "float"
    assert datasets.column_kinds(diabetes[1])["sex"] == "categorical"
    assert iris[1].task == "classification" and iris[1].target_kind == "string"
    kinds = datasets.column_kinds(credit[1])
    assert (credit[1].target_kind, kinds["region"], kinds["has_mortgage"], kinds["income"]) == (
        "integer", "categorical", "boolean", "numeric")


@pytest.mark.parametrize("data, preset", [
    ("credit", "logreg"), ("credit", "random_forest"), ("credit", "hgb"),
    ("iris", "logreg"),
    ("diabetes", "ridge"), ("diabetes", "random_forest"), ("diabetes", "hgb"),
])
def test_every_preset_trains_and_round_trips_through_skops(request, tmp_path, data, preset):
    frame, schema = request.getfixturevalue(data)
    result = training.fit_and_evaluate(frame, schema, preset, {}, seed=3)
    expected = {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"} \
        if schema.task == "classification" else {"r2", "rmse", "mae"}
    assert set(result.metrics) == expected
    assert all(np.isfinite(v) for v in result.metrics.values())
    assert result.train_rows + result.test_rows == len(frame)

    path = tmp_path / f"{preset}.skops"
    digest = artifacts.dump_model(result.pipeline, path)
    loaded = artifacts.load_model(path, digest)  # Keel's allow-list only: no extra types
    X = datasets.to_model_frame(frame, schema)
    np.testing.assert_array_equal(loaded.predict(X), result.pipeline.predict(X))
    if schema.task == "classification":
        np.testing.assert_allclose(loaded.predict_proba(X), result.pipeline.predict_proba(X))


def test_classification_metrics_are_sensible(credit, iris):
    result = training.fit_and_evaluate(*credit, "logreg", {}, seed=1)
    assert result.metrics["accuracy"] > 0.7 and result.metrics["roc_auc"] > 0.75
    assert result.classes == [0, 1]
    multi = training.fit_and_evaluate(*iris, "logreg", {}, seed=1)
    assert multi.metrics["roc_auc"] > 0.9 and multi.classes == ["setosa", "versicolor", "virginica"]


def test_regression_metrics_agree_with_each_other(diabetes):
    frame, schema = diabetes
    result = training.fit_and_evaluate(frame, schema, "ridge", {}, seed=0)
    metrics = result.metrics
    assert 0 < metrics["mae"] <= metrics["rmse"]
    y = datasets.target_array(frame, schema)
    assert 0.1 < metrics["r2"] < 1 and metrics["rmse"] < y.std() * 1.5


def test_the_holdout_split_is_stratified(credit):
    frame, schema = credit
    X = datasets.to_model_frame(frame, schema)
    y = datasets.target_array(frame, schema)
    _, _, y_train, y_test = training.split_holdout(X, y, "classification", seed=0)
    assert abs(y_train.mean() - y_test.mean()) < 0.02


@pytest.mark.parametrize("data, key", [("credit", "cv_accuracy"), ("diabetes", "cv_r2")])
def test_k_fold_cross_validation_when_asked(request, data, key):
    frame, schema = request.getfixturevalue(data)
    preset = "logreg" if schema.task == "classification" else "ridge"
    without = training.fit_and_evaluate(frame, schema, preset, {}, seed=0, cv_folds=0)
    assert not any(k.startswith("cv_") for k in without.metrics)
    with_cv = training.fit_and_evaluate(frame, schema, preset, {}, seed=0, cv_folds=3)
    assert {f"{key}_mean", f"{key}_std"} <= set(with_cv.metrics)
    assert with_cv.metrics[f"{key}_std"] >= 0 and with_cv.params["cv_folds"] == 3
    assert {k: v for k, v in with_cv.metrics.items() if not k.startswith("cv_")} == without.metrics


def test_the_same_seed_gives_the_same_model(credit):
    first = training.fit_and_evaluate(*credit, "random_forest", {"n_estimators": 20}, seed=5)
    again = training.fit_and_evaluate(*credit, "random_forest", {"n_estimators": 20}, seed=5)
    assert first.metrics == again.metrics


def test_param_overrides_and_unknown_keys(credit):
    result = training.fit_and_evaluate(*credit, "logreg", {"C": 0.25, "max_iter": 300}, seed=0)
    model = result.pipeline.named_steps["model"]
    assert (model.C, model.max_iter) == (0.25, 300)
    assert result.params["overrides"] == {"C": 0.25, "max_iter": 300} and result.params["C"] == 0.25
    with pytest.raises(ValidationError, match=r"unknown parameter\(s\) n_estimators for preset 'logreg'"):
        training.make_estimator("classification", "logreg", {"n_estimators": 5}, 0)
    with pytest.raises(ValidationError, match="bad --param for preset 'hgb'"):
        training.make_estimator("classification", "hgb", {"max_iter": "many"}, 0)


def test_cli_param_is_recorded_with_the_run(capsys, workspace, tmp_path, store):
    create_project(capsys, workspace, tmp_path, extra=("--model", "logreg", "--param", "C=0.5", "--seed", "7"))
    code, out, err = cli(capsys, workspace, "project", "create", "other", "--data", str(tmp_path / "loans-initial.csv"),
                         "--target", "default", "--model", "logreg", "--param", "n_estimators=3")
    assert code == 2 and "unknown parameter(s) n_estimators for preset 'logreg'" in out["error"]["message"]

    code, trained, err = cli(capsys, workspace, "train", "loans")
    assert code == 0, err
    keel = Keel.open(workspace)
    try:
        run = store(keel).run(trained["run_id"])
        params = store(keel).run_params(trained["run_id"])
        assert (run.seed, run.preset, run.dataset_versions, run.status) == (7, "logreg", (1,), "finished")
        assert {"python", "scikit-learn", "numpy", "pandas", "skops"} <= set(run.library_versions)
        assert run.seconds > 0 and run.finished_at >= run.started_at
        assert (params["C"], params["overrides"], params["seed"], params["preset"]) == (0.5, {"C": 0.5}, 7, "logreg")
        assert params["train_rows"] + params["test_rows"] == 120
        assert store(keel).run_metrics(trained["run_id"]) == trained["metrics"]
        model = keel.load_version("loans", 1).model
        assert model.named_steps["model"].C == 0.5
    finally:
        keel.close()


def test_cli_regression_project_on_a_bundled_dataset(capsys, workspace, tmp_path):
    frame = load_diabetes(as_frame=True, scaled=False).frame.head(150)
    data = write_csv(tmp_path / "diabetes.csv", frame)
    code, created, err = cli(capsys, workspace, "project", "create", "sugar", "--data", str(data), "--target", "target",
                             "--model", "ridge", "--cv", "3")
    assert code == 0, err
    assert created["task"] == "regression" and created["settings"]["metric"] == "r2"
    code, trained, err = cli(capsys, workspace, "train", "sugar")
    assert code == 0, err
    assert {"r2", "rmse", "mae", "cv_r2_mean", "cv_r2_std"} <= set(trained["metrics"])
    code, out, _ = cli(capsys, workspace, "project", "set", "sugar", "--metric", "rmse")
    assert code == 0 and out["settings"]["metric"] == "rmse"
    code, out, _ = cli(capsys, workspace, "project", "set", "sugar", "--model", "logreg")
    assert code == 2 and "unknown preset 'logreg' for regression" in out["error"]["message"]


def test_the_training_window_takes_the_newest_rows(capsys, workspace, tmp_path):
    create_project(capsys, workspace, tmp_path, extra=("--model", "logreg", "--window", "60"))
    newer = loans(50, seed=12)
    assert cli(capsys, workspace, "ingest", "loans", str(write_csv(tmp_path / "newer.csv", newer)))[0] == 0
    keel = Keel.open(workspace)
    try:
        frame, used = keel.training_frame("loans")
        first = keel.dataset_frame("loans", 1)
        assert used == [1, 2] and len(frame) == 60
        np.testing.assert_allclose(frame["income"].astype(float), np.concatenate(
            [first["income"].astype(float).to_numpy()[-10:], newer["income"].to_numpy(float)]))
        keel.set_project("loans", {"window": None})
        assert len(keel.training_frame("loans")[0]) == 170
    finally:
        keel.close()


def test_unlabelled_rows_never_reach_training(capsys, workspace, tmp_path):
    create_project(capsys, workspace, tmp_path)
    unlabelled = loans(40, seed=13).drop(columns="default")
    assert cli(capsys, workspace, "ingest", "loans", str(write_csv(tmp_path / "u.csv", unlabelled)))[0] == 0
    keel = Keel.open(workspace)
    try:
        frame, used = keel.training_frame("loans")
        assert used == [1] and len(frame) == 120 and frame["default"].notna().all()
    finally:
        keel.close()


def test_a_fit_in_a_child_process_completes_or_cancels(credit, tmp_path):
    frame, schema = credit
    artifact = tmp_path / "child.skops"
    messages = []
    result = training.fit_cancellable(frame, schema, "logreg", {}, 0, 0, artifact,
                                      progress=lambda fraction, message: messages.append(fraction))
    assert result.pipeline is None and "accuracy" in result.metrics and artifact.is_file()
    assert messages and messages[-1] == 1.0
    artifacts.load_model(artifact, artifacts.sha256_file(artifact))

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        training.fit_cancellable(frame, schema, "hgb", {}, 0, 0, tmp_path / "never.skops", cancel_event=cancel)
    assert not (tmp_path / "never.skops").exists()


def test_a_fit_caps_native_thread_pools_to_the_cores_left(monkeypatch, credit):
    """On a busy machine (load average at the core count) a fit's OpenMP/BLAS pools get one thread."""
    import os

    from threadpoolctl import threadpool_info, threadpool_limits

    monkeypatch.setattr(os, "getloadavg", lambda: (float(os.cpu_count() or 1), 0.0, 0.0))
    assert training.threads_left() == 1
    seen = []
    real_fit = training._fit_and_evaluate

    def fit_watching_pools(*args, **kwargs):
        seen.extend(pool["num_threads"] for pool in threadpool_info())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(training, "_fit_and_evaluate", fit_watching_pools)
    frame, schema = credit
    with threadpool_limits(limits=2):  # as a process outside this test's one-thread fixture starts
        training.fit_and_evaluate(frame, schema, "hgb", {}, seed=1)
    assert seen and set(seen) == {1}


def test_a_fit_never_raises_a_cap_set_before_it(monkeypatch, credit):
    """A child process capped to one thread (this test's fixture, the GUI's training child) stays at one."""
    import os

    from threadpoolctl import threadpool_info

    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    seen = []
    real_fit = training._fit_and_evaluate
    monkeypatch.setattr(training, "_fit_and_evaluate", lambda *a, **k: (
        seen.extend(p["num_threads"] for p in threadpool_info()), real_fit(*a, **k))[1])
    frame, schema = credit
    training.fit_and_evaluate(frame, schema, "logreg", {}, seed=1)
    assert seen and set(seen) == {1}


def test_an_idle_machine_leaves_every_core_to_a_fit(monkeypatch):
    import os

    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert training.threads_left() == (os.cpu_count() or 1)


def test_a_training_over_the_memory_budget_samples_its_rows_and_records_it(capsys, workspace, tmp_path, monkeypatch):
    create_project(capsys, workspace, tmp_path, rows=400, extra=("--model", "logreg"))
    keel = Keel.open(workspace)
    try:
        per_row = datasets.training_bytes_per_row(keel.project("loans").schema)
        monkeypatch.setenv("KEEL_TRAIN_MEMORY_MB", str(100 * per_row / 2**20))  # room for 100 of the 400 rows
        data = keel.training_data("loans")
        assert 60 < len(data.frame) < 140 and data.frame["default"].notna().all()
        assert data.sampling == SamplingRecord(sampled_rows=len(data.frame), of_rows=400, memory_budget_mb=0)
        assert keel.training_data("loans").frame.equals(data.frame)  # seeded: the same sample each time
        policy_rows, policy_sampling = keel.labelled_rows("loans")  # what a policy challenger chooses from
        assert policy_sampling == data.sampling and list(policy_rows["__version__"].unique()) == [1]
        result = keel.train("loans")
        card = keel.insights.version_card("loans", result.version)
        assert card.training.sample == data.sampling  # as the run logged it
        assert "training_sample" not in card.parameters
        monkeypatch.delenv("KEEL_TRAIN_MEMORY_MB")
        assert keel.training_data("loans").sampling is None and len(keel.training_data("loans").frame) == 400
    finally:
        keel.close()


def test_a_window_fitted_in_this_process_caps_native_thread_pools(monkeypatch, credit):
    """The policy's candidate windows are fitted in the app's own process: capped like any fit."""
    import os

    from sklearn.pipeline import Pipeline
    from threadpoolctl import threadpool_info, threadpool_limits

    monkeypatch.setattr(os, "getloadavg", lambda: (float(os.cpu_count() or 1), 0.0, 0.0))
    seen = []
    real_fit = Pipeline.fit
    monkeypatch.setattr(Pipeline, "fit", lambda self, *a, **k: (
        seen.extend(p["num_threads"] for p in threadpool_info()), real_fit(self, *a, **k))[1])
    frame, schema = credit
    with threadpool_limits(limits=2):  # as a process outside this test's one-thread fixture starts
        model = training.fit_window(frame, schema, "hgb", {}, seed=1)
    assert seen and set(seen) == {1}
    assert len(model.predict(datasets.to_model_frame(frame.head(5), schema))) == 5


def test_a_refit_on_all_rows_keeps_the_hold_out_metrics_and_the_evaluated_fit_s_probabilities(credit):
    frame, schema = credit
    evaluated = training.fit_and_evaluate(frame, schema, "logreg", {}, seed=2)
    refit = training.fit_and_evaluate(frame, schema, "logreg", {}, seed=2, refit_on_all_rows=True)
    assert refit.metrics == evaluated.metrics and refit.test_rows == evaluated.test_rows
    assert refit.train_rows == len(frame) and refit.params["refit_on_all_rows"] is True
    X, y = datasets.to_model_frame(frame, schema), datasets.target_array(frame, schema)
    on_all = training.make_pipeline(schema, "classification", "logreg", {}, 2).fit(X, y)
    np.testing.assert_allclose(refit.pipeline.predict_proba(X), on_all.predict_proba(X))
    holdout = X.iloc[refit.extra["test_positions"]]
    np.testing.assert_allclose(refit.extra["holdout_proba"], evaluated.pipeline.predict_proba(holdout))
    assert refit.extra["holdout_classes"] == refit.classes == [0, 1]


def test_a_regressor_refitted_on_all_rows_keeps_no_hold_out_rows_in_its_reference(capsys, workspace, tmp_path, store):
    """No probabilities to keep: its hold-out rows are marked "refit", and nothing calibrates on them."""
    from app.core.domain.entities import TrainingData

    frame = load_diabetes(as_frame=True, scaled=False).frame.head(150)
    data = write_csv(tmp_path / "diabetes.csv", frame)
    assert cli(capsys, workspace, "project", "create", "sugar", "--data", str(data), "--target", "target",
               "--model", "ridge")[0] == 0
    keel = Keel.open(workspace)
    try:
        rows, versions = keel.training_frame("sugar")
        trained = keel.train("sugar", data=TrainingData(rows, versions, refit_on_all_rows=True))
        params = store(keel).run_params(trained.run_id)
        assert params["refit_on_all_rows"] and params["train_rows"] == 150 and params["test_rows"] == 30
        split = keel.reference_frame("sugar", trained.version)["__split__"]
        assert split.value_counts().to_dict() == {"train": 120, "refit": 30}
    finally:
        keel.close()
