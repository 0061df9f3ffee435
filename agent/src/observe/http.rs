//! The metrics and health endpoints, served over HTTP/1.1 with hyper on the agent's runtime.
//!
//! * `GET /metrics`: every family in the registry, text exposition format 0.0.4;
//! * `GET /healthz`: 200 while the process runs (the runtime answers);
//! * `GET /readyz`: 200 when the policy is loaded and attached on every configured interface,
//!   else 503 with the reason ([`Metrics::readiness`]).
//!
//! Rendering reads BPF maps under the agent's lock, so it runs on a blocking thread, never on
//! the runtime's workers. The address is bound before anything is loaded, so a taken or
//! invalid address fails `embargo run` at startup with nothing attached.
//!
//! Bounded whatever clients do ([`Limits`]): at most `max_connections` at a time (one over the
//! cap is closed at once, before anything is read), each for at most `connection_deadline`, a
//! write that makes no progress for `write_timeout` ends its connection (a client that
//! pipelines requests and never reads the answers), request headers within [`HEADER_TIMEOUT`]
//! and [`MAX_BUF`] bytes. A failing `accept` (EMFILE) is logged at most once per
//! [`ACCEPT_LOG_EVERY`], with how many were not logged.

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::Registry;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    task::JoinHandle,
    time::{Instant, Sleep},
};

use crate::observe::metrics::{self, Metrics};

/// A client that has not sent its request headers within this long is disconnected.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer per connection (hyper's minimum is 8 KiB): a request's headers must fit.
const MAX_BUF: usize = 16 * 1024;
/// A failing `accept` is logged at most this often.
pub const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// What one client may hold of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at the same time; one more is closed at once.
    pub max_connections: usize,
    /// A connection is asked to close after this long (an answer being written finishes, for
    /// at most `write_timeout` more); Prometheus reconnects for its next scrape.
    pub connection_deadline: Duration,
    /// A write that makes no progress for this long ends the connection.
    pub write_timeout: Duration,
}

impl Default for Limits {
    /// 128 connections (a scraper or two and probes need a handful; the unit's LimitNOFILE
    /// leaves room for far more), 60 s each, 10 s per write.
    fn default() -> Self {
        Self {
            max_connections: 128,
            connection_deadline: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the endpoints could not be served.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address is taken, not local, or not permitted.
    #[error(
        "cannot listen for metrics on {addr}: {source}; free the address or choose another with `[metrics] listen` in the config or `--metrics-listen`"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// A bound listener, not yet serving.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
}

/// Binds `addr` (port 0 picks a free port; see [`Server::local_addr`]).
pub async fn bind(addr: SocketAddr) -> Result<Server, HttpError> {
    let bind_err = |source| HttpError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    Ok(Server { listener, addr })
}

impl Server {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `registry` and `metrics`' readiness until the task is aborted or the runtime
    /// shuts down, within the default [`Limits`].
    pub fn spawn(self, registry: Registry, metrics: Metrics) -> JoinHandle<()> {
        self.spawn_with(registry, metrics, Limits::default())
    }

    /// [`Server::spawn`] within `limits`.
    pub fn spawn_with(
        self,
        registry: Registry,
        metrics: Metrics,
        limits: Limits,
    ) -> JoinHandle<()> {
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        tokio::spawn(async move {
            let mut accept_log = RateLimited::new(ACCEPT_LOG_EVERY);
            loop {
                let stream = match self.listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and the like: back off instead of spinning, and say it once
                        // in a while, not for every attempt.
                        if let Some(suppressed) = accept_log.hit(Instant::now()) {
                            tracing::warn!(error = %e, suppressed, "metrics: accept failed");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Over the cap: closed before anything is read or written.
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    tracing::debug!(
                        "metrics: connection refused, {} already open",
                        limits.max_connections
                    );
                    drop(stream);
                    continue;
                };
                let (registry, metrics) = (registry.clone(), metrics.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    serve_one(stream, registry, metrics, limits).await;
                });
            }
        })
    }
}

/// Serves one connection within `limits`; returns when it is closed.
async fn serve_one(stream: TcpStream, registry: Registry, metrics: Metrics, limits: Limits) {
    let service = service_fn(move |req| {
        let (registry, metrics) = (registry.clone(), metrics.clone());
        async move { Ok::<_, Infallible>(respond(&req, registry, metrics).await) }
    });
    let io = TokioIo::new(WriteTimeout::new(stream, limits.write_timeout));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_BUF)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let result = match tokio::time::timeout(limits.connection_deadline, conn.as_mut()).await {
        Ok(r) => r,
        Err(_) => {
            // The deadline: finish the answer in flight (each write within write_timeout),
            // then close; a connection that still has not finished is dropped.
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(limits.write_timeout, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::debug!("metrics: connection dropped at its deadline");
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "metrics: connection ended with an error");
    }
}

/// Says when a repeated event should be logged: the first time, then at most once per
/// `every`, with how many were not logged in between.
#[derive(Debug)]
pub struct RateLimited {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimited {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// One occurrence at `now`: `Some(events not logged since the last logged one)` when this
    /// one should be logged.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// A stream whose writes fail with `TimedOut` when they make no progress for `timeout`: a
/// client that stops reading cannot hold its connection (and its answers) forever.
struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write is pending.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// After a write-side poll returned `Pending`: fails once the wait is over `timeout`.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing for {}",
                    humantime::format_duration(timeout)
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn done<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.pending(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.done(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.done(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.done(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.done(r, cx)
    }
}

async fn respond<B>(
    req: &Request<B>,
    registry: Registry,
    metrics: Metrics,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            let gzip = accepts_gzip(req.headers());
            // Reads the BPF maps (and may wait for the agent's lock), and compresses: off the
            // runtime workers.
            let rendered = tokio::task::spawn_blocking(move || {
                metrics::render(&registry).map(|body| {
                    if gzip {
                        (gzipped(body.as_bytes()), true)
                    } else {
                        (Bytes::from(body), false)
                    }
                })
            });
            match rendered.await {
                Ok(Ok((body, gzipped))) => {
                    let mut r = Response::new(Full::new(body));
                    let h = r.headers_mut();
                    h.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(prometheus::TEXT_FORMAT),
                    );
                    // Caches between Prometheus and the agent keep the two forms apart.
                    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
                    if gzipped {
                        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    }
                    r
                }
                Ok(Err(e)) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("encoding metrics: {e}\n"),
                ),
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("rendering metrics: {e}\n"),
                ),
            }
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match tokio::task::spawn_blocking(move || metrics.readiness()).await {
            Ok(Ok(())) => text(StatusCode::OK, "ready\n".into()),
            Ok(Err(reason)) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            ),
            Err(e) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: checking failed: {e}\n"),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

/// Whether the request's `Accept-Encoding` takes gzip (Prometheus sends `gzip`): a `gzip` or
/// `*` coding whose quality is not 0. Linear in the header; a malformed one means no.
fn accepts_gzip(headers: &hyper::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            if !(name.eq_ignore_ascii_case("gzip") || name == "*") {
                return false;
            }
            // `q=0` (or 0.0, 0.00...) refuses the coding.
            !parts.any(|p| {
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            })
        })
}

/// `body` gzip-compressed at the fastest level: the text exposition format compresses about
/// tenfold even so, and a scrape should not cost the agent more CPU than it saves the network.
fn gzipped(body: &[u8]) -> Bytes {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    enc.write_all(body).expect("writing to a Vec cannot fail");
    Bytes::from(enc.finish().expect("writing to a Vec cannot fail"))
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::observe::metrics::Snapshot;

    /// One HTTP/1.0 request (the server closes after the response); status and body.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
        let (status, head, body) = request_with(addr, method, path, "").await;
        (status, head, String::from_utf8(body).unwrap())
    }

