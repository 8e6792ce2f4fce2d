//! `keep serve`: reads the component and Keep.toml, sets up TLS, and serves until killed.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use keep_config::{ClientAuth, Config};
use keep_identity::{Identity, IdentitySource, LiveIdentity, TlsSetup};

use crate::cli::HttpServeArgs;

pub fn serve(args: HttpServeArgs) -> anyhow::Result<u8> {
    let program = keep_runtime::Program::read(&args.program)?;
    let config = args
        .config
        .as_deref()
        .map(Config::from_path)
        .transpose()?
        .unwrap_or_default();
    if config.steward.is_some() {
        bail!(
            "Keep.toml names a Steward, and `keep serve` does not attest yet: its TLS \
             certificate would not state what it serves. Use [tls] cert and key"
        );
    }
    let tls = match (&config.tls.identity, args.plain_http) {
        (_, true) => None,
        (Some(files), false) => {
            let identity = Identity::obtain(&IdentitySource::Files(files.clone()))?;
            let setup = TlsSetup::new(&config.tls, LiveIdentity::new(&identity)?)?;
            let mut server = (*setup.server(&ClientAuth::None)?).clone();
            server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
        }
        (None, false) => bail!(
            "`keep serve` serves TLS with the certificate and key of Keep.toml's [tls] cert \
             and key, and none is set; serve plain HTTP with --plain-http"
        ),
    };
    let env = config
        .env
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
        .collect();
    let name = program.path.display().to_string();
    let service = Arc::new(keep_serve::Service::new(&name, &program.bytes, env)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let address = listener.local_addr()?;
        if tls.is_some() {
            eprintln!("keep: serving {name} on https://{address}/");
        } else {
            eprintln!(
                "keep: warning: serving {name} on plain http://{address}/ (--plain-http): \
                 nothing protects the traffic"
            );
        }
        keep_serve::serve(service, listener, tls).await
    })?;
    Ok(0)
}
