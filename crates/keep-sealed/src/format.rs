//! The log's bytes: its header, and the frames that follow it.
//!
//! ```text
//! header (64 bytes)   "KEEPSEAL" | format u32 = 1 | chunk size u32 = 4096 | store id [16]
//!                     | HMAC-SHA256(check key, the 32 bytes before) [32]
//! chunk frame         kind u8 = 1 | length u32 = 4112 | AES-256-GCM(chunk, 4096 bytes) + tag
//!                     nonce: in the commit that names the chunk
//!                     additional data: "keep-sealed chunk" | store id | inode u64 | index u64 | offset u64
//! commit frame        kind u8 = 2 | length u32 | nonce [12] | AES-256-GCM(commit) + tag
//!                     additional data: "keep-sealed commit" | store id | offset u64
//! commit (plaintext)  version u64 | SHA-256 of the previous commit frame [32] | next inode u64
//!                     | operation count u64 | operations | zeros to a multiple of 4096
//! snapshot frame      kind u8 = 3 | as a commit frame, with additional data
//!                     "keep-sealed snapshot" | store id | offset u64
//! snapshot (plaintext) as a commit, previous = zeros: operations that build the whole
//!                     tree from an empty root
//! ```
//!
//! Integers are little-endian; `offset` is the frame's position in the log. A snapshot is
//! the first commit of a compacted log (and only there): its version continues the log it
//! replaced, and its operations rebuild that log's tree, chunks copied into the frames
//! before it.

use ring::hmac;

/// The magic bytes a sealed store's log starts with.
pub const MAGIC: &[u8; 8] = b"KEEPSEAL";
/// The format this crate writes and reads.
pub const FORMAT: u32 = 1;
/// Bytes of file data in one chunk.
pub const CHUNK: usize = 4096;
/// The header's length.
pub const HEADER_LEN: usize = 64;
/// A frame's kind and length.
pub const FRAME_HEAD: usize = 5;
/// AES-GCM's tag.
pub const TAG: usize = 16;
/// AES-GCM's nonce.
pub const NONCE: usize = 12;
/// A chunk frame's kind.
pub const KIND_CHUNK: u8 = 1;
/// A commit frame's kind.
pub const KIND_COMMIT: u8 = 2;
/// A snapshot frame's kind.
pub const KIND_SNAPSHOT: u8 = 3;
/// A whole chunk frame.
pub const CHUNK_FRAME: usize = FRAME_HEAD + CHUNK + TAG;
/// Commits are padded to a multiple of this, so that their size says little about what
/// changed.
pub const COMMIT_PAD: usize = 4096;
/// The longest commit frame read (a commit of a whole large tree stays far below).
pub const MAX_COMMIT: usize = 256 * 1024 * 1024;

/// A log's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The store's identifier.
    pub store_id: [u8; 16],
    /// The HMAC of the fields before it under the check key.
    pub check: [u8; 32],
}

impl Header {
    /// The header of `store_id`, authenticated with `check_key`.
    pub(crate) fn new(store_id: [u8; 16], check_key: &hmac::Key) -> Self {
        let tag = hmac::sign(check_key, &Self::signed(&store_id));
        let mut check = [0; 32];
        check.copy_from_slice(tag.as_ref());
        Self { store_id, check }
    }

    fn signed(store_id: &[u8; 16]) -> [u8; 32] {
        let mut out = [0; 32];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&FORMAT.to_le_bytes());
        out[12..16].copy_from_slice(&(CHUNK as u32).to_le_bytes());
        out[16..].copy_from_slice(store_id);
        out
    }

    /// The 64 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[..32].copy_from_slice(&Self::signed(&self.store_id));
        out[32..].copy_from_slice(&self.check);
        out
    }

    /// Reads a header, checking what can be checked without the key.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < HEADER_LEN {
            return Err(format!("{} bytes, shorter than a header", bytes.len()));
        }
        if &bytes[..8] != MAGIC {
            return Err("it does not start with KEEPSEAL".into());
        }
        let format = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if format != FORMAT {
            return Err(format!(
                "format {format}, and this Keep reads format {FORMAT}"
            ));
        }
        let chunk = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if chunk as usize != CHUNK {
            return Err(format!("chunks of {chunk} bytes, not {CHUNK}"));
        }
        let mut store_id = [0; 16];
        store_id.copy_from_slice(&bytes[16..32]);
        let mut check = [0; 32];
        check.copy_from_slice(&bytes[32..64]);
        Ok(Self { store_id, check })
    }

    /// Whether `check_key` made this header.
    pub(crate) fn verifies(&self, check_key: &hmac::Key) -> bool {
        hmac::verify(check_key, &Self::signed(&self.store_id), &self.check).is_ok()
    }
}

/// Decodes a commit's plaintext and applies its operations to an empty tree, as opening a
/// store does (the first commit of a store): the number of operations, or what is wrong.
/// For tools and fuzzing: in a store, a commit is read only once it authenticated.
pub fn check_commit(plain: &[u8]) -> Result<u64, String> {
    let truncated = |_| "it is cut short".to_owned();
    let mut input = crate::codec::Reader::new(plain);
    let _version = input.u64().map_err(truncated)?;
    let _previous: [u8; 32] = input.array().map_err(truncated)?;
    let _next_ino = input.u64().map_err(truncated)?;
    let count = input.u64().map_err(truncated)?;
    let mut tree = crate::tree::Tree::new();
    for _ in 0..count {
        let op = crate::tree::Op::decode(&mut input)?;
        tree.apply(&op)?;
    }
    Ok(count)
}

/// The additional data of a chunk frame.
pub(crate) fn chunk_aad(store_id: &[u8; 16], ino: u64, index: u64, offset: u64) -> Vec<u8> {
    let mut aad = b"keep-sealed chunk".to_vec();
    aad.extend_from_slice(store_id);
    aad.extend_from_slice(&ino.to_le_bytes());
    aad.extend_from_slice(&index.to_le_bytes());
    aad.extend_from_slice(&offset.to_le_bytes());
    aad
}

/// The additional data of a commit frame, or of a snapshot frame: the label differs, so
/// that the host cannot pass one for the other.
pub(crate) fn commit_aad(store_id: &[u8; 16], offset: u64, snapshot: bool) -> Vec<u8> {
    let mut aad = if snapshot {
        b"keep-sealed snapshot".to_vec()
    } else {
        b"keep-sealed commit".to_vec()
    };
    aad.extend_from_slice(store_id);
    aad.extend_from_slice(&offset.to_le_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back_and_names_what_is_wrong() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"check");
        let header = Header::new([7; 16], &key);
        let bytes = header.to_bytes();
        let parsed = Header::parse(&bytes).unwrap();
        assert_eq!(parsed, header);
        assert!(parsed.verifies(&key));
        assert!(!parsed.verifies(&hmac::Key::new(hmac::HMAC_SHA256, b"other")));
        let mut other_format = bytes;
        other_format[8] = 2;
        assert!(
            Header::parse(&other_format)
                .unwrap_err()
                .contains("format 2")
        );
        assert!(Header::parse(b"KEEPSEAL").unwrap_err().contains("shorter"));
        assert!(Header::parse(&[0; 64]).unwrap_err().contains("KEEPSEAL"));
    }
}
