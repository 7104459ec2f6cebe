"""The policy's decisions are marked on the Monitoring plot (with a legend) and listed in Activity."""

import pytest
from gui_fixtures import record_a_monitoring_result


def test_decisions_are_marked_on_the_metric_plot_and_listed_in_activity(qtbot, window):
    panel = window.panels["monitoring"]
    window.tabs.setCurrentWidget(panel)
    record_a_monitoring_result(window.controller.keel, 0.7412, events=(
        ("restore_decision", "earlier v1 accuracy 0.93 vs champion v2 0.74", "policy", {"decision": "restored"}),
        ("retrain_held", "retrain held (budget)", "policy", {"decision": "held"}),
        ("retrain_hold_ended", "retrain hold (budget) ended", "policy",
         {"hold": "budget", "next_decision": "retrained_deployed"})))

    def marked():
        ys = panel.decision_marks["restored"].getData()[1] if panel.plots_built else None
        return ys is not None and list(ys) == [pytest.approx(0.7412)]

    qtbot.waitUntil(marked, timeout=10000)
    assert list(panel.decision_marks["held"].getData()[1]) == [pytest.approx(0.7412)]
    assert list(panel.decision_marks["hold_ended"].getData()[1]) == [pytest.approx(0.7412)]
    legend = panel.metric_legend.text()  # beside the plot, not over its points
    assert "earlier version restored" in legend and "retrain held (back-off, budget)" in legend
    assert "hold ended" in legend
    assert "challenger rejected" not in legend  # only the decisions that happened

    activity = window.panels["activity"]
    window.tabs.setCurrentWidget(activity)
    qtbot.waitUntil(lambda: any(r["kind"] == "restore_decision" for r in activity.table_model.rows), timeout=10000)
    assert any(r["kind"] == "retrain_held" for r in activity.table_model.rows)
    assert window.errors == []


def test_a_decision_after_a_batch_without_labels_sits_on_its_estimate_and_a_hold_end_behind(qtbot, window):
    panel = window.panels["monitoring"]
    window.tabs.setCurrentWidget(panel)
    keel = window.controller.keel
    record_a_monitoring_result(keel, 0.7412, events=(
        ("retrain_decision", "challenger v2 promoted", "policy", {"decision": "retrained_deployed"}),))
    record_a_monitoring_result(keel, None, labelled_rows=0, estimated_value=0.9123, events=(
        ("retrain_held", "retrain held (new rows)", "policy", {"decision": "held"}),))

    def held_marked():
        ys = panel.decision_marks["held"].getData()[1] if panel.plots_built else None
        return ys is not None and list(ys) == [pytest.approx(0.9123)]

    qtbot.waitUntil(held_marked, timeout=10000)  # on the unlabelled batch's estimate ...
    assert list(panel.decision_marks["retrain"].getData()[1]) == [pytest.approx(0.7412)]  # ... not over this one
    # a hold ends at the cycle of the next decision, on the same point: drawn larger, behind it
    ended, retrain = panel.decision_marks["hold_ended"], panel.decision_marks["retrain"]
    assert ended.zValue() < retrain.zValue() and ended.opts["symbolSize"] > retrain.opts["symbolSize"]
    assert window.errors == []
