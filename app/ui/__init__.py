"""The desktop application (PySide6): views over the service layer in app.core."""
