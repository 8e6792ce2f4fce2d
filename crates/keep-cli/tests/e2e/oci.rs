//! Packages in OCI registries: `keep package`, `keep push`, `keep pull` and `keep run
//! oci://` against Debian's `docker-registry` (CNCF distribution) started on loopback, with
//! `skopeo` as a second client.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::child::ChildLog;
use crate::common::net::*;
use crate::common::{GUESTS, KEEP_ERROR, Keep};

/// A `docker-registry` on 127.0.0.1 with its storage in a directory of its own; killed
/// when dropped.
struct RegistryProcess {
    child: Child,
    /// `HOST:PORT`.
    host: String,
    storage: PathBuf,
    _log: ChildLog,
}

impl RegistryProcess {
    /// Starts a registry in `dir`; `http` is added to its `http:` section (TLS), `extra`
    /// to its configuration (auth).
    fn start(dir: &Path, http: &str, extra: &str) -> Self {
        let storage = dir.join("storage");
        let config = write_config(
            dir,
            "registry.yml",
            &format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\n{extra}http:\n  addr: 127.0.0.1:0\n{http}",
                storage.display()
            ),
        );
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start docker-registry (Debian package docker-registry)");
        let (listening, address) = mpsc::channel();
        let log = ChildLog::start(child.stderr.take().unwrap(), move |line| {
            if let Some(rest) = line.split("msg=\"listening on ").nth(1)
                && let Some(addr) = rest.split(['"', ',']).next()
            {
                let _ = listening.send(addr.to_owned());
            }
        });
        let host = address
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("docker-registry did not start:\n{}", log.text()));
        Self {
            child,
            host,
            storage,
            _log: log,
        }
    }

    /// The blob files of the registry's storage (`.../blobs/sha256/XX/HEX/data`).
    fn blob_file(&self, hex: &str) -> PathBuf {
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `auth:` section of a registry configuration that lets in user `keeper` with password
/// `s3cret-pass` (an htpasswd file in `dir`).
fn basic_auth(dir: &Path) -> String {
    let htpasswd = dir.join("htpasswd");
    let output = Command::new("htpasswd")
        .args(["-Bbn", "keeper", "s3cret-pass"])
        .output()
        .expect("run htpasswd (Debian package apache2-utils)");
    std::fs::write(&htpasswd, &output.stdout).unwrap();
    format!(
        "auth:\n  htpasswd:\n    realm: keep-test\n    path: {}\n",
        htpasswd.display()
    )
}

/// The value of the line `NAME VALUE` in `output`.
fn line_value(output: &str, name: &str) -> String {
    output
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{output}"))
        .to_owned()
}

/// A program and a Keep.toml that changes what it prints: `printenv` of GREETING.
fn printenv_package(dir: &Path) -> (PathBuf, PathBuf) {
    let config = write_config(dir, "Keep.toml", "[env]\nGREETING = \"from the package\"\n");
    (GUESTS.component("printenv"), config)
}

/// Asserts that a run of the hello guest succeeded and printed its line.
#[track_caller]
fn expect_hello(done: &crate::common::Finished) {
    done.expect_code(0);
    assert_eq!(
        done.stdout_text(),
        "Hello from a Keep!\n",
        "{}",
        done.stderr
    );
}

/// `keep` with its cache (and package store) in `cache`.
fn keep(cache: &Path) -> Keep {
    Keep::with_cache(cache)
}

/// `keep push --registry-plain-http SOURCE REFERENCE`.
fn push_plain(cache: &Path, source: &Path, reference: &str) -> crate::common::Finished {
    keep(cache)
        .args(["push", "--registry-plain-http"])
        .arg_path(source)
        .arg(reference)
        .finish()
}

/// Key pairs `DIR/NAME.key` (passphrase "correct horse") and `DIR/NAME.pub` made by `keep
/// generate-key-pair`.
fn key_pairs(cache: &Path, dir: &Path, names: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    for name in names {
        keep(cache)
            .env("COSIGN_PASSWORD", "correct horse")
            .args(["generate-key-pair", "--output-prefix"])
            .arg_path(&dir.join(name))
            .finish()
            .expect_code(0);
    }
}

/// `keep sign` of `reference` (plain HTTP) with `key` and its `passphrase`.
fn sign_plain(
    cache: &Path,
    key: &Path,
    passphrase: &str,
    reference: &str,
) -> crate::common::Finished {
    keep(cache)
        .env("COSIGN_PASSWORD", passphrase)
        .args(["sign", "--registry-plain-http", "--key"])
        .arg_path(key)
        .arg(reference)
        .finish()
}

/// `keep run -q --registry-plain-http oci://REFERENCE ARGS`.
fn run_plain(cache: &Path, reference: &str, args: &[&str]) -> crate::common::Finished {
    keep(cache)
        .args(["run", "-q", "--registry-plain-http"])
        .arg(&format!("oci://{reference}"))
        .args(args)
        .finish()
}

#[test]
fn a_package_pushed_to_a_registry_runs_from_it_and_then_without_it() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = RegistryProcess::start(tmp.path(), "", "");
    let (program, config) = printenv_package(tmp.path());
    let cache = tmp.path().join("cache");

    // The package's workload digest is `keep digest`'s of the program and Keep.toml.
    let layout = tmp.path().join("package");
    let packaged = keep(&cache)
        .args(["package", "-c"])
        .arg_path(&config)
        .args(["-o"])
        .arg_path(&layout)
        .arg_path(&program)
        .finish();
    packaged.expect_code(0);
    let digest = keep(&cache)
        .args(["digest", "-c"])
        .arg_path(&config)
        .arg_path(&program)
        .finish();
    assert_eq!(
        line_value(&packaged.stdout_text(), "workload"),
        digest.stdout_text().trim()
    );
    let manifest = line_value(&packaged.stdout_text(), "manifest");
    // The same inputs make the same package.
    let again = keep(&cache)
        .args(["package", "-c"])
        .arg_path(&config)
        .args(["-o"])
        .arg_path(&tmp.path().join("again"))
        .arg_path(&program)
        .finish();
    assert_eq!(line_value(&again.stdout_text(), "manifest"), manifest);

    let reference = format!("{}/keep/printenv:v1", registry.host);
    push_plain(&cache, &layout, &reference)
        .expect_code(0)
        .expect_stdout_contains(&format!("pushed {reference}@{manifest}"));

    // Another machine (another store) runs it by tag, with the Keep.toml it carries.
    let elsewhere = tmp.path().join("elsewhere");
    let run = |cache: &Path, reference: &str| run_plain(cache, reference, &["GREETING"]);
    let done = run(&elsewhere, &reference);
    done.expect_code(0);
    assert_eq!(
        done.stdout_text(),
        "GREETING=from the package\n",
        "{}",
        done.stderr
    );
    // And by digest, from the store.
    let pinned = format!("{}/keep/printenv@{manifest}", registry.host);
    // With the registry gone, both still run: nothing is fetched again.
    drop(registry);
    for reference in [&reference, &pinned] {
        let done = run(&elsewhere, reference);
        done.expect_code(0);
        assert_eq!(
            done.stdout_text(),
            "GREETING=from the package\n",
            "{}",
            done.stderr
        );
    }
    // `keep cache info` counts the package's blobs: config, program, Keep.toml, manifest.
    let info = keep(&elsewhere).args(["cache", "info"]).finish();
    info.expect_code(0)
        .expect_stdout_contains("packages:  4 blobs, ")
        .expect_stdout_contains(&format!("in {}", elsewhere.join("keep/packages").display()));
    // A store that never had it says what failed.
    let done = run(&tmp.path().join("empty"), &reference);
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("cannot fetch the manifest of");
}

