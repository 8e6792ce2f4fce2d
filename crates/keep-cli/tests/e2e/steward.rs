//! End to end: `keep steward serve`, Keeps that attest to it before they listen, their
//! certificates in mTLS between Keeps, renewal, and `keep verify` as a relying party.

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::net::*;
use crate::common::steward::*;
use crate::common::{GUESTS, KEEP_ERROR};

#[test]
fn a_process_keep_is_certified_only_by_an_insecure_steward_and_verifiable() {
    let tmp = tempfile::tempdir().unwrap();
    let program = GUESTS.module("pollecho");
    let ca = steward_ca(&tmp.path().join("ca"));
    let config = keep_config(
        tmp.path(),
        "Keep.toml",
        &ca,
        "",
        &listener("ingest", "tls", ""),
        "",
    );

    // A Steward without --insecure-accept-none: the Keep never starts its workload.
    let strict = StewardProcess::start::<&str>(&tmp.path().join("ca"), &[]);
    point_to(&config, &strict);
    let (code, stderr) = run_to_end(None, &config, &program);
    assert_eq!(code, KEEP_ERROR, "{stderr}");
    assert!(
        stderr.contains("the Steward refused the request (403): evidence of kind `none`")
            && stderr.contains("--insecure-accept-none"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("keep: listening"),
        "listened before attestation:\n{stderr}"
    );
    assert!(
        strict
            .log_with("refused")
            .contains("refused (insecure-none)")
    );
    drop(strict);

    // With the flag, the Keep is certified and listens with its certificate.
    let insecure = StewardProcess::start(&tmp.path().join("ca"), &["--insecure-accept-none"]);
    point_to(&config, &insecure);
    let keep = Served::start(&config, &program, &[], 1);
    let expected = digest(&program, &config);
    insecure.expect_issued("none", &expected);

    // The relying party: right expectations pass, wrong ones fail, another CA fails.
    let target = keep.addr("ingest").to_string();
    let ca = ca.to_str().unwrap();
    let (code, stdout, stderr) = keep_verify(&[
        "--ca",
        ca,
        "--workload-digest",
        &expected,
        "--tee",
        "none",
        &target,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("workload digest: {expected}")),
        "{stdout}"
    );
    assert!(stdout.contains("tee:             none"), "{stdout}");
    let (code, _, stderr) = keep_verify(&["--ca", ca, "--tee", "snp", &target]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("expectation failed: TEE is none, expected sev-snp"),
        "{stderr}"
    );
    let wrong = format!("sha256:{}", "0".repeat(64));
    let (code, _, stderr) = keep_verify(&["--ca", ca, "--workload-digest", &wrong, &target]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("expectation failed: workload digest is"),
        "{stderr}"
    );
    let other = steward_ca(&tmp.path().join("other"));
    let (code, _, stderr) = keep_verify(&["--ca", other.to_str().unwrap(), &target]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("does not chain to the CA"), "{stderr}");
    let (code, _, stderr) = keep_verify(&["--ca", ca, "127.0.0.1:1"]);
    assert_eq!(code, KEEP_ERROR, "{stderr}");
}

#[test]
fn a_workload_outside_the_policy_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let program = GUESTS.module("pollecho");
    let ca = steward_ca(&tmp.path().join("ca"));
    let files = listener("ingest", "tls", "");
    let allowed = keep_config(
        tmp.path(),
        "allowed.toml",
        &ca,
        "args = [\"0\"]\n",
        &files,
        "",
    );
    let changed = keep_config(
        tmp.path(),
        "changed.toml",
        &ca,
        "args = [\"1\"]\n",
        &files,
        "",
    );
    let allowed_digest = digest(&program, &allowed);
    let changed_digest = digest(&program, &changed);
    assert_ne!(
        allowed_digest, changed_digest,
        "a changed config changes the digest"
    );
    let policy = policy(tmp.path(), &[(&allowed_digest, &[])]);
    let steward = StewardProcess::start(
        &tmp.path().join("ca"),
        &[
            "--insecure-accept-none",
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    point_to(&allowed, &steward);
    point_to(&changed, &steward);
    assert_eq!(
        digest(&program, &allowed),
        allowed_digest,
        "the Steward's URL is not covered"
    );

    let (code, stderr) = run_to_end(None, &changed, &program);
    assert_eq!(code, KEEP_ERROR, "{stderr}");
    assert!(
        stderr.contains(&format!("workload {changed_digest} is not in the policy")),
        "{stderr}"
    );
    let keep = Served::start(&allowed, &program, &[], 1);
    assert!(
        keep.stderr().contains("keep: attested by the Steward"),
        "{}",
        keep.stderr()
    );
}

#[test]
fn keeps_talk_mtls_with_steward_certificates() {
    keeps_talk_mtls(None, &["--insecure-accept-none".to_owned()], "");
}

/// Two Keeps on the host under `platform_root`, certified by a Steward started with
/// `steward_flags` and a policy of `tee_rules` and their workloads: the client Keep reaches
/// the server Keep over mTLS, strangers do not.
pub fn keeps_talk_mtls(
    platform_root: Option<&std::path::Path>,
    steward_flags: &[String],
    tee_rules: &str,
) {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("ca");
    let ca = steward_ca(&ca_dir);
    let server_program = GUESTS.module("pollecho");
    let client_program = GUESTS.module("client");
    let client_auth = format!(
        "client_ca = [\"{}\"]\nclient_auth = \"required\"\n",
        ca.display()
    );
    let server_config = keep_config(
        tmp.path(),
        "server.toml",
        &ca,
        "",
        &listener("ingest", "tls", &client_auth),
        "names = [\"localhost\"]\n",
    );
    let server_digest = digest(&server_program, &server_config);
    let localhost: &[&str] = &["localhost"];
    let steward_args = |policy: &std::path::Path| -> Vec<String> {
        let mut args = steward_flags.to_vec();
        args.extend(["--policy".to_owned(), policy.display().to_string()]);
        args
    };
    let steward = StewardProcess::start(
        &ca_dir,
        &steward_args(&policy_with(
            tmp.path(),
            tee_rules,
            &[(&server_digest, localhost)],
        )),
    );
    point_to(&server_config, &steward);
    let server = Served::start_on(platform_root, &server_config, &server_program, &[], 1);
    let addr = server.addr("ingest");

    // The client's configuration names the server's port, so its digest is known only now:
    // the Steward restarts (same CA) with a policy listing both.
    let client_toml = keep_config(
        tmp.path(),
        "client.toml",
        &ca,
        "args = [\"peer\", \"hello keep\"]\n",
        &format!(
            "[[files]]\nkind = \"connect\"\nname = \"peer\"\nprot = \"tls\"\nhost = \"localhost\"\nport = {}\n",
            addr.port()
        ),
        "mozilla_roots = false\n",
    );
    let client_digest = digest(&client_program, &client_toml);
    drop(steward);
    let steward = StewardProcess::start(
        &ca_dir,
        &steward_args(&policy_with(
            tmp.path(),
            tee_rules,
            &[(&server_digest, localhost), (&client_digest, &[])],
        )),
    );
    point_to(&client_toml, &steward);
    let mut client = crate::common::keep_command();
    if let Some(root) = platform_root {
        client.env("KEEP_PLATFORM_ROOT", root);
    }
    let output = client
        .args(["run", "-c"])
        .arg(&client_toml)
        .arg(&client_program)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hello keep\n",
        "{stderr}"
    );

    // A client with a certificate from another CA, or with none, is refused.
    let other = Ca::new(tmp.path(), "other");
    let intruder = other.issue(tmp.path(), "intruder");
    for identity in [Some(&intruder), None] {
        let result = tls_echo(addr, client_config(&ca, identity), b"let me in\n");
        assert!(
            result.as_ref().map_or(true, Vec::is_empty),
            "the Keep served a client it should refuse: {result:?}"
        );
    }
}

#[test]
fn the_certificate_is_renewed_without_dropping_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let TlsKeep {
        ca_dir,
        ca,
        program,
        config,
        digest,
    } = TlsKeep::new(tmp.path(), "names = [\"localhost\"]\n");
    let policy = policy(tmp.path(), &[(&digest, &["localhost"])]);
    let steward = StewardProcess::start(
        &ca_dir,
        &[
            "--insecure-accept-none",
            "--validity",
            "4s",
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    point_to(&config, &steward);
    let keep = Served::start(&config, &program, &[], 1);
    let addr = keep.addr("ingest");
    let client = client_config(&ca, None);
    let mut first = tls_connect(addr, client.clone()).unwrap();
    let first_cert = first.conn.peer_certificates().unwrap()[0].clone();
    let mut buf = [0; 7];
    first.write_all(b"before\n").unwrap();
    first.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"before\n");

    let stderr = keep.stderr_when(Duration::from_secs(30), |text| {
        text.contains("renewed the Keep's certificate")
    });
    assert!(
        stderr.contains("renewed the Keep's certificate"),
        "no renewal:\n{stderr}"
    );
    // A fresh client: a resumed session would report the certificate of its first handshake.
    drop(client);
    let second = tls_connect(addr, client_config(&ca, None)).unwrap();
    let second_cert = second.conn.peer_certificates().unwrap()[0].clone();
    assert_ne!(
        first_cert, second_cert,
        "new handshakes see the renewed certificate"
    );
    // The connection opened before the renewal still works.
    first.write_all(b"after!\n").unwrap();
    first.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"after!\n");
    assert!(steward.log_with("issued").matches("issued:").count() >= 2);
}

