"""Widget subclasses must not hide Qt's own methods with attributes (a QDialog attribute named
`metric` or `window` replaced QPaintDevice.metric() and QWidget.window(): the dialog painted black
and closing it crashed the process)."""

import ast
import importlib
import inspect
import pkgutil

from PySide6.QtCore import QObject

import app.frontends.gui


def _ui_modules():
    for info in pkgutil.walk_packages(app.frontends.gui.__path__, "app.frontends.gui."):
        yield importlib.import_module(info.name)


def _assigned_self_attributes(cls) -> set[str]:
    tree = ast.parse(inspect.getsource(cls))
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name) and node.value.id == "self"}


def _qt_base(cls):
    return next(base for base in cls.__mro__ if base.__module__.startswith("PySide6"))


def test_no_widget_attribute_shadows_a_qt_method():
    shadowing = []
    for module in _ui_modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, QObject):
                continue
            qt_base = _qt_base(cls)
            shadowing += [f"{cls.__qualname__}.{name} hides {qt_base.__name__}.{name}()"
                          for name in _assigned_self_attributes(cls) if hasattr(qt_base, name)]
    assert not shadowing, shadowing
