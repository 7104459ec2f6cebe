"""Starts the desktop application: the Qt application, then the main window."""


def run_gui(workspace: str | None = None) -> int:
    from app.frontends.gui.application import run

    return run(workspace)
