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

use std::{convert::Infallible, net::SocketAddr, time::Duration};

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
use tokio::{net::TcpListener, task::JoinHandle};

use crate::metrics::{self, Metrics};

/// A client that has not sent its request headers within this long is disconnected.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

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
        source: std::io::Error,
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
    /// shuts down.
    pub fn spawn(self, registry: Registry, metrics: Metrics) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let stream = match self.listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "metrics: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (registry, metrics) = (registry.clone(), metrics.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (registry, metrics) = (registry.clone(), metrics.clone());
                        async move { Ok::<_, Infallible>(respond(&req, registry, metrics).await) }
                    });
                    if let Err(e) = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(error = %e, "metrics: connection ended with an error");
                    }
                });
            }
        })
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
            // Reads the BPF maps (and may wait for the agent's lock): off the runtime workers.
            match tokio::task::spawn_blocking(move || metrics::render(&registry)).await {
                Ok(Ok(body)) => {
                    let mut r = text(StatusCode::OK, body);
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(prometheus::TEXT_FORMAT),
                    );
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
    use crate::metrics::Snapshot;

    /// One HTTP/1.0 request (the server closes after the response); status and body.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("{method} {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_owned(), body.to_owned())
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
