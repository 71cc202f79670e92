"""Fuzz the IKE core: hostile datagrams into the responder of an established in-memory SA.

    PYTHONPATH=src .venv/bin/python bench/fuzz.py [--count 20000] [--seed 1]
        [--engine atheris|random]

The harness, its input families and invariants are in ikepulse.testing.fuzz. With atheris
installed (``pip install -e '.[fuzz]'``; atheris 3.0.0 has CPython 3.11 x86_64 wheels) the
run is coverage-guided: libFuzzer mutates the bytes a FuzzedDataProvider turns into every
decision (family, fields, mutations), with the IKE core instrumented. Without it, or with
``--engine random``, the decisions come from a seeded random.Random. Prints inputs/s,
uncaught exceptions and changes to an established SA caused by unauthenticated input (both
must be 0), the per-family counts, and the failures by signature with an example of each;
writes bench/results/fuzz.json.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import random
import sys
import time

from results_file import write_results

HARNESS = [
    "ikepulse.testing",
    "ikepulse.testing.fuzz",
    "ikepulse.testing.fuzz_inputs",
    "ikepulse.testing.fuzz_cves",
    "ikepulse.testing.loopback",
]
"""Not instrumented: atheris takes whole top-level packages, less these exact modules."""
PROGRESS_EVERY = 100_000


class ProviderChoices:
    """The harness's decisions from libFuzzer's bytes (short inputs are padded with zeroes)."""

    def __init__(self, provider) -> None:
        self.provider = provider

    def below(self, n: int) -> int:
        return self.provider.ConsumeIntInRange(0, n - 1) if n > 1 else 0

    def chance(self, p: float) -> bool:
        return self.provider.ConsumeProbability() < p

    def bytes(self, n: int) -> bytes:
        data = self.provider.ConsumeBytes(n)
        return data + bytes(n - len(data))


class Run:
    """Counts inputs, prints progress and the summary, writes the results file."""

    def __init__(self, count: int, seed: int, engine: str, fuzz) -> None:
        self.count, self.seed, self.engine, self.fuzz = count, seed, engine, fuzz
        self.fuzzer = fuzz.Fuzzer(seed)
        self.start = time.perf_counter()

    def progress(self) -> None:
        done = self.fuzzer.report.inputs
        if done % PROGRESS_EVERY == 0:
            rate = done / (time.perf_counter() - self.start)
            print(f"{done:>9} inputs  {rate:7.0f}/s  {self.summary()}", flush=True)

    def summary(self) -> str:
        report = self.fuzzer.report
        return (
            f"exceptions {report.exceptions}  unauthenticated changes {report.violations}  "
            f"unanswered {report.unanswered}"
        )

    def finish(self) -> None:
        seconds = time.perf_counter() - self.start
        report = self.fuzzer.report
        rate = report.inputs / seconds
        print(f"\n{report.inputs} inputs in {seconds:.0f} s: {rate:.0f} inputs/s ({self.engine})")
        print(f"uncaught exceptions:                        {report.exceptions}")
        print(f"established SA changed by unauthenticated:  {report.violations}")
        print(f"no answer to a liveness check afterwards:   {report.unanswered}")
        print(f"fresh peer pairs established:               {report.establishments}")
        for family, count in sorted(report.per_family.items()):
            print(f"  {family:14s} {count:>9} datagrams")
        for signature, count in report.signatures.most_common():
            print(f"  {count:>7} x {signature}")
        for failure in report.failures:
            print("\n" + self.fuzz.describe(failure)[:3000])
        write_results(
            "fuzz",
            {"count": self.count, "seed": self.seed, "engine": self.engine},
            inputs=report.inputs,
            seconds=round(seconds, 1),
            inputs_per_second=round(rate),
            uncaught_exceptions=report.exceptions,
            unauthenticated_changes=report.violations,
            unanswered_liveness_checks=report.unanswered,
            establishments=report.establishments,
            datagrams_per_family=dict(sorted(report.per_family.items())),
            failures_by_signature=dict(report.signatures.most_common()),
            examples=[
                {"signature": failure.signature, "datagram": failure.data.hex()}
                for failure in report.failures
            ],
        )


def run_random(count: int, seed: int) -> None:
    from ikepulse.testing import fuzz
    from ikepulse.testing.fuzz_inputs import one_input

    run = Run(count, seed, "random", fuzz)
    choices = fuzz.RandomChoices(random.Random(seed))
    for _ in range(count):
        run.fuzzer.step(one_input, choices)
        run.progress()
    run.finish()


def run_atheris(count: int, seed: int) -> None:
    import atheris

    with atheris.instrument_imports(include=["ikepulse"], exclude=HARNESS):
        from ikepulse.testing import fuzz
        from ikepulse.testing.fuzz_inputs import one_input

    run = Run(count, seed, f"atheris {importlib.metadata.version('atheris')}", fuzz)

    def one(data: bytes) -> None:
        run.fuzzer.step(one_input, ProviderChoices(atheris.FuzzedDataProvider(data)))
        run.progress()
        if run.fuzzer.report.inputs >= count:  # libFuzzer's exit() skips atexit handlers
            run.finish()
            sys.stdout.flush()
            os._exit(0)

    # -runs leaves room for libFuzzer's own start-up runs; we stop at exactly ``count``
    flags = [f"-runs={2 * count + 100}", f"-seed={seed}", "-max_len=2048", "-len_control=0"]
    atheris.Setup([sys.argv[0], *flags], one)
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", choices=("atheris", "random"))
    args = parser.parse_args()
    engine = args.engine or ("atheris" if importlib.util.find_spec("atheris") else "random")
    if engine == "atheris":
        run_atheris(args.count, args.seed)
    else:
        run_random(args.count, args.seed)


if __name__ == "__main__":
    main()
