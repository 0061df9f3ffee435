//! `HTTPS_PROXY`: a source is fetched through an HTTP `CONNECT` tunnel when the agent's
//! environment names a proxy, with the TLS session (and its certificate check) still end to end
//! with the source. Its own test binary: the environment is the process's. Needs no root.

mod support;

use std::{
    fs,
    sync::{Arc, Mutex},
};

use embargo::{
    config,
    inputs::sources::{Fetcher, spec},
};
use support::{Pki, Reply, Server};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

/// A CONNECT-only proxy on 127.0.0.1: records each CONNECT target and splices the tunnel.
async fn proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                continue;
            };
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
                log.lock()
                    .unwrap()
                    .push(head.lines().next().unwrap_or_default().to_owned());
                let Ok(mut upstream) = TcpStream::connect(&target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn https_proxy_is_used_through_a_connect_tunnel() {
    let (port, seen) = proxy().await;
    // SAFETY: this binary's only test sets them before any thread reads the environment.
    unsafe {
        std::env::set_var("HTTPS_PROXY", format!("http://127.0.0.1:{port}"));
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
    let server = Server::start(Arc::clone(&pki.server), |_| Reply::ok("74.120.172.10\n")).await;
    let main = dir.path().join("main.toml");
    fs::write(
        &main,
        format!(
            "enforce = [\"UK\"]\ncache_dir = \"cache\"\n[[sources]]\nname = \"feed\"\n\
             url = \"{}\"\nformat = \"list\"\nca_file = \"ca.pem\"\ntimeout = \"5s\"\n",
            server.url("/f")
        ),
    )
    .unwrap();
    let c = config::load(&main).unwrap();
    let f = Fetcher::new(Arc::new(spec::specs(&c).unwrap().remove(0))).unwrap();
    f.fetch().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        *seen.lock().unwrap(),
        [format!("CONNECT 127.0.0.1:{} HTTP/1.1", server.addr.port())]
    );
    assert_eq!(server.requests().len(), 1);
    // The tunnel does not weaken the certificate check: another CA's server is refused.
    let other = Pki::new();
    let untrusted =
        Server::start(Arc::clone(&other.server), |_| Reply::ok("74.120.172.10\n")).await;
    fs::write(
        &main,
        fs::read_to_string(&main)
            .unwrap()
            .replace(&server.url("/f"), &untrusted.url("/f")),
    )
    .unwrap();
    let c = config::load(&main).unwrap();
    let f = Fetcher::new(Arc::new(spec::specs(&c).unwrap().remove(0))).unwrap();
    let e = f.fetch().await.unwrap_err().to_string();
    assert!(e.contains("certificate"), "{e}");
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert!(untrusted.requests().is_empty());
}
