//! What can go wrong with a sealed store.

use std::path::PathBuf;

/// Why a sealed store could not be opened, read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealedError {
    /// The host's file system failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Another process holds the store open.
    #[error("{0}: the sealed store is open in another Keep")]
    Locked(PathBuf),
    /// The file is not a sealed store of a format this Keep reads.
    #[error("{path}: not a sealed store: {reason}")]
    NotAStore {
        /// The log file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key does not open the store.
    #[error(
        "{0}: the key does not open this sealed store (it was sealed to another workload or \
         Steward secret, or with another backend's key), or its header was changed"
    )]
    WrongKey(PathBuf),
    /// Content that was committed does not authenticate, or does not fit together.
    #[error("{path}: integrity: {reason}")]
    Integrity {
        /// The log file.
        path: PathBuf,
        /// What failed, naming the file of the tree when known.
        reason: String,
    },
    /// The store is older (or newer) than the version its witness holds.
    #[error(
        "{path}: rollback: the Steward expects version {expected} of this sealed store, the \
         disk holds version {found}"
    )]
    Rollback {
        /// The log file.
        path: PathBuf,
        /// The version the witness holds.
        expected: u64,
        /// The version the log reaches.
        found: u64,
    },
    /// The witness could not be asked or did not acknowledge.
    #[error("the Steward, which witnesses the sealed store's versions: {0}")]
    Witness(String),
}

impl SealedError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
