"""``ikepulse status`` as text: written by the daemon itself (runtime/status_text.py), here
for the CLI's own uses (a daemon that answers only JSON, ``top``, ``demo``)."""

from __future__ import annotations

from ..runtime.status_text import ago, format_status

__all__ = ["ago", "format_status"]
