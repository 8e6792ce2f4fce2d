//! Sealed stores: a directory tree that a Keep keeps on a disk the host controls, which the
//! host sees only as ciphertext, where every change the host makes is detected, and where
//! an old copy put back is refused.
//!
//! A store is a host directory holding two files:
//!
//! - `keep-sealed.lock`, empty: whoever holds its `flock` has the store open;
//! - `keep-sealed.log`: a 64-byte [header](format::Header), then frames appended in order.
//!
//! A *chunk frame* holds 4 KiB of one file, always padded to the full chunk, encrypted with
//! AES-256-GCM under a fresh random nonce; its additional data binds it to the store, the
//! file (inode), the chunk's index and the frame's position in the log. A *commit frame*
//! holds, encrypted the same way, the metadata operations since the previous commit (files
//! and directories created, removed and renamed, sizes, times, and where each new chunk
//! is and under which nonce), the commit's version, and the SHA-256 of the previous commit
//! frame. The metadata lives only in commit frames: the host sees neither names nor the
//! tree's shape, only how many chunks and commits are written, and when.
//!
//! Opening replays the commits in order. A frame that does not authenticate ends the
//! replay: what follows the last good commit is what a crash left unsynced, and is cut
//! off. The version reached must be the one the [`Witness`] (the Steward) holds for the
//! store, or one more (a commit made durable whose acknowledgement was lost to a crash);
//! anything older is an old copy, refused with both versions named.
//!
//! A log that is mostly garbage (chunks rewritten since, old commits) is compacted when the
//! store opens: rewritten with only its live chunks and one *snapshot* frame that rebuilds
//! the tree at the next version (see `store/compact.rs`).
//!
//! Keys: the store key (32 bytes the Steward releases) is never used directly; HKDF-SHA256
//! with the store's identifier as salt derives a data key (AES-256-GCM) and a check key
//! (HMAC-SHA256 over the header), so a wrong key is named as such at open, before anything
//! is read or written.

mod codec;
mod error;
pub mod format;
mod key;
pub mod mount;
mod store;
mod tree;

pub use error::SealedError;
pub use key::StoreKey;
pub use store::{
    Attributes, ChunkReader, DirEntry, FailedRead, FileKind, FsError, Ino, PlannedRead, ROOT,
    Store, Witness,
};
