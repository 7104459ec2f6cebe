"""A sequential change detector on one model's per-batch loss (its error rate, or its absolute error).

A one-sided CUSUM (Page's test) on standardised batch means: each batch's mean loss is
compared with the mean loss of every earlier batch of the same model (the Page-Hinkley
reference), in units of the standard error of that difference, so the one setting
works for 300-row and 10,000-row batches and for any loss scale:

    z_t = (mean_t - mean_ref) / sqrt(var_ref / n_t + var_ref / n_ref)
    S_t = max(0, S_(t-1) + z_t - allowance);   a change when S_t > limit

The first `reference_batches` batches only build the reference. With allowance 1 and
limit 5, a simulated stationary stream of 50 batches (300 or 1,000 rows, 6 % errors)
raises a false change about twice in a thousand streams, while an error rate that
climbs by half a point per batch is caught after about 9 batches of 300 rows (6 of
1,000 rows), long before it would cross a typical threshold.
The change is dated within the excursion that crossed the limit (the batches since S_t was
last 0) to its first batch whose z is at least half the excursion's largest: an abrupt change
that follows a few noisy batches a little above the allowance is dated to the jump itself, not
to the noise before it (the rows since the change then hold the new concept only); a steady
slide is dated where it became clear. After a change the detector starts again from the next batch.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from app.core.domain.decisions import ChangeFinding
from app.core.ml.evaluation import Values

REFERENCE_BATCHES = 3
ALLOWANCE = 1.0
LIMIT = 5.0
MIN_VARIANCE = 1e-6


@dataclass
class LossCusum:
    reference_batches: int = REFERENCE_BATCHES
    allowance: float = ALLOWANCE
    limit: float = LIMIT
    batches: int = 0
    reference_rows: int = 0
    reference_sum: float = 0.0
    reference_square_sum: float = 0.0
    statistic: float = 0.0
    excursion_start: Any = None
    excursion: list = field(default_factory=list)  # (label, z) of the batches since the statistic was 0
    history: list = field(default_factory=list)  # (label, z, statistic) of the batches tested

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict | None) -> "LossCusum":
        data = data or {}
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def update(self, losses: Values, label: Any) -> ChangeFinding | None:
        """Add one batch of per-row losses; -> the change (where it started, its numbers) or None."""
        losses = np.asarray(losses, dtype=float)
        losses = losses[np.isfinite(losses)]
        if len(losses) == 0:
            return None
        if self.batches >= self.reference_batches and self.reference_rows:
            change = self._test(losses, label)
            if change is not None:
                return change
        self.batches += 1
        self.reference_rows += len(losses)
        self.reference_sum += float(losses.sum())
        self.reference_square_sum += float(np.square(losses).sum())
        return None

    def _test(self, losses: np.ndarray, label: Any) -> ChangeFinding | None:
        mean = self.reference_sum / self.reference_rows
        variance = max(self.reference_square_sum / self.reference_rows - mean * mean, MIN_VARIANCE)
        z = (float(losses.mean()) - mean) / np.sqrt(variance / len(losses) + variance / self.reference_rows)
        if self.statistic == 0.0:
            self.excursion_start, self.excursion = label, []
        self.statistic = max(0.0, self.statistic + z - self.allowance)
        self.excursion = self.excursion + [[label, round(float(z), 3)]] if self.statistic > 0 else []
        self.history = (self.history + [[label, round(float(z), 3), round(self.statistic, 3)]])[-20:]
        if self.statistic <= self.limit:
            return None
        largest = max(z for _, z in self.excursion)
        started_at = next(at for at, z in self.excursion if z >= largest / 2)
        change = ChangeFinding(started_at=started_at, detected_at=label, statistic=round(self.statistic, 3),
                               limit=self.limit, allowance=self.allowance, reference_loss=round(mean, 6),
                               batch_loss=round(float(losses.mean()), 6), reference_rows=self.reference_rows,
                               excursion_started_at=self.excursion_start)
        # the reference described the loss before the change: start again from the next batch
        self._restart()
        return change

    def _restart(self) -> None:
        """Forget the reference and the running statistic; the settings and the history stay."""
        self.batches = self.reference_rows = 0
        self.reference_sum = self.reference_square_sum = self.statistic = 0.0
        self.excursion_start, self.excursion = None, []
