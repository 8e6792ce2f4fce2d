//! `[http]`: how `keep serve` serves a `wasi:http` component: where it listens, TLS or
//! plain HTTP, client certificates, and the limits that protect the service from its
//! clients.
//!
//! Per-request limits on the guest itself (memory, fuel, time) are `[limits]`'s: under
//! `keep serve` they apply to each request's instance.

use std::time::Duration;

use serde::Deserialize;

use crate::files::validate_host;
use crate::limits::{MemorySize, Timeout};
use crate::tls::{CaFile, ClientAuth, ClientAuthMode};

/// The default of `[http] addr`: loopback only, so that nothing is exposed unless asked.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1";
/// The default of `[http] port` (`wasmtime serve`'s).
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// The `[http]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawHttp")]
pub struct Http {
    /// Address to listen on (an IP address or a host name).
    pub addr: String,
    /// Port to listen on; 0 lets the kernel choose.
    pub port: u16,
    /// Whether the service is served over TLS (the default) or plain HTTP.
    pub tls: bool,
    /// Client certificates requested over TLS.
    pub client_auth: ClientAuth,
    /// Requests handled at once; more wait in the queue.
    pub concurrency: u32,
    /// Requests that may wait for a free slot; more are answered 503 at once.
    pub queue: u32,
    /// Largest request body; a larger one is refused with 413. `None`: no limit.
    pub max_body: Option<MemorySize>,
    /// Largest request head (request line and headers); a larger one is refused.
    pub max_headers: MemorySize,
    /// How long a client may take to send a request's head.
    pub header_timeout: Timeout,
    /// On SIGTERM or SIGINT, how long requests in flight get to finish.
    pub drain_timeout: Timeout,
    /// One line per request on stdout.
    pub access_log: bool,
    /// Where Prometheus metrics are served (`GET /metrics`, plain HTTP), if anywhere.
    pub admin: Option<std::net::SocketAddr>,
}

/// The defaults: what `keep serve` does without `[http]`.
impl Default for Http {
    fn default() -> Self {
        Self {
            addr: DEFAULT_HTTP_ADDR.to_owned(),
            port: DEFAULT_HTTP_PORT,
            tls: true,
            client_auth: ClientAuth::None,
            concurrency: 64,
            queue: 1024,
            max_body: None,
            max_headers: MemorySize(64 << 10),
            header_timeout: Timeout(Duration::from_secs(30)),
            drain_timeout: Timeout(Duration::from_secs(30)),
            access_log: true,
            admin: None,
        }
    }
}

impl Http {
    pub(crate) fn resolve_against(&mut self, base: &std::path::Path) {
        self.client_auth.resolve_against(base);
    }
}

/// The table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    addr: Option<String>,
    port: Option<crate::files::Port>,
    tls: Option<bool>,
    client_auth: Option<ClientAuthMode>,
    client_ca: Option<Vec<CaFile>>,
    concurrency: Option<u32>,
    queue: Option<u32>,
    max_body: Option<MemorySize>,
    max_headers: Option<MemorySize>,
    header_timeout: Option<Timeout>,
    drain_timeout: Option<Timeout>,
    access_log: Option<bool>,
    admin: Option<String>,
}

/// hyper cannot read a request head in a buffer smaller than this.
const MIN_HEADERS: u64 = 8192;

impl TryFrom<RawHttp> for Http {
    type Error = String;

