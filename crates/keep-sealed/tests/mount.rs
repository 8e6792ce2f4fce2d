//! A sealed store mounted through FUSE and used with ordinary file operations, as the
//! guest's WASI calls reach it. Needs /dev/fuse and the right to mount (root).

mod common;

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;
use std::sync::Arc;

use common::Versions;
use keep_sealed::mount::{ErrorReport, mount};
use keep_sealed::{ROOT, SealedError, Store, StoreKey};

fn open(dir: &Path, witness: &Arc<Versions>) -> Store {
    Store::open(
        dir,
        "/data",
        &StoreKey::from_bytes(&[4; 32]).unwrap(),
        witness.clone(),
    )
    .unwrap()
}

fn no_report() -> ErrorReport {
    Arc::new(|error: &SealedError| panic!("unexpected: {error}"))
}

#[test]
fn a_mounted_store_behaves_as_a_directory_and_keeps_what_was_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let witness = Arc::new(Versions::default());

    let mounted = mount(open(&dir, &witness), &scratch, no_report(), Box::new(|| ())).unwrap();
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "detached at once"
    );
    let root = mounted.root_path().unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(root.join("sub/big.bin"), &big).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(root.join("notes.txt"))
        .unwrap();
    file.write_all(b"hello sealed world").unwrap();
    file.seek(SeekFrom::Start(6)).unwrap();
    file.write_all(b"SEALED").unwrap();
    file.set_len(12).unwrap();
    file.sync_all().unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    assert_eq!(text, "hello SEALED");
    drop(file);
    std::fs::rename(root.join("notes.txt"), root.join("sub/renamed.txt")).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(root.join("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["big.bin", "renamed.txt"]);
    assert_eq!(
        std::fs::remove_dir(root.join("sub"))
            .unwrap_err()
            .raw_os_error(),
        Some(39), // ENOTEMPTY
    );
    assert_eq!(std::fs::read(root.join("sub/big.bin")).unwrap(), big);
    assert_eq!(
        std::fs::metadata(root.join("sub/big.bin")).unwrap().len(),
        300_000
    );
    mounted.close().unwrap();

    let mut store = open(&dir, &witness);
    let sub = store.lookup(ROOT, b"sub").unwrap();
    let renamed = store.lookup(sub.ino, b"renamed.txt").unwrap();
    assert_eq!(store.read(renamed.ino, 0, 100).unwrap(), b"hello SEALED");
    let big_file = store.lookup(sub.ino, b"big.bin").unwrap();
    assert_eq!(store.read(big_file.ino, 0, 300_000).unwrap(), big);
}
