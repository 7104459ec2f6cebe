"""Starts the desktop application (the GUI issue builds the window)."""


def run_gui(workspace: str | None = None) -> int:
    from app.frontends.gui.application import run

    return run(workspace)
