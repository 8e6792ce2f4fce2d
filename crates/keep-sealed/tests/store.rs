//! A sealed store on a real directory: what is committed reads back after reopening, and
//! every change the host makes to the log is refused or detected.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::Versions;
use keep_sealed::format::{CHUNK, HEADER_LEN};
use keep_sealed::{FileKind, ROOT, SealedError, Store, StoreKey, Witness};

fn key(byte: u8) -> StoreKey {
    StoreKey::from_bytes(&[byte; 32]).unwrap()
}

fn open(dir: &Path, witness: &Arc<Versions>) -> Result<Store, SealedError> {
    Store::open(dir, "/data", &key(1), witness.clone())
}

fn log(dir: &Path) -> std::path::PathBuf {
    dir.join("keep-sealed.log")
}

const MIB: usize = 1 << 20;

/// Asserts that `after` is the log `before` once opened: the same, but for the zeros written
/// ahead of its end, which opening cuts off.
fn assert_same_but_zeros_ahead(after: &[u8], before: &[u8], what: &str) {
    assert!(after.len() <= before.len(), "{what}: longer");
    assert!(after == &before[..after.len()], "{what}: changed");
    assert!(
        before[after.len()..].iter().all(|b| *b == 0),
        "{what}: more than zeros cut"
    );
}

/// Writes `live` MiB of 0xee to `ino`, then rewrites its first MiB `rounds` times (with the
/// round's number), committing each: about `rounds` MiB of garbage beside `live` MiB of
/// live data.
fn rewrite_first_mib(store: &mut Store, ino: keep_sealed::Ino, live: usize, rounds: u8) {
    store.write(ino, 0, &vec![0xee; live * MIB]).unwrap();
    store.commit().unwrap();
    for round in 0..rounds {
        store.write(ino, 0, &vec![round; MIB]).unwrap();
        store.commit().unwrap();
    }
}

/// A store with `/docs/a.txt` (two and a half chunks of a pattern) and `/empty/`.
fn populated(dir: &Path, witness: &Arc<Versions>) -> Vec<u8> {
    let mut store = open(dir, witness).unwrap();
    let docs = store.create(ROOT, b"docs", FileKind::Dir).unwrap();
    store.create(ROOT, b"empty", FileKind::Dir).unwrap();
    let file = store.create(docs.ino, b"a.txt", FileKind::File).unwrap();
    let content: Vec<u8> = (0..CHUNK * 5 / 2).map(|i| (i % 251) as u8).collect();
    store.write(file.ino, 0, &content).unwrap();
    store.commit().unwrap();
    content
}

#[test]
fn what_is_committed_reads_back_and_the_host_sees_neither_names_nor_content() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let witness = Arc::new(Versions::default());
    let content = populated(&dir, &witness);

    let mut store = open(&dir, &witness).unwrap();
    assert_eq!(store.version(), 1);
    let docs = store.lookup(ROOT, b"docs").unwrap();
    let file = store.lookup(docs.ino, b"a.txt").unwrap();
    assert_eq!(file.size, content.len() as u64);
    assert_eq!(store.read(file.ino, 0, content.len()).unwrap(), content);
    assert_eq!(
        store.read(file.ino, 4000, 200).unwrap(),
        content[4000..4200]
    );
    let names: Vec<Vec<u8>> = store
        .readdir(ROOT)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, [b"docs".to_vec(), b"empty".to_vec()]);

    // Overwrite in the middle, truncate into a chunk and grow again: zeros past the cut.
    store.write(file.ino, 5000, b"XYZ").unwrap();
    store.set_size(file.ino, 5001).unwrap();
    store.set_size(file.ino, 6000).unwrap();
    store.rename(docs.ino, b"a.txt", ROOT, b"b.txt").unwrap();
    store.remove(ROOT, b"empty", FileKind::Dir).unwrap();
    store.commit().unwrap();
    drop(store);

    let mut store = open(&dir, &witness).unwrap();
    assert_eq!(store.version(), 2);
    let file = store.lookup(ROOT, b"b.txt").unwrap();
    let read = store.read(file.ino, 0, 10_000).unwrap();
    assert_eq!(read.len(), 6000);
    assert_eq!(read[..5000], content[..5000]);
    assert_eq!(read[5000], b'X');
    assert!(read[5001..].iter().all(|b| *b == 0));
    assert!(store.lookup(ROOT, b"empty").is_err());
    drop(store);

    let raw = std::fs::read(log(&dir)).unwrap();
    for needle in [&b"docs"[..], b"a.txt", b"b.txt", &content[..64]] {
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle),
            "the log holds {needle:?} in the clear"
        );
    }
}

