"""The champion-challenger gate at its edges: a challenger that learned a new class, a waiting
challenger whose champion is no longer in production."""

import numpy as np
import pandas as pd
import pytest
from cli_helpers import loans_csv

from app.core.domain.entities import Column, Project, Schema


@pytest.mark.parametrize("metric", ["roc_auc", "log_loss"])
def test_gate_when_the_challenger_learned_a_new_class(metric):
    """A labelled batch brings a class the champion never saw; the challenger learns it. The
    bootstrap read the champion's probability columns with the challenger's classes_: an
    IndexError that failed the monitoring cycle after the challenger was registered, so every
    cycle retrained again."""
    from sklearn.linear_model import LogisticRegression

    from app.core.services import policy

    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    features = pd.DataFrame({"x": x})
    champion = LogisticRegression().fit(features, (x > 0).astype(int))
    three_classes = np.digitize(x, [-0.5, 0.5])
    challenger = LogisticRegression().fit(features, three_classes)
    schema = Schema("y", "classification", "integer", (Column("x", "numeric"),))
    project = Project(id=1, name="p", task="classification", target="y", metric=metric, schema=schema, settings={},
                      created_at="2026-01-01T00:00:00.000+00:00")
    gate_frame = pd.DataFrame({"x": x[:120], "y": pd.array(three_classes[:120], dtype="Int64")})
    verdict = policy.gate(project, champion, challenger, gate_frame, 0.01, 0.05)
    assert verdict.test == "paired_bootstrap"
    assert verdict.accepted and verdict.better_by_margin


def test_a_deploy_ends_the_wait_of_a_challenger_gated_against_another_model(tmp_path, store):
    """Policy approve: challenger v2 waits (gated against v1). The user deploys v3 by hand.
    The wait ends: `approve` must not deploy v2, never compared with v3, over it (and while v2
    "waited" the policy would never retrain again)."""
    from app.core.domain.errors import KeelError
    from app.core.services.lifecycle import Keel

    keel = Keel.open(tmp_path / "ws")
    try:
        keel.create_project("p", loans_csv(tmp_path / "loans.csv"), "default", "classification",
                            {"preset": "logreg", "policy": "approve"})
        for _ in range(3):
            keel.train("p")
        keel.deploy("p", 1)
        project = keel.project("p")
        with store(keel).transaction():  # what policy.decide records for "retrained_waiting"
            store(keel).set_alias(project.id, "challenger", store(keel).model_version(project.id, 2).id)
        assert keel.policy.waiting_challenger("p") == 2
        keel.deploy("p", 3)
        assert keel.policy.waiting_challenger("p") is None
        with pytest.raises(KeelError, match="no challenger"):
            keel.policy.approve("p")
        assert keel.production_version("p") == 3
    finally:
        keel.close()
