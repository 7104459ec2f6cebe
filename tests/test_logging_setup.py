"""Logging goes to the workspace's log file; setting it up again for the same file adds nothing, and
for another workspace's file it moves there (the logger itself says where it writes)."""

import logging
import logging.handlers

from app.logs import setup_logging


def _file_handlers(logger: logging.Logger) -> list[str]:
    return [h.baseFilename for h in logger.handlers if isinstance(h, logging.handlers.RotatingFileHandler)]


def test_logging_is_set_up_once_per_file_and_follows_the_workspace(tmp_path):
    first, second = tmp_path / "one" / "logs" / "keel.log", tmp_path / "two" / "logs" / "keel.log"
    logger, warnings_logger = logging.getLogger("keel"), logging.getLogger("py.warnings")
    saved = {owner: (list(owner.handlers), owner.propagate) for owner in (logger, warnings_logger)}
    try:
        setup_logging(first)
        setup_logging(first)
        assert _file_handlers(logger) == [str(first)]
        assert _file_handlers(warnings_logger) == [str(first)]
        setup_logging(second)
        assert _file_handlers(logger) == _file_handlers(warnings_logger) == [str(second)]
        logging.getLogger("keel.test").warning("written to the second workspace's log")
        assert "second workspace" in second.read_text() and "second workspace" not in first.read_text()
    finally:
        for owner, (handlers, propagate) in saved.items():
            for handler in owner.handlers:
                if handler not in handlers:
                    handler.close()
            owner.handlers[:] = handlers
            owner.propagate = propagate
        logging.captureWarnings(False)
