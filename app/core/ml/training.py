"""Pipeline presets, fitting and hold-out / cross-validated evaluation.

A fit can run in a child process (spawn) so that it can be cancelled for real:
`fit_cancellable` terminates the child on request and leaves nothing behind.
"""

import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from app.core.domain import settings as domain_settings
from app.core.domain.entities import Schema
from app.core.domain.errors import ValidationError
from app.core.ml import datasets
from app.core.ml.artifacts import Estimator
from app.core.ml.childproc import ChildQueue, capped_native_threads, threads_left  # noqa: F401 - threads_left: part of this API
from app.core.ml.evaluation import Values, compute_metrics

HOLDOUT_SHARE = 0.2

Progress = Callable[[float, str], None]  # (fraction done, what is happening)

PRESET_LABELS = domain_settings.PRESET_LABELS  # in the domain: the window names presets without importing this module


def make_estimator(task: str, preset: str, params: dict, seed: int) -> Estimator:
    from sklearn import ensemble, linear_model

    if task == "classification":
        factories = {
            "logreg": lambda: linear_model.LogisticRegression(max_iter=1000),
            "random_forest": lambda: ensemble.RandomForestClassifier(n_estimators=200, n_jobs=1, random_state=seed),
            "hgb": lambda: ensemble.HistGradientBoostingClassifier(random_state=seed),
        }
    else:
        factories = {
            "ridge": lambda: linear_model.Ridge(),
            "random_forest": lambda: ensemble.RandomForestRegressor(n_estimators=200, n_jobs=1, random_state=seed),
            "hgb": lambda: ensemble.HistGradientBoostingRegressor(random_state=seed),
        }
    estimator = factories[preset]()
    unknown = sorted(set(params) - set(estimator.get_params()))
    if unknown:
        raise ValidationError(
            f"unknown parameter(s) {', '.join(unknown)} for preset {preset!r} "
            f"(known: {', '.join(sorted(estimator.get_params()))})"
        )
    try:
        estimator.set_params(**params)
        # set_params stores any value; sklearn checks types and ranges only in fit. Check now,
        # so a bad --param is refused when it is set, not as a crash in a later train.
        estimator._validate_params()
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"bad --param for preset {preset!r}: {exc}") from None
    return estimator


def make_pipeline(schema: Schema, task: str, preset: str, params: dict, seed: int) -> Estimator:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    kinds = datasets.column_kinds(schema)
    categorical = [name for name in schema.features if kinds[name] == "categorical"]
    numeric = [name for name in schema.features if kinds[name] != "categorical"]
    transformers = []
    if numeric:
        transformers.append((
            "numeric",
            Pipeline([
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]),
            numeric,
        ))
    if categorical:
        transformers.append((
            "categorical",
            Pipeline([
                ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]),
            categorical,
        ))
    preprocess = ColumnTransformer(transformers, remainder="drop")
    return Pipeline([("preprocess", preprocess), ("model", make_estimator(task, preset, params, seed))])


@dataclass
class FitResult:
    pipeline: object
    metrics: dict[str, float]
    params: dict
    seconds: float
    fit_seconds: float
    train_rows: int
    test_rows: int
    classes: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    # those of the process that fitted it (a child's, for a cancellable fit: the caller need not import them)
    library_versions: dict[str, str] = field(default_factory=dict)


def library_versions() -> dict[str, str]:
    import sklearn
    import skops

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "skops": skops.__version__,
    }


def check_trainable(frame: pd.DataFrame, schema: Schema, source: str = "training data") -> None:
    target = schema.target
    labelled = frame[frame[target].notna()]
    if len(labelled) < datasets.MIN_TRAINING_ROWS:
        raise ValidationError(
            f"{source}: {len(labelled)} labelled row(s); training needs at least {datasets.MIN_TRAINING_ROWS}"
        )
    if schema.task == "classification":
        classes = labelled[target].unique()
        if len(classes) < 2:
            raise ValidationError(
                f"{source}: target {target!r} has a single class ({classes[0]!r}); classification needs at least two"
            )