/// skopeo copies what Keep packaged and pushed, and Keep runs and pushes what skopeo
/// copied; the ORAS Python client pulls Keep's program and pushes one Keep runs: the
/// layouts and manifests are the field's.
#[test]
fn skopeo_and_oras_exchange_packages_with_keep() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = RegistryProcess::start(tmp.path(), "", "");
    let program = GUESTS.component("hello");
    let cache = tmp.path().join("cache");
    let layout = tmp.path().join("package");
    let packaged = keep(&cache)
        .args(["package", "--tag", "v1", "-o"])
        .arg_path(&layout)
        .arg_path(&program)
        .finish();
    packaged.expect_code(0);
    let manifest = line_value(&packaged.stdout_text(), "manifest");

    // skopeo pushes Keep's layout; Keep runs it from the registry.
    let skopeo = |args: &[&str]| {
        let output = Command::new("skopeo")
            .args(args)
            .output()
            .expect("run skopeo (Debian package skopeo)");
        assert!(
            output.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let by_skopeo = format!("{}/keep/by-skopeo:v1", registry.host);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{by_skopeo}"),
    ]);
    let done = run_plain(&cache, &by_skopeo, &[]);
    expect_hello(&done);

    // skopeo pulls into a layout of its own: the same manifest and program; Keep pushes
    // that layout again, and the digest does not change.
    let copied = tmp.path().join("copied");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{by_skopeo}"),
        &format!("oci:{}:v1", copied.display()),
    ]);
    let manifest_hex = manifest.trim_start_matches("sha256:");
    assert!(copied.join("blobs/sha256").join(manifest_hex).is_file());
    let again = format!("{}/keep/again:v1", registry.host);
    push_plain(&cache, &copied, &again)
        .expect_code(0)
        .expect_stdout_contains(&format!("@{manifest}"));

    // ORAS saves the program under its title; and pushes a program as ORAS users do,
    // which Keep runs.
    let oras = |args: &[&str]| {
        let output = Command::new("python3")
            .arg(crate::common::repo_root().join("tests/tools/oras_client.py"))
            .args(args)
            .output()
            .expect("run python3");
        assert!(
            output.status.success(),
            "oras_client.py {args:?} (PyPI package oras): {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let pulled = tmp.path().join("pulled");
    oras(&["pull", &by_skopeo, pulled.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(pulled.join("program.wasm")).unwrap(),
        std::fs::read(&program).unwrap()
    );
    let config = write_config(
        tmp.path(),
        "config.json",
        r#"{"created":"2026-01-01T00:00:00Z","architecture":"wasm","os":"wasip2","layerDigests":[]}"#,
    );
    let by_oras = format!("{}/keep/by-oras:v1", registry.host);
    oras(&[
        "push",
        &by_oras,
        program.to_str().unwrap(),
        config.to_str().unwrap(),
    ]);
    let done = run_plain(&tmp.path().join("fresh"), &by_oras, &[]);
    expect_hello(&done);
}

/// Over TLS with basic auth: the registry's CA (a flag, or Keep.toml's `[tls] ca`) and the
/// credentials (flags, or docker's config file) are given; without them, a clear refusal.
#[test]
fn a_registry_with_tls_and_basic_auth_needs_its_ca_and_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new(tmp.path(), "registry-ca");
    let (cert, key) = ca.issue(tmp.path(), "registry");
    let registry = RegistryProcess::start(
        tmp.path(),
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
        &basic_auth(tmp.path()),
    );
    let cache = tmp.path().join("cache");
    let reference = format!("{}/keep/hello:v1", registry.host);
    let push = |extra: &[&str], password: &[u8]| {
        keep(&cache)
            .args(["push"])
            .args(extra)
            .arg_path(&GUESTS.component("hello"))
            .arg(&reference)
            .stdin(password)
            .finish()
    };
    let with_ca = ["--registry-ca", ca.pem.to_str().unwrap()];
    // No CA: the certificate is not trusted.
    let done = push(&[], b"");
    done.expect_code(KEEP_ERROR);
    assert!(done.stderr.contains("certificate"), "{}", done.stderr);
    // No credentials, or wrong ones: refused.
    let done = push(&with_ca, b"");
    done.expect_code(KEEP_ERROR);
    assert!(
        done.stderr.to_lowercase().contains("unauthorized") || done.stderr.contains("401"),
        "{}",
        done.stderr
    );
    let user = ["--registry-user", "keeper", "--registry-password-stdin"];
    let done = push(&[&with_ca[..], &user[..]].concat(), b"wrong\n");
    done.expect_code(KEEP_ERROR);
    // The right ones: pushed.
    push(&[&with_ca[..], &user[..]].concat(), b"s3cret-pass\n").expect_code(0);
    // Pulled with the credentials docker stored.
    let docker = tmp.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(
            "{{\"auths\":{{\"{}\":{{\"auth\":\"a2VlcGVyOnMzY3JldC1wYXNz\"}}}}}}",
            registry.host
        ),
    )
    .unwrap();
    // ... trusting the registry through the [tls] ca of the Keep.toml given with -c.
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        &format!("[tls]\nca = [\"{}\"]\n", ca.pem.display()),
    );
    let done = keep(&tmp.path().join("other"))
        .env("DOCKER_CONFIG", docker.to_str().unwrap())
        .args(["run", "-q", "-c"])
        .arg_path(&config)
        .arg(&format!("oci://{reference}"))
        .finish();
    expect_hello(&done);
}