#[test]
fn the_steward_answers_bad_requests_with_4xx_and_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    let steward = StewardProcess::start(&tmp.path().join("ca"), &["--insecure-accept-none"]);
    let garbage = tmp.path().join("garbage");
    std::fs::write(&garbage, b"not a certificate request").unwrap();
    let big = tmp.path().join("big");
    std::fs::write(&big, vec![b'x'; 10 * 1024 * 1024]).unwrap();
    let pkcs10 = "Content-Type: application/pkcs10";
    let garbage = format!("@{}", garbage.display());
    let big = format!("@{}", big.display());
    let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let cases: [(&[&str], u16, &str); 5] = [
        (
            &["-H", pkcs10, "--data-binary", &garbage],
            400,
            "malformed certificate request",
        ),
        (
            &["-H", "Content-Type: text/plain", "--data-binary", &garbage],
            415,
            "send the certificate request as application/pkcs10",
        ),
        (&["-H", pkcs10, "--data-binary", &big], 413, "exceeds"),
        (
            &["-H", pkcs10, "--data-binary", pem],
            400,
            "not a CERTIFICATE REQUEST",
        ),
        (&["-X", "GET"], 405, "use POST"),
    ];
    for (args, status, reason) in cases {
        let (got, body) = steward.curl(args, "/v1/attest");
        assert_eq!(got, status, "{args:?}: {body}");
        assert!(body.contains(reason), "{args:?}: {body}");
    }
    let (status, body) = steward.curl(&[], "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, body) = steward.curl(&[], "/metrics");
    assert_eq!(status, 200);
    for line in [
        "keep_steward_rejections_total{reason=\"malformed\"} 1",
        "keep_steward_requests_total{endpoint=\"/v1/attest\",status=\"400\"} 2",
        "keep_steward_requests_total{endpoint=\"/v1/attest\",status=\"413\"} 1",
        "keep_steward_requests_total{endpoint=\"/v1/attest\",status=\"415\"} 1",
        "keep_steward_attest_duration_seconds_count 4",
    ] {
        assert!(body.lines().any(|l| l == line), "missing {line}:\n{body}");
    }
    assert!(
        steward
            .log_with("refused (malformed)")
            .contains("refused (malformed)")
    );
}

