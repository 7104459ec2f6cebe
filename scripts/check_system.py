"""Checks what `make` needs from the system and says which Debian package to install."""

import ctypes.util
import subprocess
import sys

QT_LIBRARIES = {  # library -> Debian package that ships it
    "EGL": "libegl1",
    "GL": "libgl1",
    "xkbcommon": "libxkbcommon0",
    "fontconfig": "libfontconfig1",
    "dbus-1": "libdbus-1-3",
}
DISPLAY_LIBRARIES = {  # Qt's xcb platform plugin, to open a window on X11
    "xcb-cursor": "libxcb-cursor0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-image": "libxcb-image0",
    "xcb-keysyms": "libxcb-keysyms1",
    "xcb-randr": "libxcb-randr0",
    "xcb-render-util": "libxcb-render-util0",
    "xcb-shape": "libxcb-shape0",
    "xcb-xinerama": "libxcb-xinerama0",
    "xcb-xkb": "libxcb-xkb1",
    "xkbcommon-x11": "libxkbcommon-x11-0",
    "xcb-xinput": "libxcb-xinput0",
}


def check_python() -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - this check runs on any python3
        print(f"Keel needs Python 3.11 or newer; this is {sys.version.split()[0]}.", file=sys.stderr)
        return 1
    try:
        import ensurepip  # noqa: F401  (Debian splits venv support into python3-venv)
    except ImportError:
        print("python3 -m venv is not available: sudo apt-get install python3-venv", file=sys.stderr)
        return 1
    return 0


def check_qt() -> int:
    missing = sorted({pkg for lib, pkg in QT_LIBRARIES.items() if ctypes.util.find_library(lib) is None})
    if missing:
        print("Qt needs system libraries that are missing: sudo apt-get install " + " ".join(missing), file=sys.stderr)
        return 1
    optional = sorted({pkg for lib, pkg in DISPLAY_LIBRARIES.items() if ctypes.util.find_library(lib) is None})
    if optional:
        print("note: to open the window on an X11 display, also install: " + " ".join(optional), file=sys.stderr)
    probe = subprocess.run(
        [sys.executable, "-c", "from PySide6 import QtGui"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        print("PySide6 cannot load QtGui:\n" + probe.stderr.strip().splitlines()[-1], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(check_python() if "--python" in sys.argv else check_qt())
