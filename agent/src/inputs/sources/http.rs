//! The HTTPS client of remote sources: hyper-util's client over hyper-rustls, with the rustls
//! configuration [`super::fetch::Fetcher::new`] builds (Mozilla's roots from `webpki-roots` plus
//! the source's `ca_file`, ring; no platform verifier, no native certificate store, no OpenSSL).
//!
//! What must stay true:
//! * https:// only: the connector refuses anything else, and so does a redirect;
//! * at most [`MAX_REDIRECTS`] redirects (301, 302, 303, 307, 308), each resolved against the
//!   URL it came from; credentials (`Authorization`, the URL's `user:password@`) are not sent on
//!   to another origin;
//! * a URL's `user:password@` is sent as HTTP basic authentication, never in the request line;
//! * `HTTPS_PROXY` (and `NO_PROXY`) in the agent's environment are honoured, as the HTTP client
//!   before this one did: through an HTTP `CONNECT` tunnel, so the TLS session (and its
//!   certificate check) is still with the source itself;
//! * a response's body is read chunk by chunk by the caller (the size cap is the caller's):
//!   dropping a [`Response`] closes its connection.

use std::{fmt, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::{HeaderMap, Request, StatusCode, Uri, body::Incoming, header, header::HeaderValue};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::{
        legacy::{
            Client as Legacy,
            connect::{HttpConnector, proxy::Tunnel},
        },
        proxy::matcher::Matcher,
    },
    rt::{TokioExecutor, TokioTimer},
};
use url::Url;

/// Redirects followed at most.
pub const MAX_REDIRECTS: usize = 5;

/// An idle connection is closed after this long: a source is fetched every `interval` (an hour
/// by default), so a kept connection would mostly sit open for nothing.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

fn builder() -> hyper_util::client::legacy::Builder {
    let mut b = Legacy::builder(TokioExecutor::new());
    b.pool_timer(TokioTimer::new())
        .pool_idle_timeout(IDLE_TIMEOUT);
    b
}

/// Why a request got no response: the message with its causes, one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(pub String);

#[derive(Clone)]
enum Inner {
    Direct(Legacy<HttpsConnector<HttpConnector>, Empty<Bytes>>),
    Proxied(Legacy<HttpsConnector<Tunnel<HttpConnector>>, Empty<Bytes>>),
}

/// The client of one source.
#[derive(Clone)]
pub struct Client {
    inner: Inner,
    user_agent: HeaderValue,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let via = match self.inner {
            Inner::Direct(_) => "direct",
            Inner::Proxied(_) => "HTTPS_PROXY",
        };
        write!(f, "Client({via})")
    }
}

/// A response whose body is still to be read.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
}

impl Response {
    /// `Content-Length`, if the server gave one.
    pub fn content_length(&self) -> Option<u64> {
        self.headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    }

    /// The next chunk of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(HttpError(super::fetch::chain(&e))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// `user:password` as a basic `Authorization` value, marked sensitive.
pub fn basic_auth(user: &str, password: &str) -> HeaderValue {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{password}");
    let mut out = String::from("Basic ");
    for chunk in raw.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    sensitive(&out)
}

/// A header value holding a secret: marked sensitive (never shown by the HTTP layers).
pub fn sensitive(text: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""));
    v.set_sensitive(true);
    v
}

