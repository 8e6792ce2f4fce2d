#!/usr/bin/env python3
"""Cost of the process backend's confinement (no-new-privs, Landlock, seccomp, rlimits):
`keep run` with and without `--no-confine`, in one run, for a warm start (hello, cache hot) and
two system-call-heavy guests (bench/kernels/fileio.c: a path opened every round, and a
descriptor opened once); then what the kernel charges per system call for each mechanism
(`syscall-cost`, crates/keep-bench). Writes the confine section of docs/benchmarks.md."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from run import ROOT, build_c, compare, sh
from sections import write_section

TARGET = 1.05


def main():
    quick = "--quick" in sys.argv
    runs = 10 if quick else 40
    sh("cargo", "build", "--release", "--locked", "-p", "keep-cli", "-p", "keep-bench", cwd=ROOT)
    keep = ROOT / "target" / "release" / "keep"
    hello = build_c("hello", ROOT / "tests" / "guests" / "hello.c")[1]
    fileio = build_c("fileio", ROOT / "bench" / "kernels" / "fileio.c")[1]
    rows = []
    with tempfile.TemporaryDirectory() as data:
        grant = ["--dir", f"{data}::/data"]
        cases = {
            "warm start (hello)": [hello],
            "file I/O, a path opened every round (20,000 rounds)": [*grant, fileio, "20000"],
            "file I/O, one descriptor (100,000 rounds)": [*grant, fileio, "100000", "stream"],
        }
        for title, args in cases.items():
            times = compare(
                {
                    "confined": ([keep, "run", "-q", *args], None, None),
                    "not confined": ([keep, "run", "-q", "--no-confine", *args], None, None),
                },
                # Start-up is short and noisy: more runs for a stable minimum.
                runs * 4 if args == [hello] else runs,
            )
            rows.append((title, times["confined"], times["not confined"]))
            print(title, times)
        costs = subprocess.run(
            [ROOT / "target" / "release" / "syscall-cost", data],
            check=True, capture_output=True, text=True,
        ).stdout
    mechanisms = {m["mechanism"]: m for m in map(json.loads, costs.splitlines())}
    print(mechanisms)
    write_report(rows, mechanisms)


def write_report(rows, mechanisms):
    lines = "".join(
        f"| {title} | {c * 1e3:.1f} ms | {n * 1e3:.1f} ms | {c / n:.3f} | ≤ {TARGET} | "
        f"{'met' if c / n <= TARGET else 'MISSED'} |\n"
        for title, c, n in rows
    )
    base = mechanisms["none"]
    labels = {
        "none": "nothing",
        "seccomp-floor": "seccomp, a one-instruction filter allowing everything",
        "seccomp": "seccomp, Keep's allow-list",
        "landlock": "Landlock, Keep's rules",
        "all": "everything `keep run` applies",
    }
    costs = "".join(
        f"| {labels[name]} | {m['apply_us']:.0f} µs | {m['statx_ns']:.0f} ns | {m['statx_ns'] - base['statx_ns']:+.0f} ns "
        f"| {m['open_close_ns']:.0f} ns | {m['open_close_ns'] - base['open_close_ns']:+.0f} ns |\n"
        for name, m in mechanisms.items()
    )
    met = [title for title, c, n in rows if c / n <= TARGET]
    missed = [title for title, c, n in rows if c / n > TARGET]
    verdict = (
        f"Within the target here: {'; '.join(met) or 'none'}. "
        + (f"Over it: {'; '.join(missed)}, by the per-call price above." if missed else "")
    )
    section = (
        "## Confinement cost (`scripts/bench --confine`)\n\n"
        "`keep run` (release) confined (the default: rlimits, no-new-privs, Landlock, seccomp "
        "allow-list, capabilities dropped when root) against `keep run --no-confine`, fastest of "
        "interleaved runs, compiled-module cache warm. The file I/O guest "
        "(`bench/kernels/fileio.c`) works on a 4 KiB file in a preopened directory. In the first "
        "pattern each round opens the path, `fstat`s it, reads 4 KiB, writes them back and closes "
        "it: seven system calls under wasmtime-wasi (`openat2`, three `statx`, `pread64`, "
        "`pwrite64`, `close`), the densest I/O a guest can ask for, with an open in every round. "
        "In the second the descriptor stays open and each round is one `pread64` and one "
        "`pwrite64`.\n\n"
        "| guest | confined | not confined | ratio | target | |\n|---|---|---|---|---|---|\n"
        + lines
        + "\nWhat the kernel charges for each mechanism, once to apply it and then per call (`syscall-cost`, "
        "`crates/keep-bench`: a native child process per mechanism times `statx` on an open "
        "file and `open` + `close` of a file in the granted directory, fastest of 5 interleaved "
        "passes of 3 rounds):\n\n"
        "| confined by | to apply | `statx` | added | `open` + `close` | added |\n"
        "|---|---|---|---|---|---|\n"
        + costs
        + "\nReading the two tables together: any seccomp filter at all moves every system call "
        "onto the kernel's slower entry path, and Keep's allow-list costs what a filter of one "
        "instruction costs (the kernel caches its verdicts, which depend only on the system-call "
        "number, except `socket` and `clone`). Landlock charges each path opened, however "
        "short the rules. rlimits, no-new-privs and capabilities cost nothing once set. At start-up "
        "the price is applying them, mostly installing the seccomp filter: the kernel compiles "
        "it and, to build its verdict cache, runs it once for every system-call number (which "
        "is why the filter is a binary search: a linear chain of the same rules took 0.4–0.6 "
        "ms to install). So a "
        f"guest pays in proportion to its system calls and opens, not to its work. {verdict} "
        "Lowering the per-call price would mean giving up a wall (seccomp, or Landlock's file "
        "rules), which Keep does not do. Before the allow-list listed `openat2`, cap-std fell "
        "back to opening paths one component at a time and the open-every-round loop cost 15% "
        "more: a refused call is never free.\n"
    )
    write_section("confine", section)


if __name__ == "__main__":
    main()