/// A blob changed in the registry's storage, and a registry that is gone: each a clear
/// error, nothing run, nothing left in the store.
#[test]
fn tampered_content_and_a_missing_registry_are_refused_with_nothing_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = RegistryProcess::start(tmp.path(), "", "");
    let program = GUESTS.component("hello");
    let program_hex = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(std::fs::read(&program).unwrap()))
    };
    let cache = tmp.path().join("cache");
    let reference = format!("{}/keep/hello:v1", registry.host);
    push_plain(&cache, &program, &reference).expect_code(0);
    let stored = registry.blob_file(&program_hex);
    let mut bytes = std::fs::read(&stored).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&stored, bytes).unwrap();

    let store = tmp.path().join("store");
    let done = run_plain(&store, &reference, &[]);
    done.expect_code(KEEP_ERROR);
    assert!(done.stdout.is_empty(), "nothing ran");
    assert!(done.stderr.contains("digest"), "{}", done.stderr);
    let refs = store.join("keep/packages/refs");
    assert!(
        !refs.exists() || std::fs::read_dir(&refs).unwrap().next().is_none(),
        "a reference was stored for a package that failed its digests"
    );

    drop(registry);
    let done = keep(&store)
        .args(["pull", "--registry-plain-http"])
        .arg(&reference)
        .finish();
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains(&format!("cannot fetch the manifest of {reference}"));
}

