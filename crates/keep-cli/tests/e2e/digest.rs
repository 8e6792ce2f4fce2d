//! `keep digest`: what the workload digest covers and what it ignores.

use std::path::Path;

use crate::common::{GUESTS, KEEP_ERROR, Keep, repo_root};

fn digest(program: &Path, config: Option<&Path>) -> String {
    let mut keep = Keep::new().arg("digest").arg_path(program);
    if let Some(config) = config {
        keep = keep.arg("-c").arg_path(config);
    }
    let done = keep.finish();
    done.expect_code(0);
    let text = done.stdout_text().trim().to_owned();
    assert!(text.starts_with("sha256:") && text.len() == 71, "{text}");
    text
}

#[test]
fn the_digest_names_program_and_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let wat = repo_root().join("examples/hello.wat");
    // Text and its binary are the same program.
    let wasm = tmp.path().join("hello.wasm");
    std::fs::write(&wasm, wat::parse_file(&wat).unwrap()).unwrap();
    let plain = digest(&wat, None);
    assert_eq!(digest(&wasm, None), plain);
    assert_ne!(
        digest(&GUESTS.module("hello"), None),
        plain,
        "another program"
    );

    let write = |name: &str, text: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    std::fs::create_dir_all(tmp.path().join("data-a")).unwrap();
    std::fs::create_dir_all(tmp.path().join("data-b")).unwrap();
    write("ca.pem", "first CA\n");
    let base = write(
        "a.toml",
        "args = [\"--mode\", \"prod\"]\n[[dirs]]\nhost = \"data-a\"\nguest = \"/data\"\n[tls]\nca = [\"ca.pem\"]\n",
    );
    let with_config = digest(&wat, Some(&base));
    assert_ne!(with_config, plain, "a configuration changes the digest");
    // Formatting, comments, key order and host-local keys (`steward`, `[[dirs]] host`) do not.
    let same = write(
        "b.toml",
        "# production\nsteward = \"https://steward.example\"\nargs = [\"--mode\",\"prod\"]\n\n\
         [tls]\nca = [ \"ca.pem\" ]\n\n[[dirs]]\nguest = \"/data\"\nhost = \"data-b\"\n",
    );
    assert_eq!(digest(&wat, Some(&same)), with_config);
    // What the guest sees or whom it trusts does.
    let other_args = write(
        "c.toml",
        "args = [\"--mode\", \"dev\"]\n[[dirs]]\nhost = \"data-a\"\nguest = \"/data\"\n[tls]\nca = [\"ca.pem\"]\n",
    );
    assert_ne!(digest(&wat, Some(&other_args)), with_config);
    write("ca.pem", "another CA\n");
    assert_ne!(digest(&wat, Some(&base)), with_config, "CA content counts");
}

#[test]
fn an_invalid_configuration_has_no_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("Keep.toml");
    std::fs::write(&config, "[limits]\nmemory = \"lots\"\n").unwrap();
    Keep::new()
        .arg("digest")
        .arg_path(&repo_root().join("examples/hello.wat"))
        .arg("-c")
        .arg_path(&config)
        .finish()
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("Keep.toml:2");
}
