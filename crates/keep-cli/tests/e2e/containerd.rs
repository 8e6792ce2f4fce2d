//! containerd runs Keeps through `containerd-shim-keep-v1` (crate keep-shim): a real
//! containerd (>= 1.7.7, `scripts/containerd-for-tests`) with its own root, state and socket,
//! driven with its own `ctr`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::common::child::{ChildLog, wait_with_deadline};
use crate::common::net::*;
use crate::common::steward::{
    PLACEHOLDER, StewardProcess, digest, package_key_pair, package_key_secrets, policy, steward_ca,
};
use crate::common::{GUESTS, KEEP_ERROR, Keep, repo_root};

const RUNTIME: &str = "io.containerd.keep.v1";
/// No container of these tests runs anywhere near this long; one that does is hung.
const HUNG_AFTER: Duration = Duration::from_secs(120);

/// The directory of the `containerd` and `ctr` the tests use.
fn containerd_bin() -> PathBuf {
    let output = Command::new(repo_root().join("scripts/containerd-for-tests"))
        .output()
        .expect("run scripts/containerd-for-tests");
    assert!(
        output.status.success(),
        "scripts/containerd-for-tests: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// The shim, built beside `keep` by `cargo test --workspace` (or `cargo build -p keep-shim`).
fn shim_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_keep"))
        .parent()
        .unwrap()
        .to_owned();
    assert!(
        dir.join("containerd-shim-keep-v1").exists(),
        "containerd-shim-keep-v1 is not built in {}: run `cargo build -p keep-shim` (the \
         workspace's tests build it)",
        dir.display()
    );
    dir
}

/// A containerd of its own in `dir`, which finds Keep's shim on its `PATH`; killed when
/// dropped. `shim_config` is the shim's configuration (`KEEP_SHIM_CONFIG`), if any.
struct Containerd {
    child: Child,
    socket: PathBuf,
    /// The test's own namespace: the shim keeps container state per namespace in a directory
    /// all containerds share (`/run/containerd/keep/NAMESPACE`).
    namespace: String,
    bin: PathBuf,
    _log: ChildLog,
}

impl Containerd {
    fn start(dir: &Path, shim_config: Option<&Path>) -> Self {
        let bin = containerd_bin();
        let socket = dir.join("containerd.sock");
        let config = write_config(
            dir,
            "containerd.toml",
            &format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n[grpc]\naddress = \
                 \"{socket}\"\n[ttrpc]\naddress = \"{socket}.ttrpc\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\"]\ndisable = true\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                socket = socket.display()
            ),
        );
        let path = format!(
            "{}:{}:{}",
            shim_dir().display(),
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new(bin.join("containerd"));
        command
            .arg("--config")
            .arg(&config)
            .env("PATH", path)
            .env_remove("KEEP_SHIM_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(shim_config) = shim_config {
            command.env("KEEP_SHIM_CONFIG", shim_config);
        }
        let mut child = command.spawn().expect("start containerd");
        let (ready, ready_rx) = mpsc::channel();
        let log = ChildLog::start(child.stderr.take().unwrap(), move |line| {
            if line.contains("containerd successfully booted") {
                let _ = ready.send(());
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("containerd did not start:\n{}", log.text()));
        let namespace = format!(
            "keep-tests-{}",
            dir.file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches('.')
        );
        Self {
            child,
            socket,
            namespace,
            bin,
            _log: log,
        }
    }

    /// `ctr` for this containerd, in the tests' namespace.
    fn ctr(&self) -> Command {
        let mut command = Command::new(self.bin.join("ctr"));
        command
            .arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(&self.namespace);
        command
    }

    /// `ctr image import` of the OCI image layout `layout` (as the tar archive `ctr` reads).
    fn import(&self, layout: &Path) {
        let archive = layout.with_extension("tar");
        tar_dir(layout, &archive);
        let output = self
            .ctr()
            .args(["image", "import"])
            .arg(&archive)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "ctr image import: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `ctr run --rm --runtime io.containerd.keep.v1 [FLAGS] IMAGE ID ARGS`, to its end.
    fn run(&self, flags: &[&str], image: &str, id: &str, args: &[&str]) -> Ran {
        let child = self.run_in_background(flags, image, id, args);
        Ran::wait(child)
    }

    fn run_in_background(&self, flags: &[&str], image: &str, id: &str, args: &[&str]) -> Child {
        self.ctr()
            .args(["run", "--rm", "--runtime", RUNTIME])
            .args(flags)
            .arg(image)
            .arg(id)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ctr run")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Containers outlive a killed `ctr run` (and their shims, containerd): end them first.
        if let Ok(tasks) = self.ctr().args(["task", "ls", "--quiet"]).output() {
            for id in String::from_utf8_lossy(&tasks.stdout).split_whitespace() {
                let _ = self.ctr().args(["task", "delete", "--force", id]).output();
                let _ = self.ctr().args(["container", "delete", id]).output();
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The shim's (now empty) state directory for the namespace.
        let _ = std::fs::remove_dir(Path::new("/run/containerd/keep").join(&self.namespace));
    }
}

/// A `ctr run` in the background and its stderr; killed when dropped, before the log (which
/// waits for the stream to end) is joined.
struct Background {
    child: Child,
    stderr: ChildLog,
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a `ctr run` ended.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn wait(mut child: Child) -> Self {
        let stdout = ChildLog::start(child.stdout.take().unwrap(), |_| {});
        let stderr = ChildLog::start(child.stderr.take().unwrap(), |_| {});
        let status = wait_with_deadline(&mut child, HUNG_AFTER)
            .unwrap_or_else(|status| panic!("ctr run hung (killed: {status}):\n{}", stderr.text()));
        Self {
            status,
            stdout: stdout.finish(),
            stderr: stderr.finish(),
        }
    }

    #[track_caller]
    fn expect(&self, code: i32, stdout: &str) {
        assert_eq!(
            (self.status.code(), self.stdout.as_str()),
            (Some(code), stdout),
            "stderr: {}",
            self.stderr
        );
    }
}

/// `keep package --format image` of `program` (with `config`) into `dir/NAME`, tagged `tag`.
fn package_image(dir: &Path, name: &str, program: &Path, config: Option<&Path>, tag: &str) {
    let cache = dir.join("cache");
    let mut keep = Keep::with_cache(&cache).args(["package", "--format", "image", "--tag", tag]);
    if let Some(config) = config {
        keep = keep.arg("-c").arg_path(config);
    }
    keep.arg("-o")
        .arg_path(&dir.join(name))
        .arg_path(program)
        .finish()
        .expect_code(0);
}

#[test]
fn a_keep_package_imported_into_containerd_runs_with_its_keep_toml_args_and_exit_status() {
    let tmp = tempfile::tempdir().unwrap();
    let containerd = Containerd::start(tmp.path(), None);
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        "[env]\nGREETING = \"from the package\"\n",
    );
    package_image(
        tmp.path(),
        "printenv",
        &GUESTS.component("printenv"),
        Some(&config),
        "keep.test/printenv:v1",
    );
    package_image(
        tmp.path(),
        "exit",
        &GUESTS.module("exit"),
        None,
        "keep.test/exit:v1",
    );
    package_image(
        tmp.path(),
        "args",
        &GUESTS.module("args"),
        None,
        "keep.test/args:v1",
    );
    for name in ["printenv", "exit", "args"] {
        containerd.import(&tmp.path().join(name));
    }

    containerd
        .run(
            &[],
            "keep.test/printenv:v1",
            "printenv",
            &["printenv", "GREETING"],
        )
        .expect(0, "GREETING=from the package\n");
    // The container's arguments are the guest's, and its status is the container's.
    containerd
        .run(&[], "keep.test/args:v1", "args", &["first", "second arg"])
        .expect(0, "argc=2\nargv[0]=first\nargv[1]=second arg\n");
    containerd
        .run(&[], "keep.test/exit:v1", "exit", &["exit", "7"])
        .expect(7, "");

    // A container's task runs again after it ended (a restart: an attached `ctr task start`
    // deletes the ended task), and the container is then deleted.
    let ctr = |args: &[&str]| {
        let output = containerd.ctr().args(args).output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let created = ctr(&[
        "container",
        "create",
        "--runtime",
        RUNTIME,
        "keep.test/args:v1",
        "again",
        "again",
        "x",
    ]);
    assert_eq!(created.0, Some(0), "{created:?}");
    let expected = (Some(0), "argc=2\nargv[0]=again\nargv[1]=x\n".to_owned());
    assert_eq!(ctr(&["task", "start", "again"]), expected);
    assert_eq!(ctr(&["task", "start", "again"]), expected);
    assert_eq!(ctr(&["container", "delete", "again"]).0, Some(0));
    assert_eq!(
        ctr(&["container", "ls", "--quiet"]),
        (Some(0), String::new())
    );
}

#[test]
fn a_wasm_file_in_an_image_root_filesystem_runs_as_other_runwasi_shims_run_it() {
    let tmp = tempfile::tempdir().unwrap();
    let containerd = Containerd::start(tmp.path(), None);
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("app")).unwrap();
    std::fs::copy(GUESTS.module("printenv"), rootfs.join("app/printenv.wasm")).unwrap();
    write_config(
        &rootfs.join("app"),
        "Keep.toml",
        "[env]\nGREETING = \"from the image's Keep.toml\"\n",
    );
    let layout = tmp.path().join("image");
    write_filesystem_image(
        &rootfs,
        &layout,
        "keep.test/rootfs:v1",
        "/app/printenv.wasm",
    );
    containerd.import(&layout);

    // The image's command, then other arguments.
    let whole = containerd.run(&[], "keep.test/rootfs:v1", "rootfs", &[]);
    assert!(
        whole
            .stdout
            .lines()
            .any(|line| line == "GREETING=from the image's Keep.toml"),
        "{}\n{}",
        whole.stdout,
        whole.stderr
    );
    containerd
        .run(
            &[],
            "keep.test/rootfs:v1",
            "rootfs-greeting",
            &["/app/printenv.wasm", "GREETING"],
        )
        .expect(0, "GREETING=from the image's Keep.toml\n");
    let missing = containerd.run(&[], "keep.test/rootfs:v1", "missing", &["/app/none.wasm"]);
    assert_ne!(missing.status.code(), Some(0), "{}", missing.stderr);
}

#[test]
fn the_shims_steward_certifies_a_tls_service_reachable_from_the_host_and_refuses_others() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("ca");
    let ca = steward_ca(&ca_dir);
    let program = GUESTS.module("pollecho");
    let service = write_config(
        tmp.path(),
        "Keep.toml",
        &format!(
            "{}[tls]\nnames = [\"localhost\"]\n",
            listener("ingest", "tls", "")
        ),
    );
    // What the shim attests: the package's Keep.toml with the shim's Steward and CA.
    let attested = write_config(
        tmp.path(),
        "attested.toml",
        &format!(
            "{PLACEHOLDER}\n{}[tls]\nca = [\"{}\"]\nnames = [\"localhost\"]\n",
            listener("ingest", "tls", ""),
            ca.display()
        ),
    );
    let allowed = digest(&program, &attested);
    let steward = StewardProcess::start(
        &ca_dir,
        &[
            "--insecure-accept-none",
            "--policy",
            policy(tmp.path(), &[(&allowed, &["localhost"])])
                .to_str()
                .unwrap(),
        ],
    );
    let shim_config = write_config(
        tmp.path(),
        "shim.toml",
        &format!(
            "steward = \"{}\"\n[tls]\nca = [\"{}\"]\n",
            steward.url(),
            ca.display()
        ),
    );
    let containerd = Containerd::start(tmp.path(), Some(&shim_config));
    package_image(
        tmp.path(),
        "service",
        &program,
        Some(&service),
        "keep.test/service:v1",
    );
    package_image(
        tmp.path(),
        "hello",
        &GUESTS.module("hello"),
        None,
        "keep.test/hello:v1",
    );
    containerd.import(&tmp.path().join("service"));
    containerd.import(&tmp.path().join("hello"));

    // A workload outside the Steward's policy never starts. (The containers share the
    // host's network, where the Steward listens on loopback.)
    let refused = containerd.run(&["--net-host"], "keep.test/hello:v1", "refused", &[]);
    assert_eq!(
        refused.status.code(),
        Some(KEEP_ERROR),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert_eq!(refused.stdout, "", "{}", refused.stderr);
    assert!(
        refused.stderr.contains("is not in the policy"),
        "{}",
        refused.stderr
    );

    // The service, on the host's network, presents the Steward's certificate.
    let mut child =
        containerd.run_in_background(&["--net-host"], "keep.test/service:v1", "svc", &[]);
    let (bound, bound_rx) = mpsc::channel();
    let stderr = ChildLog::start(child.stderr.take().unwrap(), move |line| {
        if let Some(addr) = line.strip_prefix("keep: listening ingest tls ") {
            let _ = bound.send(addr.parse::<std::net::SocketAddr>().unwrap());
        }
    });
    let mut service = Background { child, stderr };
    let stderr = &service.stderr;
    let addr = bound_rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the service did not listen:\n{}", stderr.text()));
    assert!(
        stderr.text().contains(&format!("workload {allowed}")),
        "{}",
        stderr.text()
    );
    let echoed = tls_echo(addr, client_config(&ca, None), b"through containerd\n").unwrap();
    assert_eq!(echoed, b"through containerd\n");

    // `ctr task kill` stops it (SIGTERM: 128 + 15).
    let kill = containerd
        .ctr()
        .args(["task", "kill", "svc"])
        .output()
        .unwrap();
    assert!(
        kill.status.success(),
        "{}",
        String::from_utf8_lossy(&kill.stderr)
    );
    let status =
        wait_with_deadline(&mut service.child, HUNG_AFTER).expect("ctr run ends after the kill");
    assert_eq!(status.code(), Some(143), "{}", service.stderr.text());
}

/// Writes the tar archive `archive` of the directory `dir`'s content.
fn tar_dir(dir: &Path, archive: &Path) {
    let tar = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success(), "tar of {}", dir.display());
}

/// Writes an OCI image layout at `layout` whose one file-system layer is `rootfs`, tagged
/// `tag`, with `entrypoint` as its command: an image of the kind runwasi's shims run.
fn write_filesystem_image(rootfs: &Path, layout: &Path, tag: &str, entrypoint: &str) {
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let layer_file = layout.join("layer.tar");
    tar_dir(rootfs, &layer_file);
    let layer = std::fs::read(&layer_file).unwrap();
    std::fs::remove_file(&layer_file).unwrap();
    let store = |bytes: &[u8]| {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        std::fs::write(blobs.join(&digest[7..]), bytes).unwrap();
        (digest, bytes.len())
    };
    let (layer_digest, layer_size) = store(&layer);
    let config = serde_json::json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": { "Entrypoint": [entrypoint] },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    });
    let (config_digest, config_size) = store(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer_size,
        }],
    });
    let (manifest_digest, manifest_size) = store(manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
}

#[test]
fn an_encrypted_package_runs_under_containerd_once_its_steward_releases_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("ca");
    let ca = steward_ca(&ca_dir);
    let program = GUESTS.module("hello");
    let keys = tmp.path().join("keys");
    let (private, recipient) = package_key_pair(&keys, "package", 21);
    let (_, stranger) = package_key_pair(&keys, "stranger", 22);

    // The package's Keep.toml names its Steward, its CA (carried in the package) and the
    // secret that holds the key.
    let source = tmp.path().join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::copy(&ca, source.join("ca.pem")).unwrap();
    let config = write_config(
        &source,
        "Keep.toml",
        &format!(
            "{PLACEHOLDER}\n{STDIO}[package]\nkey = \"package-key\"\n[tls]\nca = [\"ca.pem\"]\n"
        ),
    );
    let workload = digest(&program, &config);
    let secrets = package_key_secrets(tmp.path(), "secrets.toml", &private, &workload);
    let steward = StewardProcess::with_secrets(&ca_dir, &secrets, &[]);
    crate::common::steward::point_to(&config, &steward);
    let containerd = Containerd::start(tmp.path(), None);
    for (name, key) in [("sealed", &recipient), ("misaddressed", &stranger)] {
        Keep::with_cache(&tmp.path().join("cache"))
            .args(["package", "--format", "image", "--tag"])
            .arg(&format!("keep.test/{name}:v1"))
            .arg("--encrypt")
            .arg_path(key)
            .arg("-c")
            .arg_path(&config)
            .arg("-o")
            .arg_path(&tmp.path().join(name))
            .arg_path(&program)
            .finish()
            .expect_code(0);
        containerd.import(&tmp.path().join(name));
    }

    // Attested, given the key, decrypted, run; started again (containerd's stored entry
    // for the encrypted layer holds no compiled code, so nothing of the program in the
    // clear reaches the host's disk).
    for id in ["sealed-1", "sealed-2"] {
        let ran = containerd.run(&["--net-host"], "keep.test/sealed:v1", id, &[]);
        ran.expect(0, "Hello from a Keep!\n");
        assert!(
            ran.stderr.contains("attested by the Steward"),
            "{}",
            ran.stderr
        );
    }
    let plain = std::fs::read(&program).unwrap();
    let head = &plain[..plain.len().min(64)];
    let blobs = tmp
        .path()
        .join("root/io.containerd.content.v1.content/blobs/sha256");
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(head.len()).any(|window| window == head),
            "containerd's content store holds the program in the clear"
        );
    }

    // Encrypted to another key: the released key does not open it, nothing runs.
    let refused = containerd.run(
        &["--net-host"],
        "keep.test/misaddressed:v1",
        "stranger",
        &[],
    );
    assert_eq!(
        refused.status.code(),
        Some(KEEP_ERROR),
        "{}",
        refused.stderr
    );
    assert_eq!(refused.stdout, "", "{}", refused.stderr);
    assert!(
        refused.stderr.contains("is not encrypted to this key"),
        "{}",
        refused.stderr
    );
}
