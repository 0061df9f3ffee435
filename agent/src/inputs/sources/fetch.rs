//! One fetch of one source: a conditional GET over rustls (the public roots plus the source's
//! `ca_file`; verification cannot be turned off), within `timeout` and `max_bytes`, then the pin,
//! the signature, the parser and the guard, and only then the new last-known-good copy. Any failure leaves
//! the previous copy as it was.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use hyper::{
    HeaderMap, StatusCode,
    header::{self, HeaderValue},
};

use super::{
    cache::{self, CacheError, Meta},
    parse::{self, LineError, Skipped},
    spec::{Format, SourceSpec},
    verify::{self, VerifyError},
};

/// What one successful fetch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 200 whose body passed every check and is now the last-known-good copy.
    Updated {
        /// Whether it differs from the previous copy (false for the same bytes again).
        changed: bool,
        entries: usize,
        sha256: String,
        /// What the parse left out (skipped bad lines, rows of other types).
        skipped: Skipped,
    },
    /// A 304: the copy is current.
    NotModified {
        entries: usize,
        sha256: String,
        /// What the copy's parse left out.
        skipped: Skipped,
    },
}

impl Outcome {
    /// Whether the source's content changed.
    pub fn changed(&self) -> bool {
        matches!(self, Outcome::Updated { changed: true, .. })
    }
}

/// Why a fetch failed. The previous copy is kept in every case.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No response: connection refused, DNS, TLS (an untrusted certificate), a body cut short.
    #[error("{message}")]
    Transport { message: String },
    /// The whole fetch took longer than `timeout`.
    #[error("no complete answer within the {} timeout", humantime::format_duration(*after))]
    Timeout { after: Duration },
    /// The server answered with an error status.
    #[error("the server answered {status}")]
    Status { status: StatusCode },
    /// The body is over `max_bytes`.
    #[error("the body is over max_bytes = {max}{}", declared.map(|d| format!(" (Content-Length: {d})")).unwrap_or_default())]
    TooLarge { max: u64, declared: Option<u64> },
    /// The pin or the signature refused the body.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// `<url>.minisig` could not be fetched.
    #[error("fetching the signature {url}: {message}")]
    Signature { url: String, message: String },
    /// The body is not UTF-8.
    #[error("the body is not UTF-8 text")]
    NotUtf8,
    /// A line of the body is bad: the whole body is refused.
    #[error("{0}; the whole body is refused")]
    BadLine(LineError),
    /// A prefix of the body is broader than the guard allows ([`super::guard`]): the whole
    /// body is refused, so a restart cannot find it as the last-known-good copy.
    #[error("{0}; the whole body is refused")]
    Guard(LineError),
    /// The body lists nothing: an empty answer is far more often a broken feed than an
    /// emptied list, so it is refused.
    #[error("the body lists no prefixes; an empty feed is refused")]
    Empty,
    /// A 304 although there is no copy to keep.
    #[error("the server answered 304 Not Modified but there is no cached copy")]
    NotModifiedWithoutCopy,
    /// The new copy could not be stored.
    #[error(transparent)]
    Cache(Box<CacheError>),
    /// The HTTP client could not be built.
    #[error("building the HTTPS client: {message}")]
    Client { message: String },
    /// A TAXII collection could not be read whole ([`super::taxii`]): a page's status, media
    /// type or envelope, its paging, or an object the STIX importer refuses. The message says
    /// which page and object, and what to do.
    #[error("{message}")]
    Taxii { message: String },
}

impl From<CacheError> for FetchError {
    fn from(e: CacheError) -> Self {
        FetchError::Cache(Box::new(e))
    }
}

/// A failed fetch of a named source.
#[derive(Debug, thiserror::Error)]
#[error("source `{name}` ({url}): {error}")]
pub struct SourceError {
    pub name: String,
    pub url: String,
    #[source]
    pub error: FetchError,
}

/// Fetches one source; holds its HTTPS client.
#[derive(Clone, Debug)]
pub struct Fetcher {
    pub spec: Arc<SourceSpec>,
    client: super::http::Client,
}

/// An error and its causes, as one line: the HTTP client's own message hides the TLS or I/O
/// reason. Credentials of any URL quoted in it are hidden.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    super::spec::redact_url(&chain_raw(e))
}