#[test]
fn a_wrong_key_a_second_opener_and_a_foreign_file_are_refused_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let witness = Arc::new(Versions::default());
    populated(&dir, &witness);
    let before = std::fs::read(log(&dir)).unwrap();

    let err = Store::open(&dir, "/data", &key(2), witness.clone()).unwrap_err();
    assert!(matches!(err, SealedError::WrongKey(_)), "{err}");
    assert!(err.to_string().contains("the key does not open"), "{err}");
    assert_eq!(std::fs::read(log(&dir)).unwrap(), before);

    let first = open(&dir, &witness).unwrap();
    let err = open(&dir, &witness).unwrap_err();
    assert!(err.to_string().contains("open in another Keep"), "{err}");
    drop(first);

    std::fs::write(
        log(&dir),
        b"not a store at all, but long enough to hold a header of 64 bytes",
    )
    .unwrap();
    let err = open(&dir, &witness).unwrap_err();
    assert!(err.to_string().contains("not a sealed store"), "{err}");
}

#[test]
fn a_changed_chunk_is_detected_when_read_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let witness = Arc::new(Versions::default());
    populated(&dir, &witness);
    // The second chunk frame: flip one byte of its ciphertext.
    let mut raw = std::fs::read(log(&dir)).unwrap();
    let frame = HEADER_LEN + (5 + CHUNK + 16);
    raw[frame + 100] ^= 1;
    std::fs::write(log(&dir), &raw).unwrap();

    let mut store = open(&dir, &witness).unwrap();
    let docs = store.lookup(ROOT, b"docs").unwrap();
    let file = store.lookup(docs.ino, b"a.txt").unwrap();
    assert!(
        store.read(file.ino, 0, 100).is_ok(),
        "the first chunk is intact"
    );
    let err = store.read(file.ino, CHUNK as u64, 100).unwrap_err();
    let message = format!("{err:?}");
    assert!(message.contains("/docs/a.txt"), "{message}");
    assert!(message.contains("chunk 1"), "{message}");
}

#[test]
fn small_commits_overwrite_zeros_written_ahead_which_opening_cuts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let witness = Arc::new(Versions::default());
    populated(&dir, &witness);
    let committed = std::fs::read(log(&dir)).unwrap();
    let zeros = committed.iter().rev().take_while(|b| **b == 0).count();
    assert!(zeros >= 128 * 1024, "{zeros} zeros after the last commit");

    let mut store = open(&dir, &witness).unwrap();
    let opened = std::fs::read(log(&dir)).unwrap();
    assert_same_but_zeros_ahead(&opened, &committed, "opening");
    let file = store.create(ROOT, b"small", FileKind::File).unwrap();
    store.write(file.ino, 0, b"one").unwrap();
    store.commit().unwrap();
    let len = std::fs::metadata(log(&dir)).unwrap().len();
    assert!(
        len >= opened.len() as u64 + 128 * 1024,
        "zeros written ahead again"
    );
    // The next commits go into those zeros: the file keeps its length, so their sync
    // writes data alone.
    for text in [b"two", b"six"] {
        store.write(file.ino, 0, text).unwrap();
        store.commit().unwrap();
        assert_eq!(std::fs::metadata(log(&dir)).unwrap().len(), len);
    }
    drop(store);
    let mut store = open(&dir, &witness).unwrap();
    assert_eq!(store.version(), 4);
    let file = store.lookup(ROOT, b"small").unwrap();
    assert_eq!(store.read(file.ino, 0, 10).unwrap(), b"six");
}