/// Percent-decoded, for the URL's user and password.
fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The request target of `url` (without `user:password@`) and the basic authentication its
/// user and password make, if any.
fn target(url: &Url) -> Result<(Uri, Option<HeaderValue>), HttpError> {
    let auth = (!url.username().is_empty() || url.password().is_some()).then(|| {
        basic_auth(
            &decode(url.username()),
            &decode(url.password().unwrap_or_default()),
        )
    });
    let mut bare = url.clone();
    // Cannot fail on an https:// URL with a host.
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    bare.set_fragment(None);
    let uri = bare
        .as_str()
        .parse::<Uri>()
        .map_err(|e| HttpError(format!("not a request URL ({e})")))?;
    Ok((uri, auth))
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

impl Client {
    /// A client speaking HTTP/1.1 over `tls` only, for requests to `url` (whose host decides
    /// whether `HTTPS_PROXY` applies), connecting within `connect_timeout`.
    pub fn new(
        tls: rustls::ClientConfig,
        connect_timeout: Duration,
        url: &Url,
    ) -> Result<Self, HttpError> {
        let mut http = HttpConnector::new();
        // The TLS layer above it refuses anything that is not https://.
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        let tls = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1();
        let (uri, _) = target(url)?;
        let inner = match Matcher::from_env().intercept(&uri) {
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), http);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Inner::Proxied(builder().build(tls.wrap_connector(tunnel)))
            }
            None => Inner::Direct(builder().build(tls.wrap_connector(http))),
        };
        Ok(Self {
            inner,
            user_agent: HeaderValue::from_static(concat!("embargo/", env!("CARGO_PKG_VERSION"))),
        })
    }

    /// GET `url` with `headers`, following redirects (see the module docs).
    pub async fn get(&self, url: &Url, mut headers: HeaderMap) -> Result<Response, HttpError> {
        let mut url = url.clone();
        let mut redirects = 0;
        loop {
            if url.scheme() != "https" {
                return Err(HttpError(format!(
                    "redirect to a URL that is not https:// ({})",
                    super::spec::redact_url(url.as_str())
                )));
            }
            let (uri, url_auth) = target(&url)?;
            let mut req = Request::get(uri)
                .body(Empty::<Bytes>::new())
                .map_err(|e| HttpError(format!("building the request: {e}")))?;
            let h = req.headers_mut();
            h.insert(header::USER_AGENT, self.user_agent.clone());
            for (name, value) in &headers {
                h.insert(name, value.clone());
            }
            if let Some(a) = url_auth
                && !h.contains_key(header::AUTHORIZATION)
            {
                h.insert(header::AUTHORIZATION, a);
            }
            let resp = match &self.inner {
                Inner::Direct(c) => c.request(req).await,
                Inner::Proxied(c) => c.request(req).await,
            }
            .map_err(|e| HttpError(super::fetch::chain(&e)))?;
            let status = resp.status();
            let followed = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
            let location = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            match location {
                Some(location) if followed => {
                    if redirects == MAX_REDIRECTS {
                        return Err(HttpError(format!("more than {MAX_REDIRECTS} redirects")));
                    }
                    redirects += 1;
                    let next = url.join(&location).map_err(|e| {
                        HttpError(format!("a redirect to `{location}`, not a URL ({e})"))
                    })?;
                    if !same_origin(&url, &next) {
                        headers.remove(header::AUTHORIZATION);
                    }
                    url = next;
                }
                _ => {
                    let (parts, body) = resp.into_parts();
                    return Ok(Response {
                        status: parts.status,
                        headers: parts.headers,
                        body,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_base64_of_user_colon_password() {
        for (user, pw, want) in [
            ("reader", "pa:ss", "Basic cmVhZGVyOnBhOnNz"),
            ("a", "", "Basic YTo="),
            ("ab", "", "Basic YWI6"),
            (
                "Aladdin",
                "open sesame",
                "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            ),
        ] {
            let v = basic_auth(user, pw);
            assert_eq!(v.to_str().unwrap(), want);
            assert!(v.is_sensitive());
        }
    }

    #[test]
    fn url_credentials_become_basic_auth_and_leave_the_request_line() {
        let url: Url = "https://feed%20user:p%40ss+w@example.org:8443/a?b=1#frag"
            .parse()
            .unwrap();
        let (uri, auth) = target(&url).unwrap();
        assert_eq!(uri.to_string(), "https://example.org:8443/a?b=1");
        let want = basic_auth("feed user", "p@ss+w");
        assert_eq!(auth.unwrap(), want);
        let (_, none) = target(&"https://example.org/".parse().unwrap()).unwrap();
        assert!(none.is_none());
        let a: Url = "https://a.example/x".parse().unwrap();
        assert!(same_origin(&a, &a.join("/y").unwrap()));
        assert!(same_origin(&a, &"https://a.example:443/z".parse().unwrap()));
        assert!(!same_origin(&a, &"https://b.example/x".parse().unwrap()));
        assert!(!same_origin(
            &a,
            &"https://a.example:8443/x".parse().unwrap()
        ));
    }
}