    fn try_from(raw: RawHttp) -> Result<Self, String> {
        let default = Self::default();
        let addr = raw.addr.unwrap_or(default.addr);
        validate_host(&addr, "addr")?;
        let tls = raw.tls.unwrap_or(true);
        if !tls && (raw.client_auth.is_some() || raw.client_ca.is_some()) {
            return Err("`client_auth` and `client_ca` need tls = true".into());
        }
        let concurrency = raw.concurrency.unwrap_or(default.concurrency);
        if concurrency == 0 {
            return Err("`concurrency` must be at least 1".into());
        }
        let max_headers = raw.max_headers.unwrap_or(default.max_headers);
        if max_headers.0 < MIN_HEADERS {
            return Err(format!(
                "`max_headers` = {max_headers} is below the smallest usable, {}",
                MemorySize(MIN_HEADERS)
            ));
        }
        if max_headers.0 > u64::from(u32::MAX) {
            return Err(format!(
                "`max_headers` = {max_headers} is above the largest, 4 GiB"
            ));
        }
        let admin = raw
            .admin
            .map(|text| {
                text.parse::<std::net::SocketAddr>().map_err(|_| {
                    format!("`admin` = {text:?} is not IP:PORT (for example \"127.0.0.1:9090\")")
                })
            })
            .transpose()?;
        Ok(Self {
            addr,
            port: raw.port.map_or(default.port, |p| p.0),
            tls,
            client_auth: ClientAuth::new(raw.client_auth, raw.client_ca)?,
            concurrency,
            queue: raw.queue.unwrap_or(default.queue),
            max_body: raw.max_body,
            max_headers,
            header_timeout: raw.header_timeout.unwrap_or(default.header_timeout),
            drain_timeout: raw.drain_timeout.unwrap_or(default.drain_timeout),
            access_log: raw.access_log.unwrap_or(default.access_log),
            admin,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("Keep.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_serve_tls_on_loopback() {
        let config = parse("[http]\n").unwrap();
        assert_eq!(config.http, Some(Http::default()));
        assert_eq!(config.http_or_default().port, 8080);
        assert!(parse("").unwrap().http.is_none());
        assert_eq!(parse("").unwrap().http_or_default(), Http::default());
    }

    #[test]
    fn every_field_is_read() {
        let http = parse(
            "[http]\naddr = \"::\"\nport = 0\ntls = true\nclient_auth = \"required\"\n\
             client_ca = [\"ca.pem\"]\nconcurrency = 2\nqueue = 0\nmax_body = \"1MiB\"\n\
             max_headers = \"16KiB\"\nheader_timeout = \"2s\"\ndrain_timeout = \"5s\"\n\
             access_log = false\nadmin = \"127.0.0.1:9090\"\n",
        )
        .unwrap()
        .http
        .unwrap();
        assert_eq!(http.addr, "::");
        assert_eq!(http.port, 0);
        assert_eq!(http.client_auth.ca()[0].path, Path::new("ca.pem"));
        assert_eq!((http.concurrency, http.queue), (2, 0));
        assert_eq!(http.max_body, Some(MemorySize(1 << 20)));
        assert_eq!(http.max_headers, MemorySize(16 << 10));
        assert_eq!(http.header_timeout.0, Duration::from_secs(2));
        assert_eq!(http.drain_timeout.0, Duration::from_secs(5));
        assert!(!http.access_log);
        assert_eq!(http.admin, Some("127.0.0.1:9090".parse().unwrap()));
    }

    #[test]
    fn contradictions_and_bad_values_are_named() {
        for (text, message) in [
            (
                "[http]\ntls = false\nclient_auth = \"optional\"\n",
                "need tls = true",
            ),
            ("[http]\nconcurrency = 0\n", "at least 1"),
            (
                "[http]\nmax_headers = \"1KiB\"\n",
                "below the smallest usable, 8 KiB",
            ),
            ("[http]\nport = 70000\n", "out of range"),
            ("[http]\naddr = \"a b\"\n", "neither an IP address"),
            ("[http]\nclient_auth = \"required\"\n", "`client_ca`"),
            ("[http]\nqueue = -1\n", "queue"),
            ("[http]\nbody = 1\n", "unknown field `body`"),
            ("[http]\nadmin = \"localhost\"\n", "not IP:PORT"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(message), "{text:?}: {error}");
            assert!(error.contains("http"), "{text:?}: {error}");
        }
    }
}
