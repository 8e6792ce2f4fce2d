//! `[[files]]`: the guest's file descriptors, exactly as Enarx's `Enarx.toml` defined them.
//!
//! The descriptor number of an entry is its index in the array. The guest finds its
//! descriptors through `FD_COUNT` and `FD_NAMES` (names joined with `:`).

use serde::Deserialize;

use crate::tls::{CaFile, ClientAuth, ClientAuthMode};

/// Enarx's default port for `listen` and `connect`.
pub const DEFAULT_PORT: u16 = 443;
/// Enarx's default listen address: every IPv6 (and, dual-stack, IPv4) address.
pub const DEFAULT_LISTEN_ADDR: &str = "::";

/// The transport of a `listen` or `connect` descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TLS terminated by the runtime (Enarx's default).
    #[default]
    Tls,
    /// Plain TCP.
    Tcp,
}

/// One entry of `[[files]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawFile")]
pub struct File {
    /// Name exported in `FD_NAMES`.
    pub name: String,
    /// What the descriptor is.
    pub kind: FileKind,
}

/// What a descriptor in `[[files]]` is connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// Reads see end of file; writes are discarded.
    Null,
    /// The host's standard input.
    Stdin,
    /// The host's standard output.
    Stdout,
    /// The host's standard error.
    Stderr,
    /// A listening TCP socket.
    Listen {
        /// Address to bind (an IP address or a host name).
        addr: String,
        /// Port to bind; 0 lets the kernel choose.
        port: u16,
        /// Transport.
        prot: Protocol,
        /// Client certificates requested by a `tls` listener.
        client_auth: ClientAuth,
    },
    /// A TCP stream connected at start-up.
    Connect {
        /// Host name or IP address of the peer.
        host: String,
        /// Port of the peer.
        port: u16,
        /// Transport.
        prot: Protocol,
    },
}

impl FileKind {
    /// The `kind = "..."` spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Stdin => "stdin",
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Listen { .. } => "listen",
            Self::Connect { .. } => "connect",
        }
    }
}

/// The table as written; validated into [`File`] so that each kind gets its own message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    kind: KindName,
    name: Option<String>,
    addr: Option<String>,
    host: Option<String>,
    port: Option<Port>,
    prot: Option<Protocol>,
    client_auth: Option<ClientAuthMode>,
    client_ca: Option<Vec<CaFile>>,
}

/// The `kind` value; parsed on its own so an unknown kind is reported at its position.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindName {
    Null,
    Stdin,
    Stdout,
    Stderr,
    Listen,
    Connect,
}

/// A TCP port, with a message that says the range when it is out of it.
#[derive(Clone, Copy)]
pub(crate) struct Port(pub(crate) u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let port = i64::deserialize(de)?;
        u16::try_from(port).map(Port).map_err(|_| {
            serde::de::Error::custom(format!("port {port} is out of range (0 to 65535)"))
        })
    }
}

impl TryFrom<RawFile> for File {
    type Error = String;

    fn try_from(raw: RawFile) -> Result<Self, String> {
        if let Some(name) = &raw.name {
            validate_name(name)?;
        }
        let kind = match raw.kind {
            KindName::Null => "null",
            KindName::Stdin => "stdin",
            KindName::Stdout => "stdout",
            KindName::Stderr => "stderr",
            KindName::Listen => "listen",
            KindName::Connect => "connect",
        };
        let refuse = |field: &str, present: bool| -> Result<(), String> {
            if present {
                Err(format!("`{field}` does not apply to kind = \"{kind}\""))
            } else {
                Ok(())
            }
        };
        let stdio = |file: FileKind| -> Result<File, String> {
            refuse("addr", raw.addr.is_some())?;
            refuse("host", raw.host.is_some())?;
            refuse("port", raw.port.is_some())?;
            refuse("prot", raw.prot.is_some())?;
            refuse("client_auth", raw.client_auth.is_some())?;
            refuse("client_ca", raw.client_ca.is_some())?;
            let name = raw.name.clone().unwrap_or_else(|| file.as_str().to_owned());
            Ok(File { name, kind: file })
        };
        match raw.kind {
            KindName::Null => stdio(FileKind::Null),
            KindName::Stdin => stdio(FileKind::Stdin),
            KindName::Stdout => stdio(FileKind::Stdout),
            KindName::Stderr => stdio(FileKind::Stderr),
            KindName::Listen => {
                refuse("host", raw.host.is_some())?;
                let name = raw.name.ok_or(
                    "`name` is required for kind = \"listen\" (the guest finds its socket by it)",
                )?;
                let addr = raw.addr.unwrap_or_else(|| DEFAULT_LISTEN_ADDR.to_owned());
                validate_host(&addr, "addr")?;
                let prot = raw.prot.unwrap_or_default();
                if prot == Protocol::Tcp && (raw.client_auth.is_some() || raw.client_ca.is_some()) {
                    return Err(
                        "`client_auth` and `client_ca` apply to prot = \"tls\" listeners only"
                            .into(),
                    );
                }
                Ok(File {
                    name,
                    kind: FileKind::Listen {
                        addr,
                        port: raw.port.map_or(DEFAULT_PORT, |p| p.0),
                        prot,
                        client_auth: ClientAuth::new(raw.client_auth, raw.client_ca)?,
                    },
                })
            }
            KindName::Connect => {
                refuse("addr", raw.addr.is_some())?;
                refuse("client_auth", raw.client_auth.is_some())?;
                refuse("client_ca", raw.client_ca.is_some())?;
                let host = raw
                    .host
                    .ok_or("`host` is required for kind = \"connect\"")?;
                validate_host(&host, "host")?;
                let port = raw.port.map_or(DEFAULT_PORT, |p| p.0);
                if port == 0 {
                    return Err("`port` of a connect must not be 0".into());
                }
                Ok(File {
                    name: raw.name.unwrap_or_else(|| host.clone()),
                    kind: FileKind::Connect {
                        host,
                        port,
                        prot: raw.prot.unwrap_or_default(),
                    },
                })
            }
        }
    }
}

fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("`name` must not be empty".into());
    }
    if name.contains(':') {
        return Err(format!(
            "`name` = {name:?} contains ':', which separates names in FD_NAMES"
        ));
    }
    if name.contains('\0') {
        return Err("`name` must not contain a NUL character".into());
    }
    Ok(())
}

/// A host name or IP address: non-empty, no spaces, no port (the port has its own key).
pub(crate) fn validate_host(host: &str, field: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err(format!("`{field}` must not be empty"));
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let valid_name = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !valid_name {
        return Err(format!(
            "`{field}` = {host:?} is neither an IP address nor a host name (give the port in `port`)"
        ));
    }
    Ok(())
}
