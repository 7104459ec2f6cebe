"""The policy's decisions are marked on the Monitoring plot (with a legend) and listed in Activity."""

import threading

import pytest
from gui_fixtures import demo_template, demo_workspace, gui_settings, leak_guard, window  # noqa: F401


def test_decisions_are_marked_on_the_metric_plot_and_listed_in_activity(qtbot, window):  # noqa: F811
    panel = window.panels["monitoring"]
    window.tabs.setCurrentWidget(panel)
    keel = window.controller.keel
    project = keel.project("demo-credit")
    model_version = keel.services.registry.model_versions(project.id)[0]

    def record():
        with keel.services.registry.transaction():
            keel.services.registry.insert_monitor_result(
                project_id=project.id, model_version_id=model_version.id, rows=300, labelled_rows=300,
                metric="accuracy", value=0.7412, estimated_value=None, drift_share=0.0, drifted_features=[],
                details={})
            keel.services.registry.add_event(project, "restore_decision", "earlier v1 accuracy 0.93 vs champion v2 0.74",
                                    "policy", {"decision": "restored"})
            keel.services.registry.add_event(project, "retrain_held", "retrain held (budget)", "policy", {"decision": "held"})
            keel.services.registry.add_event(project, "retrain_hold_ended", "retrain hold (budget) ended", "policy",
                                             {"hold": "budget", "next_decision": "retrained_deployed"})

    worker = threading.Thread(target=record)
    worker.start()
    worker.join()

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
