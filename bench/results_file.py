"""Where benchmarks write what they measured, for a reader to compare runs."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, meta: dict, **figures) -> Path:
    """``bench/results/NAME.json`` with the run's settings, machine facts and figures."""
    RESULTS.mkdir(exist_ok=True)
    meta = {
        **meta,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"meta": meta, **figures}, indent=2) + "\n")
    print(f"wrote {path}")
    return path
