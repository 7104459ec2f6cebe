"""Keel entry point: no arguments opens the GUI; a subcommand runs the headless CLI."""

from app.frontends.cli import entry_point

if __name__ == "__main__":
    entry_point()
