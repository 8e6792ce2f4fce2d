//! `keep serve`: reads the component and Keep.toml, attests with the Steward (or reads
//! `[tls]`), binds the listener, confines the process, then serves until SIGTERM or SIGINT
//! and drains.
//!
//! The order matters as for `keep run`: a Keep the Steward refuses never listens, and the
//! process confines itself while it has a single thread (the async runtime, the signal
//! thread and the renewal thread start after).

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use keep_config::{Config, Http};
use keep_identity::{AttestedIdentity, Identity, IdentitySource, LiveIdentity, TlsSetup};
use keep_runtime::secrets::SecretDelivery;
use keep_runtime::{Event, EventSink, Program};
use keep_serve::{RequestLimits, Service};

use crate::attest::platform_root;
use crate::cli::HttpServeArgs;
use crate::run::{self, Chosen};

pub fn serve(args: HttpServeArgs) -> anyhow::Result<u8> {
    let backend = run::choose_backend(
        args.backend,
        &keep_attest::platform::detect(&platform_root()),
    )?;
    let program = Program::read(&args.program)?;
    let config = args
        .config
        .as_deref()
        .map(Config::from_path)
        .transpose()?
        .unwrap_or_default();
    let http = config.http_or_default();
    let plain = args.plain_http || !http.tls;
    if let Some(steward) = &config.steward {
        if plain {
            bail!(
                "Keep.toml names a Steward ({steward}), whose certificate proves what this Keep \
                 serves, and {} asks for plain HTTP, where no certificate is presented: remove \
                 one of them",
                if args.plain_http {
                    "--plain-http"
                } else {
                    "[http] tls = false"
                }
            );
        }
        if config.tls.identity.is_some() {
            bail!(
                "Keep.toml names a Steward ({steward}) and [tls] cert/key: the Steward issues \
                 the Keep's certificate, remove one of them"
            );
        }
    }
    let addr = listen_address(args.addr, &http)?;
    let events = run::event_printer(args.quiet, false);
    if !args.quiet {
        run::print_backend_note(&backend);
    }

    let limits = RequestLimits {
        memory: config.limits.memory.map(|m| m.0),
        fuel: config.limits.fuel.map(|f| f.0),
        timeout: config.limits.timeout.map(|t| t.0),
        max_body: http.max_body.map(|m| m.0),
    };
    let engine = service_engine(&limits, http.concurrency, program.is_wasi_p3())?;
    let cache = run::module_cache(args.no_cache, &backend);
    let component = keep_runtime::compile_component(&engine, &program, cache.as_ref())?;

    // Attestation before anything listens: a Keep the Steward refuses never serves.
    let attested = match &config.steward {
        Some(steward) => Some(attest(&config, steward, &program, &backend, &events)?),
        None => None,
    };
    let setup = tls_setup(&config, plain, attested.as_ref())?;
    let tls = if plain {
        None
    } else {
        Some(tls_acceptor(&setup, &http)?)
    };
    let outgoing = keep_serve::Outgoing::new(&config.network, setup.client());
    let mut guest = keep_serve::GuestContext {
        env: config
            .env
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
            .collect(),
        ..Default::default()
    };
    let delivery = match &attested {
        Some(attested) => deliver_secrets(&config, &mut guest, attested, &events)?,
        None => None,
    };
    let name = program.path.display().to_string();
    let service = Arc::new(Service::new(
        &name, &engine, &component, guest, limits, outgoing,
    )?);

    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    listener
        .set_nonblocking(true)
        .context("cannot make the listener non-blocking")?;
    let address = listener.local_addr().context("the listener's address")?;
    let admin = http
        .admin
        .map(|admin| {
            std::net::TcpListener::bind(admin)
                .with_context(|| format!("[http] admin: cannot listen on {admin}"))
        })
        .transpose()?;
    let admin_address = admin
        .as_ref()
        .map(|admin| admin.local_addr().context("the admin listener's address"))
        .transpose()?;
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("cannot watch for SIGTERM and SIGINT")?;
    let signal_handle = signals.handle();

    confine(&args, &config, delivery.as_deref(), &events);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<&'static str>();
    let signal_thread = std::thread::Builder::new()
        .name("keep-signals".into())
        .spawn(move || {
            let mut stop = Some(stop);
            for signal in signals.forever() {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(if signal == signal_hook::consts::SIGINT {
                        "SIGINT"
                    } else {
                        "SIGTERM"
                    });
                }
            }
        })
        .context("cannot start the signal thread")?;
    let renewal = attested
        .as_ref()
        .map(|attested| start_renewal(attested, delivery.clone(), &events))
        .transpose()?;

    let options = keep_serve::ServerOptions {
        concurrency: http.concurrency,
        queue: http.queue,
        max_headers: u32::try_from(http.max_headers.0).unwrap_or(u32::MAX),
        header_timeout: http.header_timeout.0,
        drain_timeout: http.drain_timeout.0,
        access_log: (http.access_log && !args.quiet).then(|| {
            Arc::new(|record: &keep_serve::AccessRecord| println!("{record}"))
                as keep_serve::AccessLog
        }),
        admin,
    };
    let drain = http.drain_timeout;
    let served = runtime.block_on(async {
        let listener =
            tokio::net::TcpListener::from_std(listener).context("cannot register the listener")?;
        if plain {
            eprintln!(
                "keep: warning: serving {name} on plain http://{address}/: nothing protects \
                 the traffic"
            );
        } else {
            eprintln!("keep: serving {name} on https://{address}/");
        }
        if let Some(admin) = admin_address {
            eprintln!("keep: metrics on http://{admin}/metrics");
        }
        let shutdown = async {
            let signal = stopped.await.unwrap_or("the signal thread's end");
            eprintln!(
                "keep: {signal}: no longer accepting connections; letting those open finish \
                 (up to {drain})"
            );
        };
        keep_serve::serve(service, listener, tls, options, shutdown).await
    });
    // Guests still running past the drain deadline are abandoned, not waited for: with the
    // epoch stopped, one that computes without calling the host would never yield.
    runtime.shutdown_background();
    signal_handle.close();
    let _ = signal_thread.join();
    drop(renewal);
    let stopped = served?;
    if stopped.cut > 0 {
        eprintln!(
            "keep: warning: {} connection(s) were still open at the drain deadline ({drain}) \
             and were closed",
            stopped.cut
        );
    } else if !args.quiet {
        eprintln!("keep: stopped: every connection finished");
    }
    Ok(0)
}

