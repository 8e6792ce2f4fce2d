//! End-to-end tests: they drive the real `keep` binary (and real peers: curl, openssl, a
//! Steward) on loopback. One test binary, so that wasmtime is linked once and every test
//! shares one process's guest builds and test threads.

mod common;

mod attest;
mod backend;
mod containerd;
mod cvm;
mod digest;
mod hostile;
mod inputs;
mod network;
mod oci;
mod run;
mod sealed;
mod secrets;
mod serve;
mod steward;
