#!/usr/bin/env python3
"""containerd with Keep's shim against `keep run`, in one run: a TCP echo service
(tests/guests/pollecho.c, packaged with `keep package --format image`) from the start command
to its first echoed answer on loopback, cold (nothing compiled yet) and with the compiled code
cached (containerd's content store for the shim, Keep's module cache for `keep run`); and the
memory one container costs (proportional set size of the shim's processes for it, against the
`keep run` process). Writes the containerd section of docs/benchmarks.md.

Usage: scripts/bench --containerd [--quick]
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import ROOT, build_c, sh
from sections import write_section

QUICK = "--quick" in sys.argv
RUNTIME = "io.containerd.keep.v1"
IMAGE = "bench.keep/echo:v1"
NATIVE_IMAGE = "bench.keep/native-echo:v1"


def native_image(tmp, port):
    """An OCI image (tar) whose root file system is a static native echo server
    (bench/kernels/echo_once.c): the floor of a container start under runc."""
    rootfs = tmp / "native-rootfs"
    rootfs.mkdir()
    sh("clang", "-O2", "-static", "-o", rootfs / "echo_once",
       ROOT / "bench" / "kernels" / "echo_once.c")
    layout = tmp / "native"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def store(data):
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    subprocess.run(["tar", "-C", rootfs, "-cf", tmp / "layer.tar", "."], check=True)
    layer = store((tmp / "layer.tar").read_bytes())
    config = store(json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/echo_once", str(port)]},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
    }).encode())
    manifest = store(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
    }).encode())
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
        "annotations": {"org.opencontainers.image.ref.name": NATIVE_IMAGE}}]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    subprocess.run(["tar", "-C", layout, "-cf", tmp / "native.tar", "."], check=True)
    return tmp / "native.tar"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_answer(port, deadline=60.0):
    """Connects until the service answers; returns when it has echoed one message."""
    end = time.perf_counter() + deadline
    while time.perf_counter() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(b"ping\n")
                conn.shutdown(socket.SHUT_WR)
                if conn.recv(16) == b"ping\n":
                    return
        except OSError:
            time.sleep(0.0005)
    sys.exit("the service never answered")


def pss_kib(pids):
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def shim_pids(container_id):
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"containerd-shim-keep-v1" in cmdline[0] and container_id.encode() in cmdline:
            pids.append(int(proc.name))
    return pids


class Containerd:
    def __init__(self, work, bin_dir, shim_dir):
        self.work = work
        self.bin = bin_dir
        self.socket = work / "containerd.sock"
        config = work / "containerd.toml"
        config.write_text(
            f'version = 2\nroot = "{work}/root"\nstate = "{work}/state"\n'
            f'[grpc]\naddress = "{self.socket}"\n[ttrpc]\naddress = "{self.socket}.ttrpc"\n'
            '[plugins."io.containerd.grpc.v1.cri"]\ndisable = true\n'
        )
        env = dict(os.environ, PATH=f"{shim_dir}:{bin_dir}:{os.environ['PATH']}")
        env.pop("KEEP_SHIM_CONFIG", None)
        self.log = open(work / "containerd.log", "w")
        self.proc = subprocess.Popen([bin_dir / "containerd", "--config", config], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        end = time.time() + 30
        while not self.socket.exists():
            if time.time() > end or self.proc.poll() is not None:
                sys.exit("containerd did not start")
            time.sleep(0.01)
        self.count = 0

    def ctr(self, namespace, *args, **kwargs):
        return subprocess.run([self.bin / "ctr", "--address", self.socket, "--namespace",
                               namespace, *args], check=True, capture_output=True, **kwargs)

    def start(self, namespace, port, image=IMAGE, runtime=RUNTIME):
        """Starts the service; returns (seconds to its first answer, container id, process)."""
        self.count += 1
        cid = f"echo-{self.count}"
        start = time.perf_counter()
        proc = subprocess.Popen(
            [self.bin / "ctr", "--address", self.socket, "--namespace", namespace, "run", "--rm",
             "--net-host", "--runtime", runtime, image, cid],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        first_answer(port)
        return time.perf_counter() - start, cid, proc

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def keep_start(keep, config, program, cache):
    start = time.perf_counter()
    proc = subprocess.Popen([keep, "run", "-q", "-c", config, program],
                            env=dict(os.environ, XDG_CACHE_HOME=str(cache)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return start, proc


def finish(proc):
    if proc.wait(timeout=60) != 0:
        sys.exit(f"the service failed: {proc.stderr.read().decode()}")


def main():
    runs = 5 if QUICK else 15
    if not shutil.which("runc"):  # the floor's runtime (Debian's runc)
        sh(*([] if os.geteuid() == 0 else ["sudo"]), "apt-get", "install", "-y", "-qq", "runc")
    sh("cargo", "build", "--release", "--locked", "-p", "keep-cli", "-p", "keep-shim", cwd=ROOT)
    release = ROOT / "target" / "release"
    keep = release / "keep"
    bin_dir = Path(subprocess.run([ROOT / "scripts" / "containerd-for-tests"], check=True,
                                  capture_output=True, text=True).stdout.strip())
    program = build_c("pollecho", ROOT / "tests" / "guests" / "pollecho.c")[1]
    port = free_port()
    times = {k: [] for k in ("shim cold", "shim cached", "keep cold", "keep cached", "runc")}
    memory = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = tmp / "Keep.toml"
        config.write_text(
            'args = ["1"]\n'
            '[[files]]\nkind = "stdin"\n[[files]]\nkind = "stdout"\n[[files]]\nkind = "stderr"\n'
            f'[[files]]\nkind = "listen"\nname = "ingest"\nprot = "tcp"\naddr = "127.0.0.1"\n'
            f'port = {port}\n'
        )
        subprocess.run([keep, "package", "--format", "image", "-c", config, "-o", tmp / "image",
                        "--tag", IMAGE, program], check=True, capture_output=True)
        subprocess.run(["tar", "-C", tmp / "image", "-cf", tmp / "image.tar", "."], check=True)
        native = native_image(tmp, port)
        containerd = Containerd(tmp, bin_dir, release)
        try:
            containerd.ctr("bench-cached", "image", "import", tmp / "image.tar")
            containerd.ctr("bench-cached", "image", "import", native)
            for i in range(runs):
                # Cold: a namespace of its own, so nothing compiled is labelled for it yet.
                namespace = f"bench-cold-{i}"
                containerd.ctr(namespace, "image", "import", tmp / "image.tar")
                elapsed, _, proc = containerd.start(namespace, port)
                finish(proc)
                times["shim cold"].append(elapsed)

                elapsed, cid, proc = containerd.start("bench-cached", port)
                if i == 0:
                    # The first cached-namespace start compiles; measure from the next on.
                    finish(proc)
                    elapsed, cid, proc = containerd.start("bench-cached", port)
                memory.setdefault("shim", []).append(pss_kib(shim_pids(cid)))
                finish(proc)
                times["shim cached"].append(elapsed)

                cold_cache = tmp / f"cache-cold-{i}"
                start, proc = keep_start(keep, config, program, cold_cache)
                first_answer(port)
                times["keep cold"].append(time.perf_counter() - start)
                finish(proc)

                elapsed, _, proc = containerd.start("bench-cached", port, NATIVE_IMAGE,
                                                    "io.containerd.runc.v2")
                finish(proc)
                times["runc"].append(elapsed)

                start, proc = keep_start(keep, config, program, tmp / "cache-warm")
                first_answer(port)
                times["keep cached"].append(time.perf_counter() - start)
                memory.setdefault("keep", []).append(pss_kib([proc.pid]))
                finish(proc)
        finally:
            containerd.stop()
    best = {k: min(v) for k, v in times.items()}
    mem = {k: sorted(v)[len(v) // 2] for k, v in memory.items()}
    print(best, mem)
    write_report(best, mem, runs)


def runc_version():
    out = subprocess.run(["runc", "--version"], capture_output=True, text=True).stdout
    return out.split()[2] if out else "unknown"


def write_report(best, mem, runs):
    ms = lambda s: f"{s * 1e3:.0f} ms"
    section = f"""## containerd (`scripts/bench --containerd`)

