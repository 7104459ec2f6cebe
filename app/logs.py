"""Logging to the workspace's logs/keel.log: full tracebacks go there, never to the terminal."""

import logging
import logging.handlers
import os
from pathlib import Path


def _writes_to(handler: logging.Handler, log_path: Path) -> bool:
    return isinstance(handler, logging.handlers.RotatingFileHandler) and handler.baseFilename == os.path.abspath(log_path)


def setup_logging(log_path: Path) -> logging.Logger:
    logger = logging.getLogger("keel")
    # library warnings (scikit-learn's "a single label was found", say) are diagnostics: the log, not the terminal
    warnings_logger = logging.getLogger("py.warnings")
    log_path = Path(log_path)
    if any(_writes_to(handler, log_path) for handler in logger.handlers):  # the logger knows where it writes
        return logger
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for owner in (logger, warnings_logger):
        for handler in list(owner.handlers):
            if isinstance(handler, logging.handlers.RotatingFileHandler):
                owner.removeHandler(handler)
                handler.close()
    handler = logging.handlers.RotatingFileHandler(log_path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    warnings_logger.addHandler(handler)
    warnings_logger.propagate = False
    logging.captureWarnings(True)
    return logger
