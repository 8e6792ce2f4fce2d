//! `keep serve` of a WASI 0.3 service (tests/guests/http_p3.c, `wasi:http/service@0.3.0`,
//! a component with no preview-1 adapter): detected and served with no flag, as a 0.2
//! service is.

use std::io::{Read as _, Write as _};

use super::*;

/// The guest's answer to a GET it has no route for.
const HELLO: &[u8] = b"Hello from WASI 0.3!\n";

#[test]
fn a_wasi_0_3_service_answers_with_its_status_headers_body_and_trailers() {
    let tmp = tempfile::tempdir().unwrap();
    let service = GUESTS.component("http_p3");
    let serve = ServeProcess::start(&["--plain-http", service.to_str().unwrap()]);
    let base = format!("http://{}", serve.addr);
    let url = format!("{base}/hello");
    assert_eq!(curl(&url, &[]), (200, HELLO.to_vec()));
    assert_eq!(http_version(&url, &[]), ("1.1".to_owned(), 200));
    assert_eq!(
        http_version(&url, &["--http2-prior-knowledge"]),
        ("2".to_owned(), 200)
    );
    // A fresh instance for every request.
    for _ in 0..3 {
        assert_eq!(curl(&format!("{base}/count"), &[]), (200, b"1\n".to_vec()));
    }
    status_headers_and_trailers_pass(&serve, tmp.path());

    // 100 MiB stream back unchanged.
    let upload = tmp.path().join("upload");
    let bytes: Vec<u8> = (0..100u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&upload, &bytes).unwrap();
    let (status, body) = curl(&url, &["-T", upload.to_str().unwrap()]);
    assert_eq!(status, 200);
    assert!(
        body == bytes,
        "the echo differs ({} bytes back)",
        body.len()
    );

    // A trap before answering: 500, logged with the request's number; the next is served.
    let (status, _) = curl(&format!("{base}/trap"), &[]);
    assert_eq!(status, 500);
    assert_eq!(curl(&url, &[]), (200, HELLO.to_vec()));
    let log = serve.log_when(|log| log.contains("GET /trap -> 500"));
    assert!(log.contains("wasm trap"), "{log}");
    // Every request in the access log, and none of them cut short.
    let access = serve.access_log_when(|log| log.contains("\"GET /trap HTTP/1.1\" 500"));
    assert!(access.contains("/trailers HTTP/2.0\" 200 20 "), "{access}");
    assert!(!access.contains("incomplete"), "{access}");
}

/// `[limits]` hold a 0.3 service's requests as they hold a 0.2 one's.
#[test]
fn a_wasi_0_3_service_is_held_to_its_limits_and_the_others_are_served() {
    let tmp = tempfile::tempdir().unwrap();
    let service = GUESTS.component("http_p3");
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        "[limits]\nmemory = \"32MiB\"\ntimeout = \"3s\"\n[http]\ntls = false\nconcurrency = 8\n",
    );
    let serve = ServeProcess::start(&["-c", config.to_str().unwrap(), service.to_str().unwrap()]);
    let base = format!("http://{}", serve.addr);
    // Three guests that answer, then compute forever: /hello is answered meanwhile. Their
    // answers do not get out: wasmtime delivers a 0.3 guest's answer from the store's
    // event loop, which a guest computing without calling the host holds up (see
    // docs/serve.md), so each ends as a 500 at the time limit.
    let spinning: Vec<_> = (0..3)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(serve.addr).unwrap();
            stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            stream
                .write_all(b"GET /spin HTTP/1.1\r\nHost: keep\r\nConnection: close\r\n\r\n")
                .unwrap();
            stream
        })
        .collect();
    serve.access_log_when(|log| log.contains("#3 ") || log.contains("#4 "));
    assert_eq!(curl(&format!("{base}/hello"), &[]), (200, HELLO.to_vec()));
    for mut stream in spinning {
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        assert!(
            response.starts_with(b"HTTP/1.1 500"),
            "{}",
            String::from_utf8_lossy(&response)
        );
    }
    let log = serve.log_when(|log| log.matches("time limit").count() >= 3);
    assert!(
        log.contains("GET /spin -> 500: the request took longer than its time limit"),
        "{log}"
    );
    // A guest that allocates until nothing is left stops at 32 MiB.
    let (status, _) = curl(&format!("{base}/bomb"), &[]);
    assert_eq!(status, 500);
    assert_eq!(curl(&format!("{base}/hello"), &[]), (200, HELLO.to_vec()));
}

/// A 0.3 service served over TLS (HTTP/2 by ALPN) whose outgoing requests (wasi:http/client)
/// reach a 0.2 Keep over mTLS where `[network]` allows, and nowhere else.
#[test]
fn a_wasi_0_3_service_serves_tls_and_calls_another_keep_over_mtls() {
    let tmp = tempfile::tempdir().unwrap();
    let mesh = Mesh::start(tmp.path());
    let (backend, port) = (&mesh.backend, mesh.backend.addr.port());
    let front_config = mesh.front_config(tmp.path(), "Front.toml", &mesh.front_tls());
    let front = ServeProcess::start(&[
        "-c",
        front_config.to_str().unwrap(),
        GUESTS.component("http_p3").to_str().unwrap(),
    ]);
    let cacert = ["--cacert", mesh.ca.pem.to_str().unwrap()];
    let front_url = format!("https://localhost:{}", front.addr.port());
    assert_eq!(
        http_version(
            &format!("{front_url}/hello"),
            &[&cacert[..], &["--http2"]].concat()
        ),
        ("2".to_owned(), 200)
    );
    let fetch_through = |url: &str| {
        let (status, body) = curl(&format!("{front_url}/fetch?{url}"), &cacert);
        assert_eq!(status, 200, "{}", front.log());
        String::from_utf8_lossy(&body).into_owned()
    };
    assert_eq!(
        fetch_through(&format!("https://localhost:{port}/hello")),
        "200 Hello from a Keep!\n",
        "{}",
        backend.log()
    );
    assert_eq!(fetch_through("http://192.0.2.1/"), "denied\n");
    let log = front.log_when(|log| log.contains("192.0.2.1"));
    assert!(
        log.contains("[network] denied an outgoing request to 192.0.2.1:80"),
        "{log}"
    );
}

/// `keep run` gives a WASI 0.3 command wasi:http/client too, through the same sender as
/// `keep serve`: a Keep service reached over mutual TLS where `[network]` allows, and a
/// denial elsewhere.
#[test]
fn a_wasi_0_3_command_calls_a_keep_service_over_mtls_with_wasi_http() {
    let tmp = tempfile::tempdir().unwrap();
    let mesh = Mesh::start(tmp.path());
    let port = mesh.backend.addr.port();
    let config = mesh.front_config(tmp.path(), "Keep.toml", &mesh.front_tls());
    let fetch = |url: &str| {
        Keep::new()
            .args(["run", "-q", "-c"])
            .arg_path(&config)
            .arg_path(&GUESTS.component("p3_probe"))
            .arg(url)
            .finish()
    };
    let url = format!("https://localhost:{port}/hello");
    let done = fetch(&url);
    done.expect_code(0);
    assert!(
        done.stdout_text()
            .ends_with(&format!("fetch {url}: 200 Hello from a Keep!\n")),
        "{}{}",
        done.stdout_text(),
        done.stderr
    );
    let done = fetch("http://192.0.2.1/");
    done.expect_code(0);
    assert!(
        done.stdout_text()
            .ends_with("fetch http://192.0.2.1/: denied\n"),
        "{}",
        done.stdout_text()
    );
    done.expect_stderr_contains("[network] denied an outgoing request to 192.0.2.1:80");
}
