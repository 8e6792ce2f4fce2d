//! `wasi:io` streams over a sealed file (`read-via-stream`, `write-via-stream`,
//! `append-via-stream`): each read or write is served at once on the guest's thread, so a
//! stream is always ready.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use keep_sealed::Ino;
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

use super::filesystem::error_code;
use crate::p1::abi::errno;
use crate::sealed::{READ_PIECE, SealedStore, WriteAt};

/// How much a writer may write at once (`check-write`); the same as a read's most.
const WRITE_CAPACITY: usize = READ_PIECE;

/// Why a stream operation failed, for `filesystem-error-code`.
#[derive(Debug)]
pub struct StreamFailure(pub ErrorCode);

impl std::fmt::Display for StreamFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sealed file: {}", self.0)
    }
}

impl std::error::Error for StreamFailure {}

/// The stream error for the preview-1 errno `errno`.
fn failed(errno: i32) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::Error::new(StreamFailure(error_code(errno))))
}

/// Reads a sealed file from a position on.
pub struct SealedInput {
    pub store: Arc<SealedStore>,
    pub ino: Ino,
    pub position: u64,
    /// The descriptor was opened to read (reading fails as `read` would otherwise).
    pub readable: bool,
    pub buffer: BytesMut,
}

impl InputStream for SealedInput {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if size == 0 {
            return Ok(Bytes::new());
        }
        if !self.readable {
            return Err(failed(errno::BADF));
        }
        let want = self
            .store
            .readable(self.ino, self.position, size as u64)
            .map_err(failed)?;
        if want == 0 {
            return Err(StreamError::Closed);
        }
        // The buffer of the last read comes back once the guest has its bytes (the
        // `Bytes` given then is dropped), so large reads do not each map fresh memory.
        self.buffer.clear();
        self.buffer.resize(want, 0);
        let got = self
            .store
            .read(self.ino, self.position, &mut self.buffer)
            .map_err(failed)?;
        if got == 0 {
            return Err(StreamError::Closed);
        }
        self.position += got as u64;
        Ok(self.buffer.split_to(got).freeze())
    }
}

#[async_trait::async_trait]
impl Pollable for SealedInput {
    async fn ready(&mut self) {}
}

/// Writes a sealed file from a position on, or at its end.
pub struct SealedOutput {
    pub store: Arc<SealedStore>,
    pub ino: Ino,
    pub at: WriteAt,
    /// The descriptor was opened to write.
    pub writable: bool,
}

impl OutputStream for SealedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if !self.writable {
            return Err(failed(errno::BADF));
        }
        let end = self
            .store
            .write(self.ino, self.at, &bytes)
            .map_err(failed)?;
        if let WriteAt::Offset(_) = self.at {
            self.at = WriteAt::Offset(end);
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Written into the store already; `sync` makes it durable.
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_CAPACITY)
    }
}

#[async_trait::async_trait]
impl Pollable for SealedOutput {
    async fn ready(&mut self) {}
}
