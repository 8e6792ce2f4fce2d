//! `wasi:tls` for components: wasmtime-wasi-tls's host implementation, with Keep's rustls
//! client configuration behind it so a component trusts exactly what `[tls]` says (the
//! crate's own rustls provider trusts the Mozilla roots and takes no configuration).

use std::pin::Pin;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use wasmtime_wasi_tls::{
    Error, TlsProvider, TlsStream, TlsTransport, WasiTlsCtx, WasiTlsCtxBuilder,
};

use keep_identity::TlsSetup;

/// The `wasi:tls` context of a component: client handshakes use `setup`'s client
/// configuration (trust anchors, protocol policy, and the Keep's certificate when a server
/// asks for one).
pub fn context(setup: &TlsSetup) -> WasiTlsCtx {
    WasiTlsCtxBuilder::new()
        .provider(Box::new(KeepProvider {
            config: setup.client(),
        }))
        .build()
}

/// Client handshakes with Keep's rustls configuration.
struct KeepProvider {
    config: Arc<ClientConfig>,
}

impl TlsProvider for KeepProvider {
    // The return type is spelled out: the crate's alias for it is private.
    fn connect(
        &self,
        server_name: String,
        transport: Box<dyn TlsTransport>,
    ) -> Pin<Box<dyn Future<Output = Result<Box<dyn TlsStream>, Error>> + Send>> {
        let config = self.config.clone();
        Box::pin(async move {
            let name = ServerName::try_from(server_name.clone()).map_err(|_| {
                tracing::warn!("[tls] a component asked for a handshake with `{server_name}`, which is not a valid server name");
                Error::msg(format!("invalid server name `{server_name}`"))
            })?;
            match tokio_rustls::TlsConnector::from(config)
                .connect(name, transport)
                .await
            {
                Ok(stream) => Ok(Box::new(stream) as Box<dyn TlsStream>),
                Err(e) => {
                    tracing::warn!(
                        "[tls] a component's handshake with `{server_name}` failed: {e}"
                    );
                    Err(Error::msg(e))
                }
            }
        })
    }
}
