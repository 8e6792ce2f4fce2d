#!/usr/bin/env python3
"""Steward issuance benchmark: starts `keep steward serve` (release build) and drives it with
`steward-load` at concurrency 16 and 64:

  * `none` evidence (issued by an --insecure-accept-none Steward);
  * a real SEV-SNP report replayed in a Keep request (verified in full, refused for its
    binding);
  * SEV-SNP evidence from the simulated guest (keep-tee-sim), bound to each connection's key
    and issued on by a Steward trusting the test roots, with the host's certificates.

Then the Keep's start-up time spent in attestation on the simulated SEV-SNP guest: `keep run`
of hello with a Steward against the same run without one. Writes the steward section of
docs/benchmarks.md."""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sections import write_section

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors" / "sev-snp" / "trustee"
RELEASE = ROOT / "target" / "release"
TARGET_PER_SECOND = 1000
TARGET_P99_MS = {"none": 20.0, "configfs": 50.0}


def main():
    quick = "--quick" in sys.argv
    requests = {"none": 1000 if quick else 5000, "snp": 1000 if quick else 2000}
    requests["configfs"] = requests["snp"]
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "keep-cli", "-p", "keep-bench",
         "-p", "keep-tee-sim"],
        cwd=ROOT,
        check=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with Steward(tmp, ["--insecure-accept-none"]) as steward:
            for kind, extra in [
                ("none", []),
                ("snp", [VECTORS / "test-report.bin", VECTORS / "test-vcek.der"]),
            ]:
                for concurrency in [16, 64]:
                    rows.append(load(steward, kind, extra, concurrency, requests[kind]))
        pki = tmp / "pki"
        subprocess.run([RELEASE / "keep-tee-sim", "pki", "--out", pki], check=True)
        with SimulatedGuest(tmp / "vm", pki) as guest:
            roots = ["--insecure-test-roots", pki / "roots", "--offline"]
            with Steward(tmp, roots) as steward:
                for concurrency in [16, 64]:
                    rows.append(
                        load(steward, "configfs", [guest.tsm], concurrency, requests["configfs"])
                    )
                startup = attestation_startup(tmp, steward, guest, 5 if quick else 15)
    write_report(rows, startup)


class Steward:
    """`keep steward serve` with `flags`, on a fresh CA in `tmp`."""

    def __init__(self, tmp, flags):
        self.ca_dir = tmp / f"ca-{len(list(tmp.glob('ca-*')))}"
        self.log = open(tmp / f"{self.ca_dir.name}.log", "w+")
        self.process = subprocess.Popen(
            [RELEASE / "keep", "steward", "serve", "--listen", "127.0.0.1:0",
             "--generate-ca", self.ca_dir, *flags],
            stderr=self.log,
        )

    def __enter__(self):
        deadline = time.time() + 30
        while time.time() < deadline:
            self.log.seek(0)
            for line in self.log.read().splitlines():
                if line.startswith("keep steward: listening on https://"):
                    self.addr = line.rsplit("/", 1)[1]
                    return self
            time.sleep(0.05)
        raise SystemExit("the Steward did not start")

    def __exit__(self, *_):
        self.process.terminate()
        self.process.wait()