/// A Linux image (no Wasm in it) that skopeo pushed, as an index of two platforms and as
/// the single manifest skopeo picks for this host: refused by what it is, nothing run,
/// nothing stored.
#[test]
fn a_manifest_for_another_platform_is_refused_with_nothing_stored() {
    use sha2::Digest as _;
    let tmp = tempfile::tempdir().unwrap();
    let registry = RegistryProcess::start(tmp.path(), "", "");
    let layout = tmp.path().join("linux-image");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let blob = |bytes: &[u8]| {
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        format!(r#""digest":"sha256:{hex}","size":{}"#, bytes.len())
    };
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let layer = tmp.path().join("layer.tar.gz");
    let status = Command::new("tar")
        .arg("czf")
        .arg(&layer)
        .arg("-C")
        .arg(&empty)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success());
    let layer = blob(&std::fs::read(&layer).unwrap());
    let config = blob(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#,
    );
    let manifest = blob(
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json",{config}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",{layer}}}]}}"#
        )
        .as_bytes(),
    );
    let index = blob(
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json",{manifest},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json",{manifest},"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#
        )
        .as_bytes(),
    );
    std::fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json",{index},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let push = |args: &[&str], reference: &str| {
        let output = Command::new("skopeo")
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--override-arch",
                "amd64",
            ])
            .args(["--override-os", "linux"])
            .args(args)
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{reference}"))
            .output()
            .expect("run skopeo (Debian package skopeo)");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let indexed = format!("{}/linux/indexed:v1", registry.host);
    let single = format!("{}/linux/single:v1", registry.host);
    push(&["--all"], &indexed);
    push(&[], &single);

    let store = tmp.path().join("store");
    for (reference, expected) in [
        (
            &indexed,
            "no manifest for the Wasm platform (platforms: linux/amd64, linux/arm64)",
        ),
        (&single, "the package is for linux/amd64, not for wasm"),
    ] {
        let done = run_plain(&store, reference, &[]);
        done.expect_code(KEEP_ERROR)
            .expect_stderr_contains(expected);
        assert!(done.stdout.is_empty(), "nothing ran");
    }
    assert!(
        !any_file_holds(&store, b"amd64"),
        "something of the image was stored"
    );
}

/// Signatures in cosign's format: `keep generate-key-pair`, `keep sign` (also with a key
/// cosign made), and `--verify-key` on `keep pull` and `keep run`: a package runs only if
/// one of the keys signed it; unsigned or signed by another key, nothing runs and nothing
/// is stored; verified signatures stay in the store for runs without the network.
#[test]
fn a_package_runs_only_when_signed_by_a_key_given() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = RegistryProcess::start(tmp.path(), "", "");
    let cache = tmp.path().join("cache");
    let keys = tmp.path().join("keys");
    key_pairs(&cache, &keys, &["signer", "other"]);
    // A key pair is never overwritten.
    keep(&cache)
        .env("COSIGN_PASSWORD", "x")
        .args(["generate-key-pair", "--output-prefix"])
        .arg_path(&keys.join("signer"))
        .finish()
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("exists");
    let signed = format!("{}/keep/signed:v1", registry.host);
    let unsigned = format!("{}/keep/unsigned:v1", registry.host);
    for reference in [&signed, &unsigned] {
        push_plain(&cache, &GUESTS.component("hello"), reference).expect_code(0);
    }
    let sign = |key: &Path, passphrase: &str| sign_plain(&cache, key, passphrase, &signed);
    sign(&keys.join("signer.key"), "wrong")
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("passphrase");
    sign(&keys.join("signer.key"), "correct horse")
        .expect_code(0)
        .expect_stdout_contains(".sig");
    // A key cosign generated (crates/keep-oci/testdata) signs too, beside the first.
    let cosign_key = crate::common::repo_root()
        .join("crates/keep-oci/testdata/cosign_generated_encrypted_empty_private.key");
    sign(&cosign_key, "").expect_code(0);

    let run = |store: &Path, reference: &str, key: &str| {
        keep(store)
            .args(["run", "-q", "--registry-plain-http", "--verify-key"])
            .arg_path(&keys.join(key))
            .arg(&format!("oci://{reference}"))
            .finish()
    };
    let store = tmp.path().join("store");
    let done = run(&store, &signed, "signer.pub");
    expect_hello(&done);
    keep(&tmp.path().join("pulled"))
        .args(["pull", "--registry-plain-http", "--verify-key"])
        .arg_path(&keys.join("other.pub"))
        .args(["--verify-key"])
        .arg_path(&keys.join("signer.pub"))
        .arg(&signed)
        .finish()
        .expect_code(0)
        .expect_stdout_contains("signed by");

    let fresh = tmp.path().join("fresh");
    let done = run(&fresh, &signed, "other.pub");
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("signature(s) is a valid signature");
    assert!(done.stdout.is_empty());
    let done = run(&fresh, &unsigned, "signer.pub");
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("the package is not signed");
    assert!(
        !fresh.join("keep/packages/refs").exists(),
        "a package that failed its signature check was stored"
    );

    // The keys can be in the Keep.toml given with -c (`[package] signers`, relative to it).
    let with_signers = |name: &str, key: &str| {
        write_config(&keys, name, &format!("[package]\nsigners = [\"{key}\"]\n"))
    };
    let trusting = with_signers("Trusting.toml", "signer.pub");
    let wary = with_signers("Wary.toml", "other.pub");
    let run_with = |store: &Path, config: &Path| {
        keep(store)
            .args(["run", "-q", "--registry-plain-http", "-c"])
            .arg_path(config)
            .arg(&format!("oci://{signed}"))
            .finish()
    };
    expect_hello(&run_with(&tmp.path().join("by-config"), &trusting));
    let done = run_with(&tmp.path().join("by-config-wary"), &wary);
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("signature(s) is a valid signature");
    assert!(done.stdout.is_empty());

    // The signatures checked are kept: with the registry gone, the run is checked again.
    drop(registry);
    let done = run(&store, &signed, "signer.pub");
    expect_hello(&done);
    run(&store, &signed, "other.pub").expect_code(KEEP_ERROR);
}

