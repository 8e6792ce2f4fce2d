#!/usr/bin/env python3
"""Sealed directories against plain preopened directories: the same guest
(bench/kernels/disk.c), the same `keep run` (release, confined, attested to the same
Steward), one run, as a preview-1 module and as a WASI 0.2 component (whose sealed
directories Keep serves itself). Sequential write and read of 256 MiB, random 4 KiB reads and
writes with an fsync every 64 writes, and a SQLite database (module only), each timed by
the guest itself (start-up and attestation are not counted). Writes the sealed section of
docs/benchmarks.md."""

import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from run import ROOT, build_c, sh
from sections import write_section

TARGET = 0.5
QUICK = "--quick" in sys.argv
MIB = 64 if QUICK else 256
RANDOM_OPS = 4000 if QUICK else 20000
RUNS = 1 if QUICK else 3
SQL_ROWS = 2000 if QUICK else 20000


def build_sqlite():
    """The SQLite guest (tests/guests/sqlite.c), built as the test suite builds it: from the
    amalgamation libsqlite3-sys ships, with the flags it uses for WASI targets."""
    metadata = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"], cwd=ROOT, check=True,
        capture_output=True, text=True).stdout)
    crate = next(p for p in metadata["packages"] if p["name"] == "libsqlite3-sys")
    amalgamation = Path(crate["manifest_path"]).parent / "sqlite3"
    out = ROOT / ".bench" / "bin" / "sqlite.wasm"
    out.parent.mkdir(parents=True, exist_ok=True)
    sh("clang", "--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-I", str(amalgamation),
       "-DSQLITE_THREADSAFE=0", "-DSQLITE_OMIT_WAL", "-DSQLITE_OMIT_LOAD_EXTENSION",
       "-DSQLITE_TEMP_STORE=3", "-DLONGDOUBLE_TYPE=double", "-D_WASI_EMULATED_MMAN",
       "-D_WASI_EMULATED_GETPID", "-D_WASI_EMULATED_SIGNAL", "-D_WASI_EMULATED_PROCESS_CLOCKS",
       "-o", str(out), str(ROOT / "tests" / "guests" / "sqlite.c"), str(amalgamation / "sqlite3.c"),
       "-lwasi-emulated-mman", "-lwasi-emulated-getpid", "-lwasi-emulated-signal",
       "-lwasi-emulated-process-clocks")
    return out


