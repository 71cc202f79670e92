"""The Quick Crash Detection secret on disk (RFC 6290 §2.1)."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

log = logging.getLogger("ikepulse.daemon")


def load_qcd_secret(state_dir: Path) -> bytes | None:
    """The Quick Crash Detection secret (RFC 6290), created once and kept across restarts
    so that our INVALID_IKE_SPI answers after a crash carry tokens the peer can check."""
    path = state_dir / "qcd.secret"
    try:
        secret = path.read_bytes()
        if len(secret) == 32:
            return secret
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot read %s (%s): crash reports will not be believed", path, exc)
        return None
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_bytes(32)
        path.touch(mode=0o600)
        path.write_bytes(secret)
        return secret
    except OSError as exc:
        log.warning("cannot write %s (%s): crash reports will not be believed", path, exc)
        return None