/// A TCP proxy to `upstream` that passes at most `limit` bytes of responses on each
/// connection and then cuts it: a registry that goes down in the middle of a pull. Every
/// thread it starts is joined when it is dropped.
struct CuttingProxy {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<Vec<std::thread::JoinHandle<()>>>>,
}

impl CuttingProxy {
    fn start(upstream: &str, limit: usize) -> Self {
        use std::io::{Read as _, Write as _};
        use std::net::{Shutdown, TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let upstream = upstream.to_owned();
        let acceptor = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut threads = Vec::new();
                for client in listener.incoming() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let (Ok(client), Ok(server)) = (client, TcpStream::connect(&upstream)) else {
                        continue;
                    };
                    let (mut client_in, mut server_out) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    threads.push(std::thread::spawn(move || {
                        let _ = std::io::copy(&mut client_in, &mut server_out);
                        let _ = server_out.shutdown(Shutdown::Write);
                    }));
                    let (mut server_in, mut client_out) = (server, client);
                    threads.push(std::thread::spawn(move || {
                        let mut passed = 0;
                        let mut buffer = [0u8; 4096];
                        while let Ok(n) = server_in.read(&mut buffer) {
                            let n = n.min(limit - passed);
                            if n == 0 || client_out.write_all(&buffer[..n]).is_err() {
                                break;
                            }
                            passed += n;
                        }
                        let _ = client_out.shutdown(Shutdown::Both);
                        let _ = server_in.shutdown(Shutdown::Both);
                    }));
                }
                threads
            })
        };
        Self {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the acceptor, which then sees `stop`.
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            for thread in acceptor.join().expect("proxy acceptor") {
                thread.join().expect("proxy connection");
            }
        }
    }
}

/// The registry goes down in the middle of the program's blob: a clear error, nothing run,
/// nothing in the store; the next pull, with the registry back, runs.
#[test]
fn a_registry_that_goes_down_mid_pull_leaves_nothing_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = RegistryProcess::start(tmp.path(), "", "");
    let cache = tmp.path().join("cache");
    let direct = format!("{}/keep/hello:v1", registry.host);
    push_plain(&cache, &GUESTS.component("hello"), &direct).expect_code(0);
    // The manifest and the config fit in 16 KiB; the program does not.
    let proxy = CuttingProxy::start(&registry.host, 16 << 10);
    let store = tmp.path().join("store");
    let done = run_plain(&store, &format!("{}/keep/hello:v1", proxy.addr), &[]);
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("cannot fetch sha256:");
    assert!(done.stdout.is_empty(), "nothing ran");
    assert!(
        !store.join("keep/packages").exists(),
        "a cut pull left something in the store"
    );
    drop(proxy);
    let done = run_plain(&store, &direct, &[]);
    expect_hello(&done);
}

