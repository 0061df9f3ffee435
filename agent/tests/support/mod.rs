//! What the agent's integration tests share:
//!
//! - the one runner of the `embargo` binary under test ([`embargo`], [`command`]), from the
//!   workspace root so relative paths such as `config/default.toml` resolve, with [`stdout`]
//!   and [`stderr`] as text;
//! - a small HTTPS/1.1 server for the source tests, on 127.0.0.1 only, with a test CA made per
//!   test run (rcgen) and a hand-written HTTP layer so a test can misbehave on purpose: stall,
//!   cut a body short, lie about or omit its length, or never end.
//!
//! Each test file includes it with `mod support;` and uses a part of it.
#![allow(
    dead_code,
    reason = "each test binary uses its own part of the support"
)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::{Command, Output},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    task::JoinHandle,
};

// ---------------------------------------------------------------------------------------------
// The `embargo` binary

/// The workspace root, where the runner starts the binary.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// `embargo ARGS` ready to run from the workspace root (add arguments, input or pipes).
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_embargo"));
    cmd.args(args).current_dir(ROOT);
    cmd
}

/// Runs `embargo ARGS` from the workspace root to its end.
pub fn embargo(args: &[&str]) -> Output {
    command(args).output().expect("run embargo")
}

/// A run's standard output, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A run's standard error, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The HTTPS server

/// A test CA and a server certificate it issued for 127.0.0.1 and localhost.
pub struct Pki {
    /// The CA certificate, PEM: what a source's `ca_file` holds.
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

impl Pki {
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "embargo test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let cert = params.signed_by(&key, &issuer).unwrap();

        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            server: Arc::new(server),
        }
    }
}

/// A request as the server read it.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
}

/// How the body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// An honest Content-Length.
    Length,
    /// Content-Length claims this many bytes; the body is sent and the connection closed.
    Claim(usize),
    /// No Content-Length: the body, then close.
    Close,
    /// No Content-Length: the body repeated forever (until the client hangs up).
    Endless,
    /// Chunked encoding, the body repeated forever.
    ChunkedEndless,
}

/// What the server answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub framing: Framing,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            framing: Framing::Length,
            delay: Duration::ZERO,
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::ok(Vec::new())
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// The server; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    body_bytes_sent: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Serves HTTPS on 127.0.0.1 (a free port) with `tls`, answering with `handler`.
    pub async fn start(
        tls: Arc<rustls::ServerConfig>,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let task = {
            let requests = Arc::clone(&requests);
            let sent = Arc::clone(&sent);
            tokio::spawn(async move {
                // Connections live in this set: stopping the server closes them too (a client's
                // pooled keep-alive connection must not outlive it).
                let mut connections = tokio::task::JoinSet::new();
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    while connections.try_join_next().is_some() {}
                    let acceptor = acceptor.clone();
                    let handler = Arc::clone(&handler);
                    let requests = Arc::clone(&requests);
                    let sent = Arc::clone(&sent);
                    connections.spawn(async move {
                        // A client that refuses the certificate ends the handshake: fine.
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let _ = serve(tls, handler, requests, sent).await;
                        }
                    });
                }
            })
        };
        Self {
            addr,
            requests,
            body_bytes_sent: sent,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Body bytes written so far, over every connection.
    pub fn body_bytes_sent(&self) -> u64 {
        self.body_bytes_sent.load(Ordering::Relaxed)
    }
}

async fn serve(
    mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    handler: Arc<Handler>,
    requests: Arc<Mutex<Vec<Request>>>,
    sent: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // Read one request head (GET: no body).
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = tls.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("/")
            .to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let req = Request { path, headers };
        requests.lock().unwrap().push(req.clone());
        let reply = handler(&req);
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let mut out = format!("HTTP/1.1 {} X\r\n", reply.status);
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        match reply.framing {
            Framing::Length => out.push_str(&format!("Content-Length: {}\r\n", reply.body.len())),
            Framing::Claim(n) => {
                out.push_str(&format!("Content-Length: {n}\r\nConnection: close\r\n"))
            }
            Framing::Close | Framing::Endless => out.push_str("Connection: close\r\n"),
            Framing::ChunkedEndless => out.push_str("Transfer-Encoding: chunked\r\n"),
        }
        out.push_str("\r\n");
        tls.write_all(out.as_bytes()).await?;
        match reply.framing {
            Framing::Length => {
                tls.write_all(&reply.body).await?;
                sent.fetch_add(reply.body.len() as u64, Ordering::Relaxed);
                tls.flush().await?;
                continue;
            }
            Framing::Claim(_) | Framing::Close => {
                tls.write_all(&reply.body).await?;
                sent.fetch_add(reply.body.len() as u64, Ordering::Relaxed);
            }
            Framing::Endless => loop {
                tls.write_all(&reply.body).await?;
                sent.fetch_add(reply.body.len() as u64, Ordering::Relaxed);
            },
            Framing::ChunkedEndless => loop {
                let mut chunk = format!("{:x}\r\n", reply.body.len()).into_bytes();
                chunk.extend_from_slice(&reply.body);
                chunk.extend_from_slice(b"\r\n");
                tls.write_all(&chunk).await?;
                sent.fetch_add(reply.body.len() as u64, Ordering::Relaxed);
            },
        }
        tls.flush().await?;
        tls.shutdown().await?;
        return Ok(());
    }
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}
