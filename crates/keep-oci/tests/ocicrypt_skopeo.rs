//! Keep's encrypted layers against a real ocicrypt implementation: Debian's `skopeo`
//! (containers/image with ocicrypt). skopeo encrypts only container layers (it refuses
//! `application/wasm`), so the exchange uses a `tar+gzip` layer; the format of the
//! encryption is the same for Keep's program layers.

use std::path::Path;
use std::process::Command;

use keep_oci::encryption::{self, EncryptedLayer};
use keep_oci::{Blob, Built, Digest};
use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use serde_json::{Value, json};

const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A P-256 key pair written as `DIR/NAME.pem` (PKCS#8) and `DIR/NAME.pub`.
fn key_pair(dir: &Path, name: &str, byte: u8) -> p256::SecretKey {
    let key = p256::SecretKey::from_bytes(&[byte; 32].into()).unwrap();
    std::fs::write(
        dir.join(format!("{name}.pem")),
        key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{name}.pub")),
        key.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
    )
    .unwrap();
    key
}

/// A gzipped tar with one file, made by tar(1).
fn layer(dir: &Path) -> Vec<u8> {
    std::fs::write(dir.join("hello.txt"), "hello from a layer\n").unwrap();
    let out = dir.join("layer.tar.gz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(dir)
        .arg("hello.txt")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// An OCI layout at `dir` of one image whose only layer is `layer` (`media_type`,
/// `annotations`).
fn write_image(dir: &Path, layer: &[u8], media_type: &str, annotations: Value) {
    let config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []}, "config": {}})
    .to_string()
    .into_bytes();
    let blob = |media_type: &str, bytes: &[u8]| Blob {
        media_type: media_type.to_owned(),
        digest: Digest::of(bytes),
        bytes: bytes.to_vec(),
    };
    let config = blob("application/vnd.oci.image.config.v1+json", &config);
    let layer = blob(media_type, layer);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config.media_type, "digest": config.digest.to_string(),
                   "size": config.bytes.len()},
        "layers": [{"mediaType": media_type, "digest": layer.digest.to_string(),
                    "size": layer.bytes.len(), "annotations": annotations}],
    })
    .to_string()
    .into_bytes();
    let built = Built {
        digest: Digest::of(&manifest),
        manifest,
        blobs: vec![config, layer],
    };
    keep_oci::layout::write(dir, &built, "latest").unwrap();
}

/// The layer of the image in the layout at `dir`: its descriptor and bytes.
fn read_layer(dir: &Path) -> (Value, Vec<u8>) {
    let blob = |digest: &str| {
        std::fs::read(
            dir.join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest: Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let layer = manifest["layers"][0].clone();
    let bytes = blob(layer["digest"].as_str().unwrap());
    (layer, bytes)
}

fn skopeo(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet"])
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run skopeo (Debian package skopeo)")
}

#[test]
fn skopeo_decrypts_what_keep_encrypts_and_keep_what_skopeo_encrypts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = key_pair(dir, "first", 5);
    let second = key_pair(dir, "second", 6);
    let other = key_pair(dir, "other", 7);
    let plain = layer(dir);
    write_image(&dir.join("plain"), &plain, TAR_GZIP, json!({}));

    // skopeo encrypts (to two recipients: JWE general serialization); Keep decrypts.
    let out = skopeo(
        &[
            "--encryption-key",
            "jwe:first.pub",
            "--encryption-key",
            "jwe:second.pub",
            "oci:plain:latest",
            "oci:by-skopeo:latest",
        ],
        dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (descriptor, bytes) = read_layer(&dir.join("by-skopeo"));
    assert_eq!(descriptor["mediaType"], format!("{TAR_GZIP}+encrypted"));
    let layer = EncryptedLayer {
        bytes,
        annotations: serde_json::from_value(descriptor["annotations"].clone()).unwrap(),
    };
    assert_eq!(encryption::decrypt(&layer, &first).unwrap(), plain);
    assert_eq!(encryption::decrypt(&layer, &second).unwrap(), plain);
    assert!(encryption::decrypt(&layer, &other).is_err());

    // Keep encrypts, to one recipient and to two; skopeo decrypts with each key, and not
    // with another.
    for (name, recipients) in [
        ("one", vec![first.public_key()]),
        ("two", vec![other.public_key(), second.public_key()]),
    ] {
        let layer = encryption::encrypt(&plain, &recipients).unwrap();
        write_image(
            &dir.join(format!("by-keep-{name}")),
            &layer.bytes,
            &format!("{TAR_GZIP}+encrypted"),
            serde_json::to_value(&layer.annotations).unwrap(),
        );
        let key = if name == "one" {
            "first.pem"
        } else {
            "second.pem"
        };
        let source = format!("oci:by-keep-{name}:latest");
        let target = format!("oci:decrypted-{name}:latest");
        let out = skopeo(&["--decryption-key", key, &source, &target], dir);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (descriptor, bytes) = read_layer(&dir.join(format!("decrypted-{name}")));
        assert_eq!(descriptor["mediaType"], TAR_GZIP);
        assert_eq!(bytes, plain);
    }
    let out = skopeo(
        &[
            "--decryption-key",
            "second.pem",
            "oci:by-keep-one:latest",
            "oci:not-decrypted:latest",
        ],
        dir,
    );
    assert!(
        !out.status.success(),
        "decrypted with a key it was not encrypted to"
    );
}