#[test]
fn a_steward_certifies_a_package_by_its_signer_and_the_certificate_says_so() {
    use crate::common::steward::{StewardProcess, keep_verify, steward_ca};
    let tmp = tempfile::tempdir().unwrap();
    let registry = RegistryProcess::start(tmp.path(), "", "");
    let cache = tmp.path().join("cache");
    let keys = tmp.path().join("keys");
    key_pairs(&cache, &keys, &["release", "other"]);
    let repository = format!("{}/keep/svc", registry.host);

    // The policy names the release key and the repository, not a digest: a new version of
    // the package needs no new policy.
    let ca = steward_ca(&tmp.path().join("ca"));
    let policy = write_config(
        tmp.path(),
        "policy.toml",
        &format!(
            "[[workload]]\nsigners = [\"keys/release.pub\"]\nrepository = \"{repository}\"\n\
             names = [\"localhost\"]\n"
        ),
    );
    let steward = StewardProcess::start(
        &tmp.path().join("ca"),
        &[
            "--insecure-accept-none".as_ref(),
            "--policy".as_ref(),
            policy.as_os_str(),
        ],
    );

    // The package's Keep.toml names its Steward's CA by a relative path: the package carries
    // the file, and the Keep runs elsewhere, where no such file is.
    let source = tmp.path().join("source");
    std::fs::create_dir_all(source.join("ca")).unwrap();
    std::fs::copy(&ca, source.join("ca/ca.pem")).unwrap();
    let config_text = |greeting: &str| {
        format!(
            "steward = \"{}\"\n{STDIO}{}[env]\nVERSION = \"{greeting}\"\n[tls]\nca = [\"ca/ca.pem\"]\n\
             names = [\"localhost\"]\n",
            steward.url(),
            listener("ingest", "tls", "")
        )
    };
    let push = |config: &Path, reference: &str| {
        keep(&cache)
            .args(["push", "--registry-plain-http", "-c"])
            .arg_path(config)
            .arg_path(&GUESTS.module("pollecho"))
            .arg(reference)
            .finish()
            .expect_code(0);
    };
    let signed = format!("{repository}:v1");
    let v1 = write_config(&source, "Keep.toml", &config_text("1"));
    push(&v1, &signed);
    sign_plain(&cache, &keys.join("release.key"), "correct horse", &signed).expect_code(0);

    let store = tmp.path().join("store");
    let oci = |reference: &str| format!("oci://{reference}");
    let plain = std::ffi::OsStr::new("--registry-plain-http");
    let reference = oci(&signed);
    let served = Served::run(&store, &[plain, reference.as_ref()], 1);
    let log = steward.log_with("issued:");
    assert!(
        log.contains(&format!("package {repository}@sha256:"))
            && log.contains("signed by [sha256:"),
        "{log}"
    );
    let target = served.addr("ingest").to_string();
    assert_eq!(
        tls_echo(served.addr("ingest"), client_config(&ca, None), b"ping\n").unwrap(),
        b"ping\n"
    );
    let ca_arg = ca.to_str().unwrap();
    let release_pub = keys.join("release.pub");
    let other_pub = keys.join("other.pub");
    let (code, stdout, stderr) = keep_verify(&[
        "--ca",
        ca_arg,
        "--signer",
        release_pub.to_str().unwrap(),
        &target,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("package:         {repository}@sha256:")),
        "{stdout}"
    );
    assert!(stdout.contains("signed by:       sha256:"), "{stdout}");
    let (code, _, stderr) = keep_verify(&[
        "--ca",
        ca_arg,
        "--signer",
        other_pub.to_str().unwrap(),
        &target,
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("expectation failed: the package was signed by sha256:"),
        "{stderr}"
    );
    drop(served);

    // Refused before anything runs: a package nobody signed, one signed by another key, and
    // the signed package copied to a repository the policy does not name (signed there).
    let refused = |reference: &str, reason: &str| {
        let done = keep(&store)
            .args(["run", "-q", "--registry-plain-http"])
            .arg(&oci(reference))
            .finish();
        done.expect_code(KEEP_ERROR)
            .expect_stderr_contains("the Steward refused the request (403)")
            .expect_stderr_contains(reason);
        assert!(!done.stderr.contains("keep: listening"), "{}", done.stderr);
    };
    let v2 = write_config(&source, "Keep.toml", &config_text("2"));
    let unsigned = format!("{repository}:v2");
    push(&v2, &unsigned);
    refused(&unsigned, "signed by none of the policy's keys");
    sign_plain(&cache, &keys.join("other.key"), "correct horse", &unsigned).expect_code(0);
    refused(&unsigned, "signed by none of the policy's keys");
    let copy = format!("{}/keep/copy:v1", registry.host);
    push(&v1, &copy);
    sign_plain(&cache, &keys.join("release.key"), "correct horse", &copy).expect_code(0);
    refused(&copy, &format!("{}/keep/copy@sha256:", registry.host));
    // The certified package again, from the store: its signatures were kept with it.
    drop(registry);
    let served = Served::run(&store, &[plain, reference.as_ref()], 1);
    assert_eq!(
        tls_echo(served.addr("ingest"), client_config(&ca, None), b"ping\n").unwrap(),
        b"ping\n"
    );
}

#[test]
fn an_encrypted_package_runs_only_in_a_keep_its_steward_gives_the_key() {
    use crate::common::steward::{
        PLACEHOLDER, StewardProcess, digest, package_key_pair, package_key_secrets, point_to,
        steward_ca,
    };
    let tmp = tempfile::tempdir().unwrap();
    let registry = RegistryProcess::start(tmp.path(), "", "");
    let cache = tmp.path().join("cache");
    let program = GUESTS.component("hello");
    let plain_program = std::fs::read(&program).unwrap();

    // The recipient's key pair: the public half encrypts, the private half is the Steward's
    // secret `package-key`.
    let keys = tmp.path().join("keys");
    let (private, public) = package_key_pair(&keys, "package", 11);
    let (_, stranger) = package_key_pair(&keys, "stranger", 12);

    let source = tmp.path().join("source");
    std::fs::create_dir_all(source.join("ca")).unwrap();
    let ca = steward_ca(&tmp.path().join("ca"));
    std::fs::copy(&ca, source.join("ca/ca.pem")).unwrap();
    let config = write_config(
        &source,
        "Keep.toml",
        &format!(
            "{PLACEHOLDER}\n{STDIO}[package]\nkey = \"package-key\"\n[tls]\nca = [\"ca/ca.pem\"]\n"
        ),
    );
    let workload = digest(&program, &config);
    let release_to =
        |name: &str, workload: &str| package_key_secrets(tmp.path(), name, &private, workload);
    let secrets = release_to("secrets.toml", &workload);
    let steward = StewardProcess::with_secrets(&tmp.path().join("ca"), &secrets, &[]);
    point_to(&config, &steward);

    // Encrypting needs `[package] key` in the Keep.toml: without it nothing could decrypt.
    let bare = write_config(&source, "Bare.toml", STDIO);
    keep(&cache)
        .args(["package", "--encrypt"])
        .arg_path(&public)
        .args(["-c"])
        .arg_path(&bare)
        .args(["-o"])
        .arg_path(&tmp.path().join("never"))
        .arg_path(&program)
        .finish()
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("[package] key");

    let package = |name: &str, recipient: &Path| {
        let dir = tmp.path().join(name);
        let done = keep(&cache)
            .args(["package", "--encrypt"])
            .arg_path(recipient)
            .args(["-c"])
            .arg_path(&config)
            .args(["-o"])
            .arg_path(&dir)
            .arg_path(&program)
            .finish();
        done.expect_code(0);
        assert_eq!(line_value(&done.stdout_text(), "workload"), workload);
        let reference = format!("{}/keep/{name}:v1", registry.host);
        push_plain(&cache, &dir, &reference).expect_code(0);
        reference
    };
    let sealed = package("sealed", &public);
    let misaddressed = package("misaddressed", &stranger);

    // The registry holds only ciphertext: no file of its storage contains the program.
    let mut stored = Vec::new();
    let mut dirs = vec![registry.storage.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                stored.push(std::fs::read(path).unwrap());
            }
        }
    }
    assert!(!stored.is_empty());
    let head = &plain_program[..64];
    assert!(
        !stored
            .iter()
            .any(|bytes| bytes.windows(head.len()).any(|window| window == head)),
        "the registry stores the program in the clear"
    );

    // Pulled, it is reported as encrypted with the workload digest of the program inside.
    let pulled = keep(&tmp.path().join("pulled"))
        .args(["pull", "--registry-plain-http"])
        .arg(&sealed)
        .finish();
    pulled.expect_code(0).expect_stdout_contains("encrypted");
    assert_eq!(line_value(&pulled.stdout_text(), "workload"), workload);

    // Run: attested first, then decrypted with the key the Steward released; the process
    // backend says the host can read that key.
    let store = tmp.path().join("store");
    let done = run_plain(&store, &sealed, &[]);
    expect_hello(&done);
    assert!(done.stderr.contains("package-key"), "{}", done.stderr);
    steward.expect_issued("none", &workload);

    // Encrypted to another key: the released key does not open it, nothing runs.
    let done = run_plain(&store, &misaddressed, &[]);
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("the layer is not encrypted to this key");
    assert!(done.stdout.is_empty());
    drop(steward);

    // A Steward that does not release the key to this workload: nothing runs either.
    let elsewhere = release_to("elsewhere.toml", &format!("sha256:{}", "0".repeat(64)));
    let stingy = StewardProcess::with_secrets(&tmp.path().join("ca"), &elsewhere, &[]);
    point_to(&config, &stingy);
    let again = package("again", &public);
    let done = run_plain(&tmp.path().join("store2"), &again, &[]);
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("secret `package-key` is not released to workload");
    assert!(done.stdout.is_empty());
}