#[test]
fn an_old_copy_is_refused_with_both_versions_and_a_torn_tail_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let witness = Arc::new(Versions::default());
    populated(&dir, &witness);
    let version_one = std::fs::read(log(&dir)).unwrap();

    let mut store = open(&dir, &witness).unwrap();
    let file = store.create(ROOT, b"new", FileKind::File).unwrap();
    store.write(file.ino, 0, b"second").unwrap();
    store.commit().unwrap();
    drop(store);

    // The host puts back version 1.
    let version_two = std::fs::read(log(&dir)).unwrap();
    std::fs::write(log(&dir), &version_one).unwrap();
    let err = open(&dir, &witness).unwrap_err();
    assert!(
        err.to_string().contains(
            "the Steward expects version 2 of this sealed store, the disk holds version 1"
        ),
        "{err}"
    );
    // ... or deletes the store.
    std::fs::remove_file(log(&dir)).unwrap();
    let err = open(&dir, &witness).unwrap_err();
    assert!(err.to_string().contains("holds version 0"), "{err}");
    assert!(!log(&dir).exists(), "nothing written");

    // A crash in the middle of appending: the torn tail is cut, the commits stay.
    let mut torn = version_two.clone();
    torn.extend_from_slice(&[1, 0x10, 0x10, 0, 0, 7, 7, 7]);
    std::fs::write(log(&dir), &torn).unwrap();
    let mut store = open(&dir, &witness).unwrap();
    assert_eq!(store.version(), 2);
    let file = store.lookup(ROOT, b"new").unwrap();
    assert_eq!(store.read(file.ino, 0, 100).unwrap(), b"second");
    drop(store);
    let after = std::fs::read(log(&dir)).unwrap();
    assert_same_but_zeros_ahead(&after, &version_two, "the torn tail cut");

    // A commit whose acknowledgement was lost (the witness one behind) opens, and the
    // witness catches up.
    let behind = Arc::new(Versions::default());
    let id = open(&dir, &witness).unwrap().id();
    behind.advance(&id, 1).unwrap();
    assert_eq!(open(&dir, &behind).unwrap().version(), 2);
    assert_eq!(behind.current(&id).unwrap(), Some(2));
}

#[test]
fn a_log_mostly_garbage_is_compacted_at_open_and_the_old_log_is_then_an_old_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let witness = Arc::new(Versions::default());
    let content = populated(&dir, &witness);
    // 9 MiB, of which the first is rewritten 12 times, each committed: 12 MiB of frames
    // no file uses any more, more than what is live, but not twice as much: compacted when
    // the store opens, not while it runs.
    let mut store = open(&dir, &witness).unwrap();
    let logs = store.create(ROOT, b"logs", FileKind::Dir).unwrap();
    let big = store.create(logs.ino, b"big", FileKind::File).unwrap();
    rewrite_first_mib(&mut store, big.ino, 9, 12);
    store.set_mtime(logs.ino, 1_000_000_007).unwrap();
    store.commit().unwrap();
    let version = store.version();
    drop(store);
    let uncompacted = std::fs::read(log(&dir)).unwrap();
    assert!(uncompacted.len() > 21 * MIB, "{}", uncompacted.len());

    let mut store = open(&dir, &witness).unwrap();
    let compacted = std::fs::metadata(log(&dir)).unwrap().len();
    assert!(
        compacted < 10 * MIB as u64,
        "{compacted} bytes after compaction, {} before",
        uncompacted.len()
    );
    assert_eq!(store.version(), version + 1);
    let docs = store.lookup(ROOT, b"docs").unwrap();
    let file = store.lookup(docs.ino, b"a.txt").unwrap();
    assert_eq!(store.read(file.ino, 0, 1 << 20).unwrap(), content);
    let logs = store.lookup(ROOT, b"logs").unwrap();
    assert_eq!(logs.mtime_ns, 1_000_000_007, "a directory keeps its time");
    let big = store.lookup(logs.ino, b"big").unwrap();
    let read = store.read(big.ino, 0, 10 * MIB).unwrap();
    assert_eq!(read.len(), 9 * MIB);
    assert!(read[..MIB].iter().all(|b| *b == 11) && read[MIB..].iter().all(|b| *b == 0xee));
    // It goes on as any log: a change after the snapshot reads back.
    store.write(file.ino, 0, b"after").unwrap();
    // Before it is sealed, it reads back from memory, and past the end of what was ever
    // written a grown file reads as zeros.
    assert_eq!(store.read(file.ino, 0, 5).unwrap(), b"after");
    let sparse = store.create(ROOT, b"sparse", FileKind::File).unwrap();
    store.set_size(sparse.ino, 3 * CHUNK as u64).unwrap();
    store.write(sparse.ino, CHUNK as u64 + 10, b"x").unwrap();
    let read = store.read(sparse.ino, 0, 3 * CHUNK).unwrap();
    assert_eq!(read.len(), 3 * CHUNK);
    assert_eq!(read[CHUNK + 10], b'x');
    assert_eq!(read.iter().filter(|b| **b != 0).count(), 1);
    store.commit().unwrap();
    drop(store);
    let mut store = open(&dir, &witness).unwrap();
    assert_eq!(store.version(), version + 2);
    assert_eq!(store.read(file.ino, 0, 5).unwrap(), b"after");
    drop(store);
    assert!(!dir.join("keep-sealed.log.new").exists());

    // The log before compaction is now an old copy.
    std::fs::write(log(&dir), &uncompacted).unwrap();
    let err = open(&dir, &witness).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "expects version {} of this sealed store, the disk holds version {version}",
            version + 2
        )),
        "{err}"
    );
}