def split_holdout(X: pd.DataFrame, y: np.ndarray, task: str,
                  seed: int) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    stratify = None
    if task == "classification":
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2 and len(counts) * 2 <= len(y) * HOLDOUT_SHARE:
            stratify = y
    return train_test_split(X, y, test_size=HOLDOUT_SHARE, random_state=seed, stratify=stratify)


def evaluate_pipeline(pipeline: Estimator, task: str, X: pd.DataFrame, y: Values) -> dict[str, float]:
    predictions = pipeline.predict(X)
    if task == "classification" and hasattr(pipeline, "predict_proba"):
        return compute_metrics(task, y, predictions, pipeline.predict_proba(X), pipeline.classes_)
    return compute_metrics(task, y, predictions)


def fit_and_evaluate(frame: pd.DataFrame, schema: Schema, preset: str, params: dict, seed: int,
                     cv_folds: int = 0, progress: Progress | None = None,
                     refit_on_all_rows: bool = False) -> FitResult:
    """Hold-out split, fit, evaluate; optional k-fold CV on the training part. Runs anywhere,
    with native thread pools capped to the cores the machine has left.
    refit_on_all_rows: after the evaluation, the model returned is the same pipeline fitted on every
    row, hold-out included (the metrics then describe the procedure; refitted).
    """
    with capped_native_threads():
        result = _fit_and_evaluate(frame, schema, preset, params, seed, cv_folds, progress)
        return refitted(result, frame, schema, preset, params, seed) if refit_on_all_rows else result


def refitted(result: FitResult, frame: pd.DataFrame, schema: Schema, preset: str, params: dict,
             seed: int) -> FitResult:
    """The evaluated result with its pipeline fitted again on all the labelled rows. What the hold-out
    rows calibrate (the label-free estimate) is the evaluated fit's probabilities on them, kept in
    extra["holdout_proba"] with their classes: the refitted model saw those rows."""
    evaluated = result.pipeline
    labelled = frame[frame[schema.target].notna()]
    test_positions = result.extra.get("test_positions", [])
    if schema.task == "classification" and hasattr(evaluated, "predict_proba") and test_positions:
        X_test = datasets.to_model_frame(labelled.iloc[test_positions], schema)
        result.extra["holdout_proba"] = np.asarray(evaluated.predict_proba(X_test), dtype=float)
        result.extra["holdout_classes"] = list(result.classes)  # the evaluated fit's
    started = time.perf_counter()
    pipeline = make_pipeline(schema, schema.task, preset, params, seed)
    result.pipeline = pipeline.fit(datasets.to_model_frame(labelled, schema), datasets.target_array(labelled, schema))
    result.fit_seconds += time.perf_counter() - started
    result.train_rows = len(labelled)
    result.classes = [c.item() if hasattr(c, "item") else c for c in getattr(result.pipeline, "classes_", [])]
    result.params = {**result.params, "refit_on_all_rows": True}
    return result


def fit_window(frame: pd.DataFrame, schema: Schema, preset: str, params: dict, seed: int) -> Estimator:
    """A pipeline fitted on all the frame's rows (no hold-out), in this process, with native
    thread pools capped like fit_and_evaluate's: the policy's candidate windows."""
    pipeline = make_pipeline(schema, schema.task, preset, params, seed)
    with capped_native_threads():
        return pipeline.fit(datasets.to_model_frame(frame, schema), datasets.target_array(frame, schema))


def _fit_and_evaluate(frame: pd.DataFrame, schema: Schema, preset: str, params: dict, seed: int,
                      cv_folds: int, progress: Progress | None) -> FitResult:
    report = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    task = schema.task
    check_trainable(frame, schema)
    labelled = frame[frame[schema.target].notna()]
    X = datasets.to_model_frame(labelled, schema)
    y = datasets.target_array(labelled, schema)
    X_train, X_test, y_train, y_test = split_holdout(X, y, task, seed)
    report(0.1, f"training on {len(X_train)} rows")
    pipeline = make_pipeline(schema, task, preset, params, seed)
    fit_started = time.perf_counter()
    pipeline.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - fit_started
    report(0.8, "evaluating on the hold-out set")
    metrics = evaluate_pipeline(pipeline, task, X_test, y_test)
    if cv_folds and cv_folds >= 2:
        metrics.update(_cross_validate(schema, preset, params, seed, X_train, y_train, cv_folds))
    report(1.0, "done")
    estimator_params = {k: v for k, v in pipeline.named_steps["model"].get_params().items()
                        if isinstance(v, (int, float, str, bool, type(None)))}
    return FitResult(
        pipeline=pipeline,
        metrics=metrics,
        params={"preset": preset, **estimator_params, "overrides": params, "holdout_share": HOLDOUT_SHARE, "cv_folds": cv_folds},
        seconds=time.perf_counter() - started,
        fit_seconds=fit_seconds,
        train_rows=len(X_train),
        test_rows=len(X_test),
        classes=[c.item() if hasattr(c, "item") else c for c in getattr(pipeline, "classes_", [])],
        extra={"test_positions": labelled.index.get_indexer(X_test.index).tolist()},
        library_versions=library_versions(),
    )


