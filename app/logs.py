"""Logging to the workspace's logs/keel.log: full tracebacks go there, never to the terminal."""

import logging
import logging.handlers
from pathlib import Path

_configured: set[Path] = set()


def setup_logging(log_path: Path) -> logging.Logger:
    logger = logging.getLogger("keel")
    # library warnings (scikit-learn's "a single label was found", say) are diagnostics: the log, not the terminal
    warnings_logger = logging.getLogger("py.warnings")
    log_path = Path(log_path)
    if log_path in _configured:
        return logger
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for owner in (logger, warnings_logger):
        for handler in list(owner.handlers):
            if isinstance(handler, logging.handlers.RotatingFileHandler):
                owner.removeHandler(handler)
                handler.close()
    _configured.clear()
    handler = logging.handlers.RotatingFileHandler(log_path, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    warnings_logger.addHandler(handler)
    warnings_logger.propagate = False
    logging.captureWarnings(True)
    _configured.add(log_path)
    return logger
