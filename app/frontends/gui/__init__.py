"""The desktop application (PySide6): views over the service layer in app.core."""

from app.frontends.gui.application import shield_none_refcount

# Before any widget or worker exists: PySide6 6.12 leaks references to None (see application.py).
shield_none_refcount()