/// The engine for the service: with a pool of instances, or, where the address space
/// cannot be reserved for one (a `ulimit -v`, say), allocating each instance on demand.
fn service_engine(
    limits: &RequestLimits,
    concurrency: u32,
    wasi_p3: bool,
) -> anyhow::Result<wasmtime::Engine> {
    let options = keep_serve::engine_options(limits, concurrency, wasi_p3);
    options.build().or_else(|error| {
        tracing::warn!(
            "no instance pool ({error:#}): each request's instance is allocated on demand"
        );
        keep_runtime::EngineOptions {
            pooled_instances: None,
            ..options
        }
        .build()
    })
}

/// `--addr`, or `[http]` addr and port.
fn listen_address(given: Option<SocketAddr>, http: &Http) -> anyhow::Result<SocketAddr> {
    if let Some(addr) = given {
        return Ok(addr);
    }
    (http.addr.as_str(), http.port)
        .to_socket_addrs()
        .with_context(|| format!("[http] addr `{}`: cannot resolve it", http.addr))?
        .next()
        .with_context(|| format!("[http] addr `{}` has no address", http.addr))
}

/// Attests with the Steward at `steward` and reports the certificate it issued.
fn attest(
    config: &Config,
    steward: &keep_config::StewardUrl,
    program: &Program,
    backend: &Chosen,
    events: &EventSink,
) -> anyhow::Result<AttestedIdentity> {
    let digest = keep_runtime::workload_digest(program, Some(config));
    let source = run::steward_source(config, steward, digest, backend);
    if let Chosen::Process { .. } = backend {
        run::warn_secrets_readable(&source);
    }
    keep_runtime::attest(&source, &config.tls, events)
}