fn chain_raw(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

pub(super) fn transport(e: super::http::HttpError) -> FetchError {
    FetchError::Transport {
        message: super::spec::redact_url(&e.0),
    }
}

impl Fetcher {
    /// Builds the source's HTTPS client: rustls with ring, Mozilla's roots plus `ca_file`,
    /// HTTPS only (redirects to `http:` refused), no compression.
    pub fn new(spec: Arc<SourceSpec>) -> Result<Self, FetchError> {
        let client_err = |m: String| FetchError::Client { message: m };
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for c in &spec.ca_certs {
            roots
                .add(c.clone())
                .map_err(|e| client_err(e.to_string()))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| client_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let client = super::http::Client::new(tls, spec.timeout, &spec.url)
            .map_err(|e| client_err(super::spec::redact_url(&e.0)))?;
        Ok(Self { spec, client })
    }

    /// Fetches the source once and, if the body passes, stores it as the last-known-good copy.
    pub async fn fetch(&self) -> Result<Outcome, SourceError> {
        let spec = &self.spec;
        let result = match tokio::time::timeout(spec.timeout, self.fetch_inner()).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout {
                after: spec.timeout,
            }),
        };
        result.map_err(|error| SourceError {
            name: spec.name.clone(),
            url: spec.shown_url(),
            error,
        })
    }

    async fn fetch_inner(&self) -> Result<Outcome, FetchError> {
        let spec = &self.spec;
        // Validators are sent only for a copy that is usable: a damaged one, or one that fails
        // the guard (stored by an older agent), gets a full fetch.
        let previous = cache::load(spec)
            .ok()
            .filter(|p| accept(spec, &p.body).is_ok());
        if let Format::Taxii { .. } = spec.format {
            // Every page, then the same checks as any body; errors named by page and object.
            let collection = super::taxii::fetch_collection(&self.client, spec).await?;
            return self
                .keep(
                    previous,
                    collection.body.as_bytes().to_vec(),
                    None,
                    (None, None),
                )
                .map_err(|e| collection.explain(e));
        }
        let mut headers = HeaderMap::new();
        if let Some(p) = &previous {
            // Validators the server gave; one that is not a valid header value is not sent.
            if let Some(etag) = p
                .meta
                .etag
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                headers.insert(header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = p
                .meta
                .last_modified
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                headers.insert(header::IF_MODIFIED_SINCE, lm);
            }
        }
        let resp = self
            .client
            .get(&spec.url, headers)
            .await
            .map_err(transport)?;
        let now = Utc::now();
        let text_header = |name: header::HeaderName| {
            resp.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = text_header(header::ETAG);
        let last_modified = text_header(header::LAST_MODIFIED);
        if resp.status == StatusCode::NOT_MODIFIED {
            let Some(p) = previous else {
                return Err(FetchError::NotModifiedWithoutCopy);
            };
            let meta = Meta {
                etag: etag.or(p.meta.etag),
                last_modified: last_modified.or(p.meta.last_modified),
                checked_at: now,
                ..p.meta
            };
            cache::store_meta(spec, &meta)?;
            return Ok(Outcome::NotModified {
                entries: meta.entries,
                sha256: meta.sha256,
                skipped: meta.skipped,
            });
        }
        if !resp.status.is_success() {
            return Err(FetchError::Status {
                status: resp.status,
            });
        }
        let body = read_capped(resp, spec.max_bytes).await?;
        let signature = match &spec.minisign_key {
            Some(_) => Some(self.signature().await?),
            None => None,
        };
        self.keep(previous, body, signature, (etag, last_modified))
    }

    /// Checks a fetched body (pin, signature, parse, guard) and stores it as the new
    /// last-known-good copy with its validators (`ETag`, `Last-Modified`).
    fn keep(
        &self,
        previous: Option<cache::Cached>,
        body: Vec<u8>,
        signature: Option<String>,
        (etag, last_modified): (Option<String>, Option<String>),
    ) -> Result<Outcome, FetchError> {
        let spec = &self.spec;
        let now = Utc::now();
        let sha256 = verify::verify(spec, &body, signature.as_deref())?;
        let text = std::str::from_utf8(&body).map_err(|_| FetchError::NotUtf8)?;
        let (entries, skipped) = accept_parsed(spec, text)?;
        if entries == 0 {
            return Err(FetchError::Empty);
        }
        // The same bytes can hold other entries on another day (a TAXII indicator's validity).
        let changed = previous
            .as_ref()
            .is_none_or(|p| p.meta.sha256 != sha256 || p.meta.entries != entries);
        let (url, url_sha256) = Meta::url_of(spec);
        let meta = Meta {
            url,
            url_sha256,
            etag,
            last_modified,
            sha256: sha256.clone(),
            fetched_at: now,
            checked_at: now,
            entries,
            skipped: skipped.clone(),
        };
        cache::store(spec, &body, signature.as_deref(), &meta)?;
        Ok(Outcome::Updated {
            changed,
            entries,
            sha256,
            skipped,
        })
    }

    /// Fetches `<url>.minisig`.
    async fn signature(&self) -> Result<String, FetchError> {
        let url = self.spec.signature_url();
        let err = |message: String| FetchError::Signature {
            url: super::spec::redact_url(url.as_str()),
            message,
        };
        let resp = self
            .client
            .get(&url, HeaderMap::new())
            .await
            .map_err(|e| err(super::spec::redact_url(&e.0)))?;
        if !resp.status.is_success() {
            return Err(err(format!("the server answered {}", resp.status)));
        }
        let bytes = read_capped(resp, verify::MAX_SIGNATURE_BYTES)
            .await
            .map_err(|e| err(e.to_string()))?;
        String::from_utf8(bytes).map_err(|_| err("not UTF-8 text".into()))
    }
}

/// Parses `text` as `spec`'s format and runs the guard on its prefixes: how many entries it
/// holds, or why it is refused. What a body passes before it is stored.
pub fn accept(spec: &SourceSpec, text: &str) -> Result<usize, FetchError> {
    accept_parsed(spec, text).map(|(n, _)| n)
}

/// [`accept`], with what the parse left out (`on_bad_line = "skip"`, `type_column`).
pub fn accept_parsed(spec: &SourceSpec, text: &str) -> Result<(usize, Skipped), FetchError> {
    match &spec.format {
        Format::Sanctions(_) => parse::count(&spec.format, text)
            .map(|n| (n, Skipped::default()))
            .map_err(FetchError::BadLine),
        _ => {
            let parsed = parse::parse_source(spec, text).map_err(FetchError::BadLine)?;
            spec.guard
                .check(&parsed.entries)
                .map_err(FetchError::Guard)?;
            Ok((parsed.entries.len(), parsed.skipped))
        }
    }
}

/// Reads a body, stopping as soon as it passes `max` bytes: never more than `max` plus one
/// chunk is held.
pub(super) async fn read_capped(
    mut resp: super::http::Response,
    max: u64,
) -> Result<Vec<u8>, FetchError> {
    let declared = resp.content_length();
    if let Some(len) = declared
        && len > max
    {
        return Err(FetchError::TooLarge {
            max,
            declared: Some(len),
        });
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(max) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(FetchError::TooLarge {
                max,
                declared: None,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
