"""Whether a window can open here."""

import os
import sys


def available() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    # Qt's offscreen platform renders without any display server (the smoke test uses it).
    if os.environ.get("QT_QPA_PLATFORM") in ("offscreen", "minimal", "vnc"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