def _cross_validate(schema: Schema, preset: str, params: dict, seed: int, X: pd.DataFrame, y: np.ndarray,
                    folds: int) -> dict[str, float]:
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

    task = schema.task
    scoring = "accuracy" if task == "classification" else "r2"
    splitter = (StratifiedKFold if task == "classification" else KFold)(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(make_pipeline(schema, task, preset, params, seed), X, y, cv=splitter, scoring=scoring)
    return {f"cv_{scoring}_mean": float(scores.mean()), f"cv_{scoring}_std": float(scores.std())}


# --------------------------------------------------------------------------- cancellable fit
def _child_fit(queue: ChildQueue, frame: pd.DataFrame, schema: Schema, preset: str, params: dict, seed: int,
               cv_folds: int, artifact_tmp: str, refit_on_all_rows: bool = False) -> None:
    """Runs in a spawned child: fit, save the model to artifact_tmp, send back the result."""
    from app.core.ml.childproc import report_failure

    try:
        from app.core.ml.artifacts import dump_model

        result = fit_and_evaluate(frame, schema, preset, params, seed, cv_folds,
                                  progress=lambda f, m: queue.put(("progress", f, m)),
                                  refit_on_all_rows=refit_on_all_rows)
        dump_model(result.pipeline, Path(artifact_tmp))
        result.pipeline = None
        queue.put(("done", result))
    except BaseException as exc:  # every failure goes back to the parent as a message
        report_failure(queue, exc)


def fit_cancellable(frame: pd.DataFrame, schema: Schema, preset: str, params: dict, seed: int, cv_folds: int,
                    artifact_tmp: str | Path, cancel_event: threading.Event | None = None,
                    progress: Progress | None = None, refit_on_all_rows: bool = False) -> FitResult:
    """Fit in a spawned child process. Setting cancel_event terminates it within ~0.1 s."""
    from app.core.ml.childproc import run_in_child

    return run_in_child(_child_fit, (frame, schema, preset, params, seed, cv_folds, str(artifact_tmp),
                                     refit_on_all_rows),
                        cancel_event=cancel_event, progress=progress, name="training",
                        cancelled_message="training cancelled; nothing was saved")


def _child_fit_window(queue: ChildQueue, frame: pd.DataFrame, schema: Schema, preset: str, params: dict,
                      seed: int) -> None:
    """Runs in a spawned child: fit_window, the fitted pipeline sent back."""
    from app.core.ml.childproc import report_failure

    try:
        queue.put(("done", fit_window(frame, schema, preset, params, seed)))
    except BaseException as exc:  # every failure goes back to the parent as a message
        report_failure(queue, exc)


def fit_window_cancellable(frame: pd.DataFrame, schema: Schema, preset: str, params: dict, seed: int,
                           cancel_event: threading.Event | None = None) -> Estimator:
    """fit_window; with a cancel_event, in a spawned child process that setting the event terminates
    within ~0.1 s (Cancelled). The pipeline comes back pickled over the pipe from this process's own
    child (no file is read); it is used, never saved."""
    if cancel_event is None:
        return fit_window(frame, schema, preset, params, seed)
    from app.core.ml.childproc import run_in_child

    return run_in_child(_child_fit_window, (frame, schema, preset, params, seed), cancel_event=cancel_event,
                        name="window fit", cancelled_message="retrain cancelled; nothing was saved")
