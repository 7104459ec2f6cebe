"""Synthetic labelled data with controllable concept drift and covariate shift.

Used by the demo project (a stream of batches dropped into its inbox), by tests and
by bench/drift_loop.py. The data: loan applicants; the target `default` is 0/1.
Concept A and concept B weigh the features differently, so a model trained on A
loses accuracy on B; a covariate shift moves the inputs without changing the concept.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

REGIONS = np.array(["north", "south", "east", "west"])
CONCEPT_A = {"income": -1.6, "age": -0.4, "debt_ratio": 2.2, "tenure": -0.8, "mortgage": -0.3,
             "north": 0.0, "south": 0.4, "east": -0.3, "west": 0.2, "bias": -0.1}
# B keeps debt ratio as the main risk but income matters less, age and tenure flip sign and
# the regions move: a model trained on A scores about 0.70 accuracy on B (about 0.94 on A),
# a realistic drop rather than an inversion; a model trained on 200 rows of B scores about 0.9.
CONCEPT_B = {"income": -0.5, "age": 1.2, "debt_ratio": 2.0, "tenure": 0.6, "mortgage": -0.3,
             "north": 0.5, "south": -0.3, "east": 0.2, "west": -0.2, "bias": 0.2}


def make_batch(rows: int, seed: int, concept: float = 0.0, shift: float = 0.0, noise: float = 0.35) -> pd.DataFrame:
    """concept: 0 = concept A, 1 = concept B (in between: a mix of the two).
    shift: 0 = the original input distribution; 1 = a strong covariate shift."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(mean=10.6 + 0.5 * shift, sigma=0.45, size=rows)
    age = rng.normal(42 + 8 * shift, 11, size=rows).clip(18, 90)
    debt_ratio = rng.beta(2 + 2 * shift, 5, size=rows)
    tenure = rng.poisson(36, size=rows)
    region = rng.choice(REGIONS, size=rows, p=_region_mix(shift))
    mortgage = rng.random(rows) < 0.45
    z = {
        "income": (np.log(income) - 10.6) / 0.45,
        "age": (age - 42) / 11,
        "debt_ratio": (debt_ratio - 0.286) / 0.16,
        "tenure": (tenure - 36) / 6,
        "mortgage": mortgage.astype(float) - 0.45,
    }
    use_b = rng.random(rows) < concept
    score = np.where(use_b, _score(CONCEPT_B, z, region), _score(CONCEPT_A, z, region))
    score = score + rng.normal(0, noise, size=rows)
    label = (score > 0).astype(int)
    return pd.DataFrame({
        "income": income.round(0),
        "age": age.round(0).astype(int),
        "debt_ratio": debt_ratio.round(3),
        "tenure_months": tenure,
        "region": region,
        "has_mortgage": np.where(mortgage, "yes", "no"),
        "default": label,
    })


def _region_mix(shift: float) -> np.ndarray:
    base = np.array([0.25, 0.25, 0.25, 0.25])
    shifted = np.array([0.55, 0.15, 0.15, 0.15])
    return (1 - shift) * base + shift * shifted


def _score(weights: dict, z: dict, region: np.ndarray) -> np.ndarray:
    score = weights["bias"] + sum(weights[k] * z[k] for k in ("income", "age", "debt_ratio", "tenure", "mortgage"))
    return score + np.select([region == r for r in REGIONS], [weights[r] for r in REGIONS])


@dataclass
class StreamSpec:
    kind: str = "stationary"  # stationary | abrupt | gradual | covariate
    batches: int = 20
    batch_rows: int = 300
    drift_at: int = 8  # first drifted batch (0-based)
    gradual_over: int = 6  # batches for a gradual drift to complete
    seed: int = 7


def concept_and_shift(spec: StreamSpec, index: int) -> tuple[float, float]:
    if spec.kind == "stationary" or index < spec.drift_at:
        return 0.0, 0.0
    if spec.kind == "abrupt":
        return 1.0, 0.0
    if spec.kind == "gradual":
        return min(1.0, (index - spec.drift_at + 1) / spec.gradual_over), 0.0
    if spec.kind == "covariate":
        return 0.0, 1.0
    raise ValueError(f"unknown stream kind {spec.kind!r}")


def stream(spec: StreamSpec) -> Iterator[tuple[int, pd.DataFrame]]:
    """Yield (index, batch) for the whole stream."""
    for index in range(spec.batches):
        concept, shift = concept_and_shift(spec, index)
        yield index, make_batch(spec.batch_rows, seed=spec.seed * 1000 + index + 1, concept=concept, shift=shift)


def initial_training_data(rows: int = 1500, seed: int = 7) -> pd.DataFrame:
    return make_batch(rows, seed=seed * 1000)