    /// As [`request`], with extra header lines (each ending in CRLF) and the raw body.
    async fn request_with(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &str,
    ) -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("{method} {path} HTTP/1.0\r\nHost: test\r\n{headers}\r\n").as_bytes())
            .await
            .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head, raw[split + 4..].to_vec())
    }

    /// Prometheus asks for gzip: the body is the same text, compressed, and says so; a client
    /// that does not ask (or refuses gzip with q=0) gets plain text.
    #[tokio::test]
    async fn metrics_are_gzipped_when_the_scraper_accepts_it() {
        use std::io::Read as _;
        let (addr, metrics) = serve().await;
        metrics.reload_succeeded(1.0, "abc");
        let (_, _, plain) = request_with(addr, "GET", "/metrics", "").await;
        let plain = String::from_utf8(plain).unwrap();
        assert!(
            plain.contains("embargo_policy_info{digest=\"abc\"} 1"),
            "{plain}"
        );

        let prometheus = "Accept-Encoding: gzip\r\n";
        let (status, head, body) = request_with(addr, "GET", "/metrics", prometheus).await;
        assert_eq!(status, 200, "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("content-encoding: gzip"), "{head}");
        assert!(lower.contains("vary: accept-encoding"), "{head}");
        assert!(
            body.len() < plain.len(),
            "{} >= {}",
            body.len(),
            plain.len()
        );
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        // The same series (the scrape-time gauges may differ by their own values only).
        let names = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| l.starts_with("# TYPE"))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(names(&text), names(&plain));

        for refused in [
            "Accept-Encoding: gzip;q=0\r\n",
            "Accept-Encoding: br, deflate\r\n",
        ] {
            let (_, head, body) = request_with(addr, "GET", "/metrics", refused).await;
            assert!(
                !head.to_ascii_lowercase().contains("content-encoding"),
                "{refused}: {head}"
            );
            assert!(
                String::from_utf8(body)
                    .unwrap()
                    .contains("embargo_policy_info")
            );
        }
    }

    #[test]
    fn accept_encoding_is_read_as_http_says() {
        let h = |v: &str| {
            let mut m = hyper::HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&m)
        };
        assert!(h("gzip"));
        assert!(h("GZIP"));
        assert!(h("identity, gzip;q=0.5"));
        assert!(h("*"));
        assert!(!h("gzip;q=0"));
        assert!(!h("gzip; q=0.000"));
        assert!(!h("deflate, br"));
        assert!(!h(""));
        assert!(!accepts_gzip(&hyper::HeaderMap::new()));
    }

    async fn serve() -> (SocketAddr, Metrics) {
        let registry = Registry::new();
        let metrics = Metrics::register(&registry).unwrap();
        let server = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = server.local_addr();
        server.spawn(registry, metrics.clone());
        (addr, metrics)
    }

    #[tokio::test]
    async fn endpoints_answer_with_status_and_body() {
        let (addr, metrics) = serve().await;
        let (status, head, body) = request(addr, "GET", "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"), "{head}");

        let (status, _, body) = request(addr, "GET", "/readyz").await;
        assert_eq!(status, 503);
        assert!(body.contains("the policy is not loaded yet"), "{body}");

        metrics.set_source(|_: bool| {
            Ok(Snapshot {
                configured: vec!["eth9".into()],
                ..Snapshot::default()
            })
        });
        let (status, _, body) = request(addr, "GET", "/readyz").await;
        assert_eq!(status, 503);
        assert!(body.contains("not attached on eth9"), "{body}");

        metrics.reload_succeeded(1.0, "abc");
        let (status, head, body) = request(addr, "GET", "/metrics").await;
        assert_eq!(status, 200, "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert!(
            body.contains("embargo_policy_info{digest=\"abc\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("# TYPE embargo_ready gauge\nembargo_ready 0\n"),
            "{body}"
        );

        let (status, _, body) = request(addr, "HEAD", "/metrics").await;
        assert_eq!((status, body.as_str()), (200, ""));
        let (status, _, _) = request(addr, "GET", "/nope").await;
        assert_eq!(status, 404);
        let (status, head, _) = request(addr, "POST", "/metrics").await;
        assert_eq!(status, 405);
        assert!(
            head.to_ascii_lowercase().contains("allow: get, head"),
            "{head}"
        );
    }

    /// Clients that pipeline thousands of requests and never read the answers: the ones over
    /// the cap are closed at once, the others when their writes stall or at their deadline,
    /// and /healthz answers throughout (a retry while the cap is full is allowed).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clients_that_pipeline_and_never_read_cannot_hold_the_server() {
        let limits = Limits {
            max_connections: 8,
            connection_deadline: Duration::from_secs(4),
            write_timeout: Duration::from_millis(500),
        };
        let registry = Registry::new();
        let metrics = Metrics::register(&registry).unwrap();
        let server = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = server.local_addr();
        server.spawn_with(registry, metrics, limits);

        let pipelined = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n".repeat(3000);
        let mut stuck = Vec::new();
        for _ in 0..40 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let mut s = socket.connect(addr).await.unwrap();
            let _ = tokio::time::timeout(
                Duration::from_millis(200),
                s.write_all(pipelined.as_bytes()),
            )
            .await;
            stuck.push(s);
        }
        let started = std::time::Instant::now();
        let healthz = async {
            loop {
                let attempt = tokio::time::timeout(Duration::from_secs(1), async {
                    let mut s = TcpStream::connect(addr).await.ok()?;
                    s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").await.ok()?;
                    let mut raw = String::new();
                    s.read_to_string(&mut raw).await.ok()?;
                    raw.starts_with("HTTP/1.0 200").then_some(())
                })
                .await;
                if let Ok(Some(())) = attempt {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), healthz)
            .await
            .expect("/healthz answered within 5 s");
        // Every stuck connection is closed by the server: reading drains what was sent and
        // then sees the end (an open connection would block here).
        let mut closing = tokio::task::JoinSet::new();
        for mut s in stuck {
            closing.spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            });
        }
        let all = async { while closing.join_next().await.is_some() {} };
        tokio::time::timeout(Duration::from_secs(12), all)
            .await
            .expect("the server closed every stuck connection");
        assert!(started.elapsed() < Duration::from_secs(17));
    }

    #[test]
    fn repeated_log_lines_are_rate_limited() {
        let t0 = Instant::now();
        let mut log = RateLimited::new(Duration::from_secs(10));
        assert_eq!(log.hit(t0), Some(0));
        for i in 1..1000 {
            assert_eq!(log.hit(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(log.hit(t0 + Duration::from_secs(10)), Some(999));
        assert_eq!(log.hit(t0 + Duration::from_secs(11)), None);
    }

    #[tokio::test]
    async fn a_taken_address_is_a_bind_error_that_says_what_to_do() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind(addr).await.err().expect("the address is taken");
        let text = e.to_string();
        assert!(text.contains(&addr.to_string()), "{text}");
        assert!(text.contains("--metrics-listen"), "{text}");
        assert!(matches!(e, HttpError::Bind { .. }));
    }
}