#[test]
fn the_program_digested_is_the_program_run() {
    // The program file is a FIFO: whatever Keep reads from it, it can read only once. Right
    // after the bytes of `hello` went in, another program is put at the same path. A Keep
    // that read the file twice (once for the digest, once to run) would run the other
    // program under a certificate that names `hello`.
    let tmp = tempfile::tempdir().unwrap();
    let ca = steward_ca(&tmp.path().join("ca"));
    let config = keep_config(tmp.path(), "Keep.toml", &ca, "", "", "");
    let hello = GUESTS.module("hello");
    let hello_digest = digest(&hello, &config);
    let policy = policy(tmp.path(), &[(&hello_digest, &[])]);
    let steward = StewardProcess::start(
        &tmp.path().join("ca"),
        &[
            "--insecure-accept-none",
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    point_to(&config, &steward);

    let program = tmp.path().join("app.wasm");
    let made = Command::new("mkfifo").arg(&program).status().unwrap();
    assert!(made.success(), "mkfifo");
    let writer = {
        let (program, hello) = (program.clone(), hello.clone());
        let other = GUESTS.module("exit");
        let staged = tmp.path().join("staged.wasm");
        std::thread::spawn(move || {
            // Opening blocks until Keep opens the FIFO to read it.
            let mut fifo = std::fs::OpenOptions::new()
                .write(true)
                .open(&program)
                .unwrap();
            fifo.write_all(&std::fs::read(hello).unwrap()).unwrap();
            drop(fifo);
            std::fs::copy(other, &staged).unwrap();
            std::fs::rename(&staged, &program).unwrap();
        })
    };
    let output = crate::common::keep_command()
        .args(["run", "--no-cache", "-c"])
        .arg(&config)
        .arg(&program)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "Hello from a Keep!\n",
        "the bytes digested ran"
    );
    assert!(
        stderr.contains(&format!("certificate for workload {hello_digest}")),
        "{stderr}"
    );
}

#[test]
fn secrets_reach_the_guest_of_the_keep_its_rules_name_and_nobody_else() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = steward_ca(&tmp.path().join("ca"));
    let program = GUESTS.module("printenv");
    let wanted = "[[secrets]]\nname = \"db\"\nenv = \"DB_PASSWORD\"\n\
                  [[secrets]]\nname = \"extra\"\nenv = \"EXTRA\"\noptional = true\n";
    let config = keep_config(
        tmp.path(),
        "Keep.toml",
        &ca,
        "args = [\"DB_PASSWORD\", \"EXTRA\"]\n",
        wanted,
        "",
    );
    let other = keep_config(
        tmp.path(),
        "other.toml",
        &ca,
        "args = [\"DB_PASSWORD\"]\n",
        "[[secrets]]\nname = \"db\"\nenv = \"DB_PASSWORD\"\n",
        "",
    );
    let (allowed, refused) = (digest(&program, &config), digest(&program, &other));
    let value = "s3cr3t-value-41";
    std::fs::write(tmp.path().join("db"), value).unwrap();
    let secrets = write_config(
        tmp.path(),
        "secrets.toml",
        &format!(
            "[[secret]]\nname = \"db\"\nfile = \"{}\"\n[[secret]]\nname = \"extra\"\nfile = \"{}\"\n\
             [[release]]\nsecrets = [\"db\"]\nworkloads = [\"{allowed}\"]\n",
            tmp.path().join("db").display(),
            tmp.path().join("db").display(),
        ),
    );
    let steward = StewardProcess::with_secrets(&tmp.path().join("ca"), &secrets, &[]);
    point_to(&config, &steward);
    point_to(&other, &steward);
    let run = |config: &std::path::Path| {
        crate::common::keep_command()
            .args(["run", "--no-cache", "-c"])
            .arg(config)
            .arg(&program)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };

    // The workload the rule names gets `db` in its environment; `extra`, optional and not
    // released to it, is absent; the host is told it can read them.
    let output = run(&config);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("DB_PASSWORD={value}\nEXTRA unset\n")
    );
    assert!(
        stderr.contains(
            "warning: backend `process`: the host can read this Keep's memory, and with it the \
             secrets it receives (db, extra)"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains(value), "{stderr}");

    // Another workload does not start, and is told which secret and why.
    let output = run(&other);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(KEEP_ERROR), "{stderr}");
    assert!(
        stderr.contains("secret `db` from the Steward")
            && stderr.contains(&format!(
                "is not released to workload {refused} in TEE none"
            )),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "the workload ran");

    let log = steward.log_with("secrets released");
    assert!(
        log.contains(&format!(
            "secrets released: [db] to workload {allowed} in TEE none"
        )),
        "{log}"
    );
    assert!(!log.contains(value), "{log}");

    // The owner changes the value: the Steward notices by itself, and the next Keep gets
    // the new value.
    let reloads = |n: usize| move |log: &str| log.matches("secrets reloaded").count() >= n;
    std::fs::write(tmp.path().join("db"), "rotated-value-42").unwrap();
    let log = steward.log_when(reloads(1));
    assert!(
        log.contains(&format!(
            "secrets reloaded from {} after a change to its files: [db, extra]",
            secrets.display()
        )),
        "{log}"
    );
    let output = run(&config);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "DB_PASSWORD=rotated-value-42\nEXTRA unset\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A secrets file that no longer loads leaves the current secrets in place (SIGHUP
    // reloads at once; the change alone would too).
    let text = std::fs::read_to_string(&secrets).unwrap();
    std::fs::write(&secrets, "[[secret]]\nname = \"db\"\n").unwrap();
    steward.hang_up();
    let log = steward.log_with("the secrets were not reloaded");
    assert!(
        log.contains("give exactly one of `file` and `env`"),
        "{log}"
    );
    assert_eq!(run(&config).status.code(), Some(0));
    // Revoked: the rule now names another workload, and the Keep no longer starts.
    std::fs::write(&secrets, text.replace(&allowed, &refused)).unwrap();
    steward.hang_up();
    steward.log_when(reloads(2));
    let output = run(&config);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(KEEP_ERROR), "{stderr}");
    assert!(stderr.contains("is not released to workload"), "{stderr}");
}

