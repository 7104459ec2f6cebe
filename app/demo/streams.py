"""Labelled streams of every drift shape, for bench/drift_loop.py and the policy's tests.

Each shape yields batches in order (index 0, 1, ...); `initial` is the training data of
the first model (drawn from the stream's starting concept). Plain numpy, seeded:

    loan-abrupt       the loan simulator, concept A -> B at drift_at
    loan-gradual      A -> B over 6 batches from drift_at, then B
    loan-covariate    the inputs move at drift_at, the concept stays
    loan-stationary   concept A throughout
    hyperplane        a rotating hyperplane (10 features, 5 % label noise): the boundary
                      turns a little every batch from drift_at on and never stops
    sea               SEA concepts (x1 + x2 <= theta, 10 % noise): theta 8 -> 9.5 -> 7
                      at drift_at and 2 x drift_at
    agrawal           Agrawal's loan functions (9 attributes, 5 % noise): function 2 -> 3
                      at drift_at
    friedman          regression, Friedman #1 with a global recurring abrupt drift: the
                      relevant features swap at drift_at and swap back at 2 x drift_at
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from app.demo.simulator import make_batch

Generator = Callable[[np.random.Generator, int, "Shape", int], pd.DataFrame]


@dataclass(frozen=True)
class Shape:
    name: str
    task: str
    target: str
    batches: int
    batch_rows: int
    drift_at: int | None  # the first drifted batch; None: no drift (stationary)
    generate: Generator

    def batch(self, index: int, seed: int) -> pd.DataFrame:
        """Batch `index` (-1: the initial training data, `rows` from the starting concept)."""
        rng = np.random.default_rng([seed, index + 1])
        return self.generate(rng, index, self, self.batch_rows)

    def initial(self, rows: int, seed: int) -> pd.DataFrame:
        return self.generate(np.random.default_rng([seed, 0]), -1, self, rows)

    def stream(self, seed: int) -> Iterator[tuple[int, pd.DataFrame]]:
        for index in range(self.batches):
            yield index, self.batch(index, seed)

    def drifted(self, index: int) -> bool:
        return self.drift_at is not None and index >= self.drift_at


# --------------------------------------------------------------------------- the loan simulator
def _loan(kind: str) -> Generator:
    def generate(rng: np.random.Generator, index: int, shape: Shape, rows: int) -> pd.DataFrame:
        seed = int(rng.integers(1 << 31))
        drift_at = shape.drift_at
        if drift_at is None or index < drift_at:  # not drifted
            return make_batch(rows, seed=seed)
        if kind == "abrupt":
            return make_batch(rows, seed=seed, concept=1.0)
        if kind == "gradual":
            return make_batch(rows, seed=seed, concept=min(1.0, (index - drift_at + 1) / 6))
        return make_batch(rows, seed=seed, shift=1.0)
    return generate


# --------------------------------------------------------------------------- rotating hyperplane
HYPERPLANE_FEATURES = 10
HYPERPLANE_DEGREES_PER_BATCH = 3.0


def _hyperplane(rng: np.random.Generator, index: int, shape: Shape, rows: int) -> pd.DataFrame:
    base = np.random.default_rng(11)  # the same two directions in every batch of every seed
    first, second = base.normal(size=HYPERPLANE_FEATURES), base.normal(size=HYPERPLANE_FEATURES)
    second -= first * (first @ second) / (first @ first)
    first, second = first / np.linalg.norm(first), second / np.linalg.norm(second)
    turns = max(0, index - shape.drift_at + 1) if shape.drift_at is not None else 0
    angle = np.radians(HYPERPLANE_DEGREES_PER_BATCH * turns)
    weights = np.cos(angle) * first + np.sin(angle) * second
    x = rng.random((rows, HYPERPLANE_FEATURES))
    label = ((x - 0.5) @ weights > 0).astype(int)
    flip = rng.random(rows) < 0.05
    frame = pd.DataFrame(x.round(4), columns=[f"x{k}" for k in range(HYPERPLANE_FEATURES)])
    return frame.assign(y=np.where(flip, 1 - label, label))


# --------------------------------------------------------------------------- SEA
SEA_THETAS = (8.0, 9.5, 7.0)


def _sea(rng: np.random.Generator, index: int, shape: Shape, rows: int) -> pd.DataFrame:
    drift_at = shape.drift_at
    period = min(2, index // drift_at) if drift_at is not None and index >= drift_at else 0
    x = rng.random((rows, 3)) * 10
    label = (x[:, 0] + x[:, 1] <= SEA_THETAS[period]).astype(int)
    flip = rng.random(rows) < 0.10
    frame = pd.DataFrame(x.round(3), columns=["x1", "x2", "x3"])
    return frame.assign(y=np.where(flip, 1 - label, label))


# --------------------------------------------------------------------------- Agrawal
def _agrawal_function_2(a: dict[str, np.ndarray]) -> np.ndarray:
    age, salary = a["age"], a["salary"]
    return (((age < 40) & (salary >= 50_000) & (salary <= 100_000))
            | ((age >= 40) & (age < 60) & (salary >= 75_000) & (salary <= 125_000))
            | ((age >= 60) & (salary >= 25_000) & (salary <= 75_000)))


def _agrawal_function_3(a: dict[str, np.ndarray]) -> np.ndarray:
    age, elevel = a["age"], a["elevel"]
    return (((age < 40) & np.isin(elevel, [0, 1]))
            | ((age >= 40) & (age < 60) & np.isin(elevel, [1, 2, 3]))
            | ((age >= 60) & np.isin(elevel, [2, 3, 4])))


def _agrawal(rng: np.random.Generator, index: int, shape: Shape, rows: int) -> pd.DataFrame:
    salary = rng.uniform(20_000, 150_000, rows)
    attributes = {
        "salary": salary.round(0),
        "commission": np.where(salary >= 75_000, 0, rng.uniform(10_000, 75_000, rows)).round(0),
        "age": rng.integers(20, 81, rows),
        "elevel": rng.integers(0, 5, rows),
        "car": rng.integers(1, 21, rows),
        "zipcode": np.array([f"z{k}" for k in range(9)])[rng.integers(0, 9, rows)],
        "hvalue": rng.uniform(50_000, 150_000, rows).round(0),
        "hyears": rng.integers(1, 31, rows),
        "loan": rng.uniform(0, 500_000, rows).round(0),
    }
    function = _agrawal_function_3 if shape.drifted(index) else _agrawal_function_2
    label = function(attributes).astype(int)
    flip = rng.random(rows) < 0.05
    return pd.DataFrame(attributes).assign(group=np.where(flip, 1 - label, label))


# --------------------------------------------------------------------------- Friedman, recurring
def _friedman(rng: np.random.Generator, index: int, shape: Shape, rows: int) -> pd.DataFrame:
    x = rng.random((rows, 10))
    swapped = shape.drift_at is not None and shape.drift_at <= index < 2 * shape.drift_at
    a = x[:, 5:10] if swapped else x[:, 0:5]
    y = 10 * np.sin(np.pi * a[:, 0] * a[:, 1]) + 20 * (a[:, 2] - 0.5) ** 2 + 10 * a[:, 3] + 5 * a[:, 4]
    frame = pd.DataFrame(x.round(4), columns=[f"x{k}" for k in range(10)])
    return frame.assign(y=(y + rng.normal(0, 1, rows)).round(4))


def shapes(batches: int = 30, stationary_batches: int = 40) -> dict[str, Shape]:
    """Every stream shape at its benchmark size (drift a third of the way in)."""
    third = batches // 3
    return {shape.name: shape for shape in (
        Shape("loan-abrupt", "classification", "default", batches, 300, third, _loan("abrupt")),
        Shape("loan-gradual", "classification", "default", batches, 300, third, _loan("gradual")),
        Shape("loan-covariate", "classification", "default", batches, 300, third, _loan("covariate")),
        Shape("loan-stationary", "classification", "default", stationary_batches, 300, None, _loan("stationary")),
        Shape("hyperplane", "classification", "y", batches, 500, third, _hyperplane),
        Shape("sea", "classification", "y", batches, 1000, third, _sea),
        Shape("agrawal", "classification", "group", batches, 500, third, _agrawal),
        Shape("friedman", "regression", "y", batches, 500, third, _friedman),
    )}