class SimulatedGuest:
    """keep-tee-sim serving an SEV-SNP guest's configfs-tsm under `root`."""

    def __init__(self, root, pki):
        self.root = root
        self.tsm = root / "sys" / "kernel" / "config" / "tsm" / "report"
        self.tsm.mkdir(parents=True)
        (root / "proc").mkdir()
        (root / "proc" / "cpuinfo").write_text("flags : fpu sev sev_es sev_snp hypervisor\n")
        self.process = subprocess.Popen(
            [RELEASE / "keep-tee-sim", "serve", "--pki", pki, "--mount", self.tsm],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def __enter__(self):
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit("keep-tee-sim did not start")
        return self

    def __exit__(self, *_):
        self.process.stdin.close()  # it unmounts and exits
        self.process.wait(timeout=30)


def load(steward, kind, extra, concurrency, requests):
    out = subprocess.run(
        [RELEASE / "steward-load", steward.addr, steward.ca_dir / "ca.pem", kind,
         str(concurrency), str(requests), *extra],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(out)
    print(kind, concurrency, result)
    return kind, concurrency, result


def attestation_startup(tmp, steward, guest, runs):
    """Median wall time of `keep run hello` in the simulated guest with and without a
    Steward (both on the cvm backend, which compiles every time)."""
    hello = tmp / "hello.wasm"
    subprocess.run(
        ["clang", "--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-o", hello,
         ROOT / "tests" / "guests" / "hello.c"],
        check=True,
    )
    plain = tmp / "plain.toml"
    plain.write_text("")
    attested = tmp / "attested.toml"
    attested.write_text(
        f'steward = "https://{steward.addr}"\n[tls]\nca = ["{steward.ca_dir / "ca.pem"}"]\n'
    )
    env = dict(os.environ, KEEP_PLATFORM_ROOT=str(guest.root), KEEP_LOG="off")
    times = {}
    for name, config in [("without", plain), ("with", attested)]:
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(
                [RELEASE / "keep", "run", "-q", "--backend", "cvm", "-c", config, hello],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            samples.append(time.perf_counter() - started)
        times[name] = statistics.median(samples) * 1000
    print("startup", times)
    return times


def write_report(rows, startup):
    lines = []
    for kind, concurrency, r in rows:
        statuses = ", ".join(f"{n}× {s}" for s, n in r["statuses"].items())
        if kind in TARGET_P99_MS:
            met = (
                r["per_second"] >= TARGET_PER_SECOND
                and r["p99_ms"] < TARGET_P99_MS[kind]
                and set(r["statuses"]) == {"200"}
            )
            verdict = "met" if met else "MISSED"
        else:
            verdict = "(no target)"
        what = {
            "none": "`none` (issued)",
            "snp": "SEV-SNP replay (verified, refused: binding)",
            "configfs": "SEV-SNP, simulated guest (verified, issued)",
        }[kind]
        lines.append(
            f"| {what} | {concurrency} | {r['requests']} | {r['per_second']:.0f}/s | "
            f"{r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {statuses} | {verdict} |\n"
        )
    section = (
        "## Steward issuance (`scripts/bench --steward`)\n\n"
        "`keep steward serve` (release, 2 worker threads, every decision logged) driven by "
        "`steward-load` (`crates/keep-bench`) on the same 2-core machine: CONCURRENCY keep-alive "
        "HTTPS connections share the requests, after one untimed request each (TLS handshake, "
        "the Steward's first check of each certificate chain). `none`: each request carries `none` evidence bound "
        "to its connection's key and gets a fresh certificate from an `--insecure-accept-none` "
        "Steward (CSR signature check, binding, policy, ECDSA P-256 issuance). SEV-SNP replay: "
        "trustee's real Milan report and VCEK in a Keep request, verified in full (VCEK → built-in "
        "ASK → ARK, report signature, TCB) and then refused because its report data binds another "
        "key, which is the correct answer. SEV-SNP, simulated guest: reports from `keep-tee-sim` "
        "bound to each connection's key, collected through its configfs-tsm as a Keep collects "
        "them, with the host's certificate table; the Steward (`--insecure-test-roots`, "
        "`--offline`) verifies them in full and issues. Targets: `none` ≥ 1000 certificates/s "
        "with p99 < 20 ms; SEV-SNP issued ≥ 1000 certificates/s with p99 < 50 ms at concurrency "
        "64; no errors.\n\n"
        "| evidence | concurrency | requests | throughput | p50 | p99 | answers | target |\n"
        "|---|---|---|---|---|---|---|---|\n"
        + "".join(lines)
        + "\nAttestation at start-up, simulated SEV-SNP guest (median wall time of "
        "`keep run --backend cvm hello.wasm`, which compiles on every start on this backend): "
        f"{startup['with']:.1f} ms with a Steward, {startup['without']:.1f} ms without; "
        f"attestation (key, report through configfs-tsm, request, verification, issuance) adds "
        f"{startup['with'] - startup['without']:.1f} ms.\n"
    )
    write_section("steward", section)


if __name__ == "__main__":
    main()