A TCP echo service (`tests/guests/pollecho.c`, a preview-1 module, packaged with `keep package
--format image`) from the start command to its first echoed answer on loopback: `ctr run --rm
--net-host --runtime io.containerd.keep.v1` (containerd 1.7 from Debian 13, Keep's shim) against
`keep run -c Keep.toml` of the same program and Keep.toml, same machine (2 cores), one run,
best of {runs} alternating runs. "Cold": nothing compiled yet (a containerd namespace of its
own; an empty module cache); "cached": the shim's compiled code from containerd's content
store, Keep's module cache. Memory is the proportional set size (PSS) while the service runs:
every process of the shim for that container (the shim, its zygote, the container's process)
against the `keep run` process.

| measure | containerd + shim | keep run | shim/keep |
|---|---|---|---|
| start to first answer, cold | {ms(best['shim cold'])} | {ms(best['keep cold'])} | {best['shim cold'] / best['keep cold']:.2f} |
| start to first answer, cached | {ms(best['shim cached'])} | {ms(best['keep cached'])} | {best['shim cached'] / best['keep cached']:.2f} |
| memory per container (PSS, median) | {mem['shim'] / 1024:.1f} MiB | {mem['keep'] / 1024:.1f} MiB | {mem['shim'] / mem['keep']:.2f} |

The floor of any container here: the same measure for a static native echo server (`bench/kernels/echo_once.c`) in an ordinary image under containerd's runc shim (runc {runc_version()}) is {ms(best['runc'])}. With its cache, Keep's shim starts a Keep in {best['shim cached'] / best['runc']:.2f}x the time containerd and runc take to start a native process, and {ms(best['shim cached'] - best['keep cached'])} later than `keep run`: that difference is containerd's part (the container, its cgroups and namespaces, the shim's processes, the task's I/O, the layers read from the content store over gRPC); the runtime inside is `keep run`'s, without its process confinement (the container stands in for it).
"""
    write_section("containerd", section)


if __name__ == "__main__":
    main()