/// Whether any file under `dir` holds `needle`.
fn any_file_holds(dir: &Path, needle: &[u8]) -> bool {
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|window| window == needle)
            {
                return true;
            }
        }
    }
    false
}

#[test]
fn a_keep_attests_first_and_fetches_with_the_credentials_its_steward_releases() {
    use crate::common::steward::{StewardProcess, digest, steward_ca};
    let tmp = tempfile::tempdir().unwrap();
    let registry = RegistryProcess::start(tmp.path(), "", &basic_auth(tmp.path()));
    let cache = tmp.path().join("cache");
    let repository = format!("{}/keep/hello", registry.host);
    let unreleased = format!("{}/keep/unreleased", registry.host);

    // The Steward lets Keeps fetch from two repositories, and releases the registry login
    // to those fetching from one of them.
    let ca = steward_ca(&tmp.path().join("ca"));
    let policy = write_config(
        tmp.path(),
        "policy.toml",
        &format!(
            "[none]\n[[fetch]]\nrepository = \"{repository}\"\n\
             [[fetch]]\nrepository = \"{unreleased}\"\n"
        ),
    );
    std::fs::write(tmp.path().join("login"), "keeper:s3cret-pass\n").unwrap();
    let secrets = write_config(
        tmp.path(),
        "secrets.toml",
        &format!(
            "[[secret]]\nname = \"registry\"\nfile = \"{}\"\n[[release]]\n\
             secrets = [\"registry\"]\nrepositories = [\"{repository}\"]\n",
            tmp.path().join("login").display()
        ),
    );
    let steward = StewardProcess::with_secrets(
        &tmp.path().join("ca"),
        &secrets,
        &["--policy", policy.to_str().unwrap()],
    );

    // The package's Keep.toml names the same Steward: once fetched, the workload attests
    // with its own digest.
    let source = tmp.path().join("source");
    std::fs::create_dir_all(source.join("ca")).unwrap();
    std::fs::copy(&ca, source.join("ca/ca.pem")).unwrap();
    let config = write_config(
        &source,
        "Keep.toml",
        &format!(
            "steward = \"{}\"\n{STDIO}[tls]\nca = [\"ca/ca.pem\"]\n",
            steward.url()
        ),
    );
    let program = GUESTS.component("hello");
    let push = |reference: &str| {
        keep(&cache)
            .args(["push", "--registry-plain-http", "--registry-user", "keeper"])
            .args(["--registry-password-stdin", "-c"])
            .arg_path(&config)
            .arg_path(&program)
            .arg(reference)
            .stdin(b"s3cret-pass\n")
            .finish()
            .expect_code(0);
    };
    push(&format!("{repository}:v1"));
    push(&format!("{unreleased}:v1"));

    // This host has no registry credentials: it cannot pull.
    let docker = tmp.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    let store = tmp.path().join("store");
    let run = |reference: &str, extra: &[&str]| {
        keep(&store)
            .env("DOCKER_CONFIG", docker.to_str().unwrap())
            .args(["run", "--registry-plain-http"])
            .args(extra)
            .arg(&format!("oci://{reference}"))
            .finish()
    };
    run(&format!("{repository}:v1"), &["-q"])
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("Not authorized");

    // Attesting first, it can: certified to fetch, then certified for its workload.
    let fetching = [
        "--fetch-steward",
        &steward.url(),
        "--fetch-steward-ca",
        ca.to_str().unwrap(),
    ];
    let done = run(&format!("{repository}:v1"), &fetching);
    done.expect_code(0);
    assert_eq!(
        done.stdout_text(),
        "Hello from a Keep!\n",
        "{}",
        done.stderr
    );
    for said in [
        "fetching",
        "with the registry credentials it released",
        "the registry credentials and the package it fetches",
    ] {
        assert!(done.stderr.contains(said), "{said}: {}", done.stderr);
    }
    let issued = format!("issued: tee none fetch {repository}:v1");
    assert!(steward.log_with(&issued).contains(&issued));
    steward.expect_issued("none", &digest(&program, &config));
    // Nothing of the package reached this host's disk: no store, no compiled code.
    let head = &std::fs::read(&program).unwrap()[..64];
    assert!(
        !any_file_holds(&store, head),
        "the program was written to disk"
    );
    assert!(
        !any_file_holds(&store, b"Hello from a Keep"),
        "code compiled from it was written to disk"
    );

    // A repository whose credentials the Steward keeps to itself, and one it does not let
    // Keeps fetch from: refused, named, nothing run.
    let done = run(&format!("{unreleased}:v1"), &fetching);
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("secret `registry` is not released")
        .expect_stderr_contains(&format!("about to fetch from {unreleased}"));
    assert!(done.stdout.is_empty());
    let done = run(&format!("{}/keep/elsewhere:v1", registry.host), &fetching);
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("[[fetch]]")
        .expect_stderr_contains("is not in the policy");
    assert!(done.stdout.is_empty());

    // --fetch-steward is for oci:// programs.
    keep(&store)
        .args(["run"])
        .args(fetching)
        .arg_path(&program)
        .finish()
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("fetches an oci:// program");
}
