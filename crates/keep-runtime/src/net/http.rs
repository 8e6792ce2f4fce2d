//! Outgoing HTTP requests of a guest (`wasi:http/outgoing-handler` 0.2,
//! `wasi:http/client` 0.3), for `keep run` and `keep serve`: only to addresses `[network]
//! connect` allows, over TLS verified with `[tls]`'s trust anchors and presenting the Keep's
//! certificate when the server asks for one (Keep-to-Keep mTLS over HTTP).
//!
//! Keep's own sender rather than wasmtime-wasi-http's `default_send_request`: that one
//! connects to whatever the guest names and trusts only the Mozilla roots, with no client
//! certificate; what it connects to and whom it trusts are exactly what Keep must decide.

use std::sync::Arc;
use std::time::Duration;

use crate::net::policy::Policy;
use http_body_util::BodyExt as _;
use hyper::Uri;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// How long connecting (TCP, TLS and HTTP handshakes) and the response's head may take
/// unless the guest's request options say otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how a service's outgoing requests go.
#[derive(Clone)]
pub struct Outgoing {
    policy: Arc<Policy>,
    tls: tokio_rustls::TlsConnector,
}

/// What the host hands back for a request sent: the response, and a future that ends with
/// the connection.
type Sent = (
    hyper::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

impl Outgoing {
    /// Requests go where `policy` allows TCP connections, and HTTPS is verified and
    /// authenticated by `tls` (the Keep's rustls client configuration).
    pub fn new(policy: &keep_config::NetworkPolicy, tls: Arc<rustls::ClientConfig>) -> Self {
        let mut tls = (*tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            policy: Arc::new(Policy::new(policy)),
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        }
    }

    /// Sends `request` (HTTP/1.1), or refuses it with the error code the guest sees.
    async fn send(
        &self,
        mut request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<Sent, Error> {
        let uri = request.uri().clone();
        let https = uri.scheme() == Some(&hyper::http::uri::Scheme::HTTPS);
        let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?.to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let connect_timeout = options
            .and_then(|o| o.connect_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let first_byte_timeout = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        // Brackets are URI syntax around an IPv6 address, not part of the name.
        let name = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let addrs: Vec<_> = tokio::net::lookup_host((name.as_str(), port))
            .await
            .map_err(|_| Error::DnsError {
                rcode: None,
                info_code: None,
            })?
            .collect();
        let Some(addr) = addrs
            .iter()
            .copied()
            .find(|addr| self.policy.allows(*addr, SocketAddrUse::TcpConnect))
        else {
            tracing::warn!(
                "[network] denied an outgoing request to {host}:{port}: not allowed by the \
                 [network] table of Keep.toml"
            );
            return Err(Error::HttpRequestDenied);
        };
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|_| Error::ConnectionRefused)?;
            let stream: Box<dyn Io> = if https {
                let server =
                    ServerName::try_from(name.clone()).map_err(|_| Error::HttpRequestUriInvalid)?;
                let tls = self.tls.connect(server, tcp).await.map_err(|error| {
                    tracing::warn!("outgoing request to {host}:{port}: TLS: {error}");
                    Error::TlsCertificateError
                })?;
                Box::new(tls)
            } else {
                Box::new(tcp)
            };
            hyper::client::conn::http1::handshake::<_, WasiBody>(TokioIo::new(stream))
                .await
                .map_err(Error::Hyper)
        };
        let (mut sender, connection) = tokio::time::timeout(connect_timeout, connect)
            .await
            .map_err(|_| Error::ConnectionTimeout)??;
        let connection = tokio::spawn(connection);
        // HTTP/1.1 to a server (not a proxy) names the target by its path; the authority
        // goes in Host.
        *request.uri_mut() = Uri::builder()
            .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
            .build()
            .map_err(|_| Error::HttpRequestUriInvalid)?;
        if let Some(authority) = uri.authority()
            && !request.headers().contains_key(hyper::header::HOST)
        {
            let value = hyper::header::HeaderValue::from_str(authority.as_str())
                .map_err(|_| Error::HttpRequestUriInvalid)?;
            request.headers_mut().insert(hyper::header::HOST, value);
        }
        let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(Error::Hyper)?;
        let response = response.map(|body: Incoming| body.map_err(Error::Hyper).boxed_unsync());
        let done = async move {
            match connection.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(Error::Hyper(error)),
                Err(_) => Err(Error::ConnectionTerminated),
            }
        };
        Ok((response, Box::new(done)))
    }
}

/// The hooks through which wasmtime-wasi-http sends a guest's requests: with an
/// [`Outgoing`], or (the default, for a guest that does not import `wasi:http`) nowhere.
#[derive(Default)]
pub struct OutgoingHooks(Option<Outgoing>);

impl From<Outgoing> for OutgoingHooks {
    fn from(outgoing: Outgoing) -> Self {
        Self(Some(outgoing))
    }
}

impl WasiHttpHooks for OutgoingHooks {
    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<Sent, Error>> + Send> {
        let outgoing = self.0.clone();
        Box::new(async move {
            match outgoing {
                Some(outgoing) => outgoing.send(request, options).await,
                None => Err(Error::HttpRequestDenied),
            }
        })
    }
}

/// A connection: TCP or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}