#[test]
fn a_tls_intercepting_proxy_gets_no_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = steward_ca(&tmp.path().join("ca"));
    // The Keep is made to trust the proxy's CA too (as a middlebox's users are).
    let proxy_ca = Ca::new(tmp.path(), "proxy-ca");
    let trusted = tmp.path().join("trusted.pem");
    std::fs::write(
        &trusted,
        std::fs::read_to_string(&ca).unwrap() + &std::fs::read_to_string(&proxy_ca.pem).unwrap(),
    )
    .unwrap();
    let program = GUESTS.module("printenv");
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        &format!(
            "{PLACEHOLDER}\nargs = [\"DB\"]\n[[secrets]]\nname = \"db\"\nenv = \"DB\"\n[tls]\n\
             ca = [\"{}\"]\n",
            trusted.display()
        ),
    );
    let workload = digest(&program, &config);
    let secrets = db_secret(tmp.path(), "never-seen-by-the-proxy", &workload, "");
    let steward = StewardProcess::with_secrets(&tmp.path().join("ca"), &secrets, &[]);
    let proxy = InterceptingProxy::start(tmp.path(), &proxy_ca, steward.addr, &ca);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen(
            "https://steward.invalid",
            &format!("https://127.0.0.1:{}", proxy.addr.port()),
            1,
        ),
    )
    .unwrap();

    let output = crate::common::keep_command()
        .args(["run", "-c"])
        .arg(&config)
        .arg(&program)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The certificate request went through (it is signed and binds the Keep's key), but the
    // proxy cannot present the Keep's certificate: the Steward releases nothing.
    assert_eq!(output.status.code(), Some(KEEP_ERROR), "{stderr}");
    assert!(
        stderr.contains("secret `db`")
            && stderr.contains("(401): secrets are released only over mTLS"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
    let seen = String::from_utf8_lossy(&proxy.seen()).into_owned();
    assert!(
        seen.contains("POST /v1/attest") && seen.contains("POST /v1/secrets"),
        "{seen}"
    );
    assert!(!seen.contains("never-seen-by-the-proxy"));
    assert!(
        steward
            .log_with("secrets refused")
            .contains("secrets refused (no-client-certificate)")
    );
}