/// Puts the released secrets where Keep.toml says: environment variables into `guest`,
/// files into an in-memory directory the guests see read-only, config keys into the
/// `wasi:config/store` values every instance shares. The delivery (when some secret is a
/// file or a config key) replaces them at renewal.
fn deliver_secrets(
    config: &Config,
    guest: &mut keep_serve::GuestContext,
    attested: &AttestedIdentity,
    events: &EventSink,
) -> anyhow::Result<Option<Arc<SecretDelivery>>> {
    for (variable, value) in keep_runtime::secrets::environment(attested.secrets())? {
        guest.env.push((variable, value.as_str().to_owned()));
    }
    if !config
        .secrets
        .iter()
        .any(|s| s.file.is_some() || s.config.is_some())
    {
        return Ok(None);
    }
    let secrets_dir = config
        .secrets_dir
        .as_deref()
        .unwrap_or(keep_config::DEFAULT_SECRETS_DIR);
    let delivery = SecretDelivery::new(&config.secrets, secrets_dir, attested.secrets())?;
    if let (Some(grant), Some(noswap)) = (delivery.dir_grant(), delivery.noswap()) {
        events.report(Event::SecretFiles {
            dir: &grant.guest,
            noswap,
        });
        guest.read_only_dirs.push((grant.host, grant.guest));
    }
    guest.config = delivery.config().clone();
    Ok(Some(Arc::new(delivery)))
}

/// The TLS set-up: the attested certificate, or `[tls]` cert and key; without either, a
/// self-signed certificate when serving plain HTTP (presented only to servers of outgoing
/// requests that ask for one, and they cannot verify it).
fn tls_setup(
    config: &Config,
    plain: bool,
    attested: Option<&AttestedIdentity>,
) -> anyhow::Result<TlsSetup> {
    let identity = match (attested, &config.tls.identity) {
        (Some(attested), _) => attested.identity.clone(),
        (None, Some(files)) => {
            LiveIdentity::new(&Identity::obtain(&IdentitySource::Files(files.clone()))?)?
        }
        (None, None) if plain => {
            LiveIdentity::new(&Identity::obtain(&IdentitySource::SelfSigned)?)?
        }
        (None, None) => bail!(
            "`keep serve` serves TLS with the certificate a Steward issues (`steward` in \
             Keep.toml) or with [tls] cert and key, and neither is set; serve plain HTTP with \
             --plain-http"
        ),
    };
    TlsSetup::new(&config.tls, identity)
}

/// The TLS acceptor of `setup`: ALPN offers HTTP/2 then HTTP/1.1; client certificates as
/// `[http]` asks.
fn tls_acceptor(setup: &TlsSetup, http: &Http) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let mut server = (*setup.server(&http.client_auth)?).clone();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

/// Confines the process: no files but the secret files; new sockets only to renew the
/// certificate with the Steward or for outgoing requests `[network]` allows (the listener is
/// open already).
fn confine(
    args: &HttpServeArgs,
    config: &Config,
    secrets: Option<&SecretDelivery>,
    events: &EventSink,
) {
    let max_open_files = config
        .limits
        .open_files
        .unwrap_or(keep_config::DEFAULT_OPEN_FILES);
    if args.no_confine {
        eprintln!(
            "keep: warning: --no-confine: the runtime process is not confined; only the Wasm \
             sandbox protects the host"
        );
        keep_confine::rlimits::apply(max_open_files);
        return;
    }
    let sockets = config.steward.is_some() || !config.network.connect.is_empty();
    let report = keep_confine::confine(&keep_confine::Grants {
        read_only_paths: if sockets {
            keep_runtime::confinement::NAME_RESOLUTION
                .iter()
                .map(Into::into)
                .collect()
        } else {
            Vec::new()
        },
        sockets,
        max_open_files,
        // The secret files: the guests' read-only view, opened for each request, and Keep's
        // writable one, where renewal replaces them.
        read_only_dirs: secrets
            .and_then(SecretDelivery::dir_grant)
            .map(|grant| grant.host)
            .into_iter()
            .collect(),
        read_write_dirs: secrets
            .and_then(SecretDelivery::writable_dir)
            .into_iter()
            .collect(),
    });
    events.report(Event::Confined(&report));
    if !report.is_complete() {
        tracing::warn!("confinement is not complete:\n{report}");
    }
}

/// Starts renewing the certificate on a thread, stopped and joined when the handle drops;
/// the secrets asked for again go to `delivery` (environment variables keep the values of
/// the start).
fn start_renewal(
    attested: &AttestedIdentity,
    delivery: Option<Arc<SecretDelivery>>,
    events: &EventSink,
) -> anyhow::Result<keep_runtime::StoppingThread> {
    let events = events.clone();
    let renew = attested.renewal(
        move |event| events.report(Event::Renewal(event)),
        move |renewed| match &delivery {
            Some(delivery) => delivery.update(renewed),
            None => Ok(Vec::new()),
        },
    );
    keep_runtime::StoppingThread::spawn("keep-renewal", renew)
        .context("cannot start the certificate renewal thread")
}