def steward(keep, ca_dir, extra):
    """A Steward on loopback: (process, URL). Its stderr is drained by a thread."""
    proc = subprocess.Popen(
        [keep, "steward", "serve", "--listen", "127.0.0.1:0", "--generate-ca", ca_dir,
         "--insecure-accept-none", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    for line in proc.stderr:
        if line.startswith("keep steward: listening on "):
            url = line.split()[-1]
            break
    else:
        sys.exit("the Steward did not start")
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, url


def config(tmp, name, url, args, directory):
    path = tmp / f"{name}.toml"
    quoted = ", ".join(f'"{a}"' for a in args)
    path.write_text(
        f'steward = "{url}"\nargs = [{quoted}]\n[tls]\nca = ["{tmp / "ca" / "ca.pem"}"]\n'
        f"[[dirs]]\n{directory}"
    )
    return path


def main():
    sh("cargo", "build", "--release", "--locked", "-p", "keep-cli", "-p", "keep-bench", cwd=ROOT)
    release = ROOT / "target" / "release"
    keep = release / "keep"
    disk = build_c("disk", ROOT / "bench" / "kernels" / "disk.c")[1]
    # The same kernel as a WASI 0.2 component (preview-1 command adapter). SQLite runs as a module only: as a component it trips an
    # assertion of the adapter (docs/sealed.md).
    disk_component = Path(subprocess.run(
        [release / "build-guest", "--wrap", ROOT / ".bench", disk], check=True,
        capture_output=True, text=True).stdout.strip())
    programs = {
        "module": {"disk": disk, "sqlite": build_sqlite()},
        "component": {"disk": disk_component},
    }
    ops = {
        "write": ("disk", ["write", "/data/big", str(MIB)]),
        "read": ("disk", ["read", "/data/big"]),
        "random": ("disk", ["random", "/data/big", str(RANDOM_OPS)]),
        "database": ("sqlite", ["/data/bench.db", "bench", str(SQL_ROWS)]),
    }
    cases = [(form, op) for form in programs for op in ops if ops[op][0] in programs[form]]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # The CA first: configurations name it, and their digests cover it.
        first, _ = steward(keep, tmp / "ca", [])
        first.kill()
        first.wait()
        # One store per form, each with a key of its own: a store's identity is its key and
        # guest path, and the Steward keeps one version per identity.
        dirs = {}
        for form in programs:
            (tmp / f"plain-{form}").mkdir()
            dirs[(form, "plain")] = f'host = "{tmp / f"plain-{form}"}"\nguest = "/data"\n'
            dirs[(form, "sealed")] = (f'host = "{tmp / f"sealed-{form}"}"\nguest = "/data"\n'
                                      f'sealed = true\nkey = "bench-{form}"\n')
        placeholder = "https://127.0.0.1:1"
        configs = {
            (form, kind, op): config(tmp, f"{form}-{kind}-{op}", placeholder, ops[op][1],
                                     dirs[(form, kind)])
            for form, op in cases for kind in ("plain", "sealed")
        }

        def program(form, op):
            return programs[form][ops[op][0]]

        digests = [
            subprocess.run([keep, "digest", program(form, op), "-c", path], check=True,
                           capture_output=True, text=True).stdout.strip()
            for (form, kind, op), path in configs.items() if kind == "sealed"
        ]
        secrets = tmp / "secrets.toml"
        text = ""
        for form in programs:
            (tmp / f"{form}.key").write_bytes(bytes(range(32)))
            text += f'[[secret]]\nname = "bench-{form}"\nfile = "{tmp / f"{form}.key"}"\n'
        names = ", ".join(f'"bench-{form}"' for form in programs)
        quoted = ", ".join(f'"{d}"' for d in digests)
        secrets.write_text(text + f"[[release]]\nsecrets = [{names}]\nworkloads = [{quoted}]\n")
        proc, url = steward(keep, tmp / "ca", ["--secrets", secrets, "--sealed-versions",
                                               tmp / "versions.json"])
        try:
            for path in configs.values():
                path.write_text(path.read_text().replace(placeholder, url))
            best = {}
            for _ in range(RUNS + 1):  # the first round warms the module cache
                for form, op in cases:
                    for kind in ("plain", "sealed"):
                        out = subprocess.run(
                            [keep, "run", "-q", "-c", configs[(form, kind, op)],
                             program(form, op)],
                            check=True, capture_output=True, text=True,
                        ).stdout
                        seconds = float(out.strip())
                        key = (form, kind, op)
                        best[key] = min(best.get(key, seconds), seconds)
                print(best)
            log = tmp / "sealed-module" / "keep-sealed.log"
            log_size = log.stat().st_size
        finally:
            proc.kill()
            proc.wait()
    write_report(cases, best, log_size, aes_gcm_bytes_per_second())


def aes_gcm_bytes_per_second():
    """AES-256-GCM over 4 KiB blocks on one core, as `openssl speed` measures it."""
    out = subprocess.run(
        ["openssl", "speed", "-elapsed", "-seconds", "2", "-bytes", "4096", "-evp",
         "aes-256-gcm"], check=True, capture_output=True, text=True,
    ).stdout
    # The last line: `AES-256-GCM    4252016.64k` (thousands of bytes per second).
    return float(out.strip().splitlines()[-1].split()[-1].rstrip("k")) * 1000


def write_report(cases, best, log_size, aes):
    rates = {
        "write": (f"sequential write of {MIB} MiB (1 MiB writes, one fsync)", MIB, "MiB/s"),
        "read": (f"sequential read of {MIB} MiB (1 MiB reads)", MIB, "MiB/s"),
        "random": (f"random 4 KiB reads and writes, {RANDOM_OPS} operations, fsync every 64 "
                   "writes", RANDOM_OPS, "ops/s"),
        "database": (f"SQLite (`tests/guests/sqlite.c bench`): {SQL_ROWS} inserts in "
                     "transactions of 100, 1000 point queries, a full scan", SQL_ROWS,
                     "rows/s"),
    }
    plain_read = MIB * 2**20 / best[("module", "plain", "read")]
    rows = ""
    missed = []
    ratio = {}
    for form, op in cases:
        title, amount, unit = rates[op]
        sealed = amount / best[(form, "sealed", op)]
        plain = amount / best[(form, "plain", op)]
        ratio[(form, op)] = sealed / plain
        if sealed / plain < TARGET:
            missed.append(f"{title} ({form})")
        rows += (f"| {form} | {title} | {plain:,.0f} {unit} | {sealed:,.0f} {unit} | "
                 f"{sealed / plain:.2f} | ≥ {TARGET} | "
                 f"{'met' if sealed / plain >= TARGET else 'MISSED'} |\n")
    section = (
        "## Sealed directories (`scripts/bench --sealed`)\n\n"
        "The same guest (`bench/kernels/disk.c`, timed from inside, so that start-up and "
        "attestation are not counted) on a plain preopened directory and on a sealed one, "
        "each under `keep run` (release, process backend, confined, attested to the same "
        "Steward on loopback), fastest of "
        f"{RUNS} interleaved runs; as a preview-1 module and as a WASI 0.2 component (the "
        "same module wrapped with wasmtime's preview-1 adapter), whose sealed directories "
        "Keep serves itself. The host's directories are on this machine's disk.\n\n"
        "| guest | workload | plain | sealed | ratio | target | |\n"
        "|---|---|---|---|---|---|---|\n"
        + rows
        + f"\nThe module's sealed log after the runs: {log_size / 2**20:,.0f} MiB (compacted "
        "when a store opens, and while it runs once its garbage is twice its live data: the "
        "file is 256 MiB, the rest is what the last runs rewrote).\n"
        + (f"\nBelow the target: {'; '.join(missed)}.\n" if missed else "")
        + "\nWhere the time goes. Both forms' sealed directories are served by Keep on the "
        "guest's thread (docs/sealed.md): a file call costs a host call into Keep, the "
        "store's bookkeeping and AES-256-GCM over each 4 KiB chunk, where the plain directory "
        "costs a system call into the host's page cache. Until this design, both went "
        "through FUSE (at first, and a component until the last round): the same runs gave "
        "0.30 (write), 0.07 (read), 0.43 (random) and 0.30 (SQLite) for the module, and 0.95 "
        "(write, with the kernel's writeback cache), 0.28 (read) and 0.35 (random) for the "
        "component. The FUSE round trip, about 45 µs per request on this 2-core VM (`perf`: "
        "mostly two context switches and their wake-ups), two copies per byte, and a FUSE "
        "page cache that started cold in every Keep are gone. A component pays what the "
        "component model costs both directories alike: wasmtime's preview-1 adapter cuts "
        "every write into 4 KiB `blocking-write-and-flush` calls, and a read's bytes are "
        "copied into the guest by the canonical ABI (a module's reads are decrypted straight "
        "into its memory). wasmtime-wasi serves the plain directory with a `pwrite` system "
        "call per 4 KiB write and hands each read, at most 64 KiB, to a blocking thread; "
        "Keep serves each 4 KiB write into the store's chunk cache and reads up to 1 MiB at "
        "once, which is why the component's sealed writes outrun its plain ones. "
        "Sequential reads: the plain file comes from the host's page cache, a copy at "
        "memory speed; a sealed read decrypts every chunk, since the plaintext exists only "
        "inside the Keep. The arithmetic bounds it: this run read the plain file at "
        f"{plain_read / 1e9:.1f} GB/s, and AES-256-GCM decrypts 4 KiB blocks at "
        f"{aes / 1e9:.1f} GB/s on one core of this machine (`openssl speed -evp aes-256-gcm`, "
        "in this run); Keep decrypts a large read in two halves, one per core, so a sealed "
        f"read could reach {2 * aes / plain_read:.2f} of the plain one before the log's read "
        "and the copies into the guest (three of each byte, at memory speed like the plain "
        f"read itself); the module reached {ratio[('module', 'read')]:.2f}. That bound is "
        "the hardware's: a faster host speeds up page-cache copies more than AES (on a host "
        "that read the plain file at 9 GB/s, the FUSE design gave 0.19). The component's "
        "plain read is slower (64 KiB pieces, each through a blocking thread), so the same "
        f"decryption gives it {ratio[('component', 'read')]:.2f}; its plain baseline varies "
        "most between runs (on this host, 5.6 to 8.7 GB/s). Random 4 KiB "
        "operations: the store is a log, so random writes become appends, and each `fsync` "
        "syncs one region of the log where the plain file's `fsync` writes back 64 scattered "
        "blocks, which is where the module's sealed directory gains on the plain one. Each "
        "`fsync` commits: seals what is unsealed, appends a commit, syncs the log, then waits "
        "for the Steward to record the new version durably (its own sync): the order "
        "matters, since a version recorded before the log is durable would make a power cut "
        "look like a rollback, and an `fsync` answered before the Steward recorded it could "
        "be rolled back unnoticed. SQLite's 200 transactions cost 800 such commits, each "
        "two durable syncs and a round trip to the Steward where the plain directory pays "
        "one sync (with a Steward across a network, each `fsync` also costs that network's "
        "round trip: the price of rollback protection with a remote witness). Both the log "
        "and the Steward's journal keep zeros written ahead of their end, so that a commit "
        "overwrites blocks the file already has and its `fdatasync` writes data alone, not "
        "the file's new size too (90 µs against 155 µs on this disk): SQLite went from 0.30-0.37 "
        "to 0.49-0.59 (three runs, at the edge of the target: the plain run varies by 10%) with it. Changed in the last round, and measured: a write's chunks are sealed in batches of "
        "8 MiB, each encrypted in two halves side by side with one call for all its nonces "
        "(the module's sequential write went from 0.49-0.69 over three runs to 0.81). "
        "Changed after profiling, and measured, in earlier rounds: a commit "
        "cut a large file's chunk map by a scan of every chunk (now a logarithmic "
        "`split_off`); through FUSE, `getxattr` answered `ENODATA`, which made the kernel ask "
        "again on every write (now `ENOSYS`), and two threads take the kernel's requests. "
        "Kept from earlier work: consecutive chunks read with one system call per 128 KiB "
        "(opened while in the core's cache), chunks sealed in place, one connection to the "
        "Steward for all of a store's commits.\n"
    )
    write_section("sealed", section)


if __name__ == "__main__":
    main()
