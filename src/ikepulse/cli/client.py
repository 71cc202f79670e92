"""Blocking client for the daemon's control socket."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator


class ControlError(Exception):
    """The daemon could not be reached or answered nonsense."""


def request(path: str, command: dict, timeout: float | None = None) -> dict:
    data = request_raw(path, command, timeout)
    try:
        return json.loads(data)
    except ValueError:
        raise ControlError(f"control socket {path}: unreadable answer") from None


def request_body(path: str, command: dict, timeout: float | None = None) -> tuple[dict, bytes]:
    """The daemon's JSON line, decoded, and the bytes that follow it until the daemon closes
    the connection (runtime/control.py: ``status`` as text)."""
    data = request_raw(path, command, timeout, to_the_end=True)
    line, _, body = data.partition(b"\n")
    try:
        answer = json.loads(line)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ControlError(f"control socket {path}: unreadable answer")
    return answer, body


def request_raw(
    path: str, command: dict, timeout: float | None = None, to_the_end: bool = False
) -> bytes:
    """The daemon's answer as it came, one JSON line (undecoded: a 10,000-SA status is
    megabytes that ``status --json`` can pass through), or with ``to_the_end`` all it
    sends until it closes the connection."""
    wait = (timeout or float(command.get("timeout", 30.0))) + 5.0
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(wait)
            sock.connect(path)
            sock.sendall(json.dumps(command).encode() + b"\n")
            chunks: list[bytes] = []  # joined once: a 10,000-SA status is megabytes
            while to_the_end or not chunks or not chunks[-1].endswith(b"\n"):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
            data = b"".join(chunks)
    except FileNotFoundError:
        hint = "is 'ikepulse daemon' running?"
        raise ControlError(f"no daemon listening on {path} ({hint})") from None
    except OSError as exc:
        raise ControlError(f"control socket {path}: {exc.strerror or exc}") from None
    return data


def follow(path: str, command: dict) -> Iterator[dict]:
    """Subscribe with ``command`` and yield each JSON line the daemon sends until it
    closes the stream."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.sendall(json.dumps(command).encode() + b"\n")
        stream = sock.makefile("rb")
    except FileNotFoundError:
        raise ControlError(
            f"no daemon listening on {path} (is 'ikepulse daemon' running?)"
        ) from None
    except OSError as exc:
        raise ControlError(f"control socket {path}: {exc.strerror or exc}") from None
    with sock, stream:
        for line in stream:
            try:
                yield json.loads(line)
            except ValueError:
                raise ControlError(f"control socket {path}: unreadable line") from None