#[test]
fn a_log_whose_live_chunk_was_changed_is_not_compacted_and_the_change_stays_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let witness = Arc::new(Versions::default());
    populated(&dir, &witness);
    let mut store = open(&dir, &witness).unwrap();
    let scratch = store.create(ROOT, b"scratch", FileKind::File).unwrap();
    rewrite_first_mib(&mut store, scratch.ino, 9, 10);
    drop(store);
    // The first chunk frame (of /docs/a.txt, never rewritten): one byte flipped.
    let mut raw = std::fs::read(log(&dir)).unwrap();
    raw[HEADER_LEN + 100] ^= 1;
    std::fs::write(log(&dir), &raw).unwrap();

    let mut store = open(&dir, &witness).unwrap();
    let after = std::fs::read(log(&dir)).unwrap();
    assert_same_but_zeros_ahead(&after, &raw, "left as it was");
    let docs = store.lookup(ROOT, b"docs").unwrap();
    let file = store.lookup(docs.ino, b"a.txt").unwrap();
    let err = store.read(file.ino, 0, 100).unwrap_err();
    assert!(format!("{err:?}").contains("/docs/a.txt"), "{err:?}");
}

#[test]
fn a_running_store_compacts_once_its_garbage_is_twice_its_live_data_and_planned_reads_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let witness = Arc::new(Versions::default());
    let mut store = open(&dir, &witness).unwrap();
    let file = store.create(ROOT, b"state", FileKind::File).unwrap();
    store.write(file.ino, 0, &vec![0xaa; MIB]).unwrap();
    store.commit().unwrap();
    // A read planned now, finished after the log it was planned on has been replaced.
    let planned = store.plan_read(file.ino, 0, CHUNK).unwrap();

    // 1 MiB live, rewritten: the log grows to about three times that and past 8 MiB of
    // garbage, then is compacted under the running store, without a reopen.
    let mut sizes = Vec::new();
    for round in 0..24u8 {
        store.write(file.ino, 0, &vec![round; MIB]).unwrap();
        store.commit().unwrap();
        sizes.push(std::fs::metadata(log(&dir)).unwrap().len());
    }
    let compactions = sizes.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(compactions >= 2, "log sizes after each commit: {sizes:?}");
    assert!(
        sizes.iter().all(|size| *size < 12 * MIB as u64),
        "the log stays bounded: {sizes:?}"
    );
    assert!(!dir.join("keep-sealed.log.new").exists());
    assert_eq!(store.read(file.ino, 0, MIB).unwrap(), vec![23u8; MIB]);
    assert_eq!(
        store.chunk_reader().finish(planned).unwrap(),
        vec![0xaa; CHUNK],
        "a read planned before the compaction reads what was there"
    );
    let version = store.version();
    drop(store);

    let mut store = open(&dir, &witness).unwrap();
    assert_eq!(store.version(), version);
    let file = store.lookup(ROOT, b"state").unwrap();
    assert_eq!(store.read(file.ino, 0, 2 * MIB).unwrap(), vec![23u8; MIB]);
    assert_eq!(witness.current(&store.id()).unwrap(), Some(version));
}
