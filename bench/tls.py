#!/usr/bin/env python3
"""TLS echo benchmark: the repository's C echo server (tests/guests/echo.c) as a Keep with a
`prot = "tls"` listener, against the same C built natively behind a native rustls terminator
(crates/keep-bench, same ring provider and therefore the same cipher suite). The load generator
(tls-load) measures bulk throughput over one connection (full duplex) and sequential handshakes
per second, alternating the two servers; the best of the runs counts. Writes the TLS section of
docs/benchmarks.md.

Usage: scripts/bench --tls [--quick]
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from sections import write_section

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench" / "tls"
QUICK = "--quick" in sys.argv
BYTES = 64 << 20 if QUICK else 512 << 20
HANDSHAKES = 100 if QUICK else 500
RUNS = 2 if QUICK else 4


def sh(*args, **kwargs):
    return subprocess.run(args, check=True, **kwargs)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port):
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on port {port}")


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    sh("cargo", "build", "--release", "--locked", "-p", "keep-cli", "-p", "keep-bench", cwd=ROOT)
    release = ROOT / "target" / "release"
    keep, terminator, load = release / "keep", release / "tls-terminator", release / "tls-load"
    echo_c = ROOT / "tests" / "guests" / "echo.c"
    native_echo, echo_wasm = WORK / "echo", WORK / "echo.wasm"
    sh("clang", "-O2", "-I", str(echo_c.parent), "-o", str(native_echo), str(echo_c))
    sh("clang", "--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-o", str(echo_wasm), str(echo_c))
    ca, key, cert = WORK / "ca.pem", WORK / "server.key", WORK / "server.crt"
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", str(WORK / "ca.key"), "-out", str(ca), "-subj", "/CN=bench CA", "-days", "2",
       capture_output=True)
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", str(key), "-out", str(WORK / "server.csr"), "-subj", "/CN=localhost",
       capture_output=True)
    (WORK / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", str(WORK / "server.csr"), "-CA", str(ca), "-CAkey",
       str(WORK / "ca.key"), "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile",
       str(WORK / "ext.cnf"), capture_output=True)

    keep_port, native_port, backend_port = free_port(), free_port(), free_port()
    config = WORK / "Keep.toml"
    config.write_text(
        f'[tls]\ncert = "{cert}"\nkey = "{key}"\n'
        '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
        f'[[files]]\nkind = "listen"\nname = "ingest"\nprot = "tls"\naddr = "127.0.0.1"\nport = {keep_port}\n'
    )
    servers = []
    try:
        env = dict(os.environ, XDG_CACHE_HOME=str(WORK / "cache"))
        servers.append(subprocess.Popen([keep, "run", "-q", "-c", config, echo_wasm, "ingest"], env=env))
        backend = socket.socket()
        backend.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        backend.bind(("127.0.0.1", backend_port))
        backend.listen(128)
        servers.append(subprocess.Popen(
            [native_echo, "ingest"], pass_fds=(backend.fileno(),),
            preexec_fn=lambda: os.dup2(backend.fileno(), 3),
            env=dict(os.environ, FD_NAMES="stdin:stdout:stderr:ingest", FD_COUNT="4")))
        servers.append(subprocess.Popen(
            [terminator, f"127.0.0.1:{native_port}", f"127.0.0.1:{backend_port}", cert, key]))
        for port in (keep_port, native_port):
            wait_port(port)
        results = {"keep": [], "native": []}
        for _ in range(RUNS):
            for name, port in (("keep", keep_port), ("native", native_port)):
                out = subprocess.run([load, f"127.0.0.1:{port}", ca, str(BYTES), str(HANDSHAKES)],
                                     check=True, capture_output=True, text=True).stdout
                values = dict(item.split("=") for item in out.split())
                results[name].append(values)
                print(name, out.strip(), flush=True)
    finally:
        for server in servers:
            server.kill()
    write_report(results)


def best(runs, key):
    return max(float(r[key]) for r in runs)


def write_report(results):
    keep_mb, native_mb = best(results["keep"], "throughput_mb_s"), best(results["native"], "throughput_mb_s")
    keep_hs, native_hs = best(results["keep"], "handshakes_s"), best(results["native"], "handshakes_s")
    cipher = results["keep"][0]["cipher"]
    section = (
        "## TLS echo server (`scripts/bench --tls`)\n\n"
        "`tests/guests/echo.c` as a Keep with a `prot = \"tls\"` listener, against the same C "
        "built natively behind a native rustls terminator (`crates/keep-bench`), both rustls "
        f"0.23 with the ring provider; negotiated suite {cipher}. Load from `tls-load` on the "
        f"same machine: {BYTES >> 20} MiB echoed over one connection (full duplex) and "
        f"{HANDSHAKES} sequential connections; best of {RUNS} alternating runs.\n\n"
        "| measure | keep | native | keep/native | target |\n|---|---|---|---|---|\n"
        f"| bulk throughput | {keep_mb:.1f} MB/s | {native_mb:.1f} MB/s | {keep_mb / native_mb:.2f} | ≥ 0.8 |\n"
        f"| handshakes | {keep_hs:.0f}/s | {native_hs:.0f}/s | {keep_hs / native_hs:.2f} | – |\n"
        "\nThe native reference is the architecture the issue names (a TLS terminator in front of the\n"
        "server), so it pays a loopback TCP hop and thread hand-offs per direction that Keep's\n"
        "in-process termination does not; the ratio measures that, not rustls against rustls. Keep's\n"
        "own cost per byte is the host-call path (guest `read`/`write` → Keep → rustls).\n"
    )
    write_section("tls", section)


if __name__ == "__main__":
    main()
