#!/usr/bin/env python3
"""Steward issuance benchmark: starts `keep steward serve` (release build) and drives it with
`steward-load` at concurrency 16 and 64, for `none` evidence (issued) and for a real SEV-SNP
report replayed in a Keep request (verified in full, refused for its binding). Writes the
steward section of docs/benchmarks.md."""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sections import write_section

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT.parent / "shared" / "vectors" / "sev-snp" / "trustee"
TARGET_PER_SECOND = 1000
TARGET_P99_MS = 20.0


def main():
    quick = "--quick" in sys.argv
    requests = {"none": 1000 if quick else 5000, "snp": 1000 if quick else 2000}
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "keep-cli", "-p", "keep-bench"],
        cwd=ROOT,
        check=True,
    )
    release = ROOT / "target" / "release"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        log = open(Path(tmp) / "steward.log", "w+")
        steward = subprocess.Popen(
            [
                release / "keep", "steward", "serve", "--listen", "127.0.0.1:0",
                "--generate-ca", Path(tmp) / "ca", "--insecure-accept-none",
            ],
            stderr=log,
        )
        try:
            addr = wait_for_address(log)
            for kind in ["none", "snp"]:
                extra = []
                if kind == "snp":
                    extra = [VECTORS / "test-report.bin", VECTORS / "test-vcek.der"]
                for concurrency in [16, 64]:
                    out = subprocess.run(
                        [
                            release / "steward-load", addr, Path(tmp) / "ca" / "ca.pem", kind,
                            str(concurrency), str(requests[kind]), *extra,
                        ],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                    result = json.loads(out)
                    print(kind, concurrency, result)
                    rows.append((kind, concurrency, result))
        finally:
            steward.terminate()
            steward.wait()
    write_report(rows)


def wait_for_address(log):
    deadline = time.time() + 30
    while time.time() < deadline:
        log.seek(0)
        for line in log.read().splitlines():
            if line.startswith("keep steward: listening on https://"):
                return line.rsplit("/", 1)[1]
        time.sleep(0.05)
    raise SystemExit("the Steward did not start")


def write_report(rows):
    lines = []
    for kind, concurrency, r in rows:
        statuses = ", ".join(f"{n}× {s}" for s, n in r["statuses"].items())
        if kind == "none":
            met = (
                r["per_second"] >= TARGET_PER_SECOND
                and r["p99_ms"] < TARGET_P99_MS
                and set(r["statuses"]) == {"200"}
            )
            verdict = "met" if met else "MISSED"
            what = "`none` (issued)"
        else:
            verdict = "(no target)"
            what = "SEV-SNP replay (verified, refused: binding)"
        lines.append(
            f"| {what} | {concurrency} | {r['requests']} | {r['per_second']:.0f}/s | "
            f"{r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {statuses} | {verdict} |\n"
        )
    section = (
        "## Steward issuance (`scripts/bench --steward`)\n\n"
        "`keep steward serve` (release, 2 worker threads, every decision logged) driven by "
        "`steward-load` (`crates/keep-bench`) on the same 2-core machine: CONCURRENCY keep-alive "
        "HTTPS connections share the requests. `none`: each request carries `none` evidence bound "
        "to its connection's key and gets a fresh certificate from an `--insecure-accept-none` "
        "Steward (CSR signature check, binding, policy, ECDSA P-256 issuance). SEV-SNP replay: "
        "trustee's real Milan report and VCEK in a Keep request, verified in full (VCEK → built-in "
        "ASK → ARK, report signature, TCB) and then refused because its report data binds another "
        "key, which is the correct answer; issuing would add the same signing cost as for "
        "`none`. Targets for `none`: ≥ 1000 certificates/s, p99 < 20 ms, no errors.\n\n"
        "| evidence | concurrency | requests | throughput | p50 | p99 | answers | target |\n"
        "|---|---|---|---|---|---|---|---|\n"
        + "".join(lines)
    )
    write_section("steward", section)


if __name__ == "__main__":
    main()
