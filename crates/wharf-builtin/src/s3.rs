//! `s3.upload`, `s3.download`, `s3.list` and `s3.delete` (Dagu 2.x): objects moved to,
//! from or within an S3-compatible store over its REST API, every request signed with AWS
//! Signature Version 4 (the payload's SHA-256 in the signature: an upload's file is read
//! twice, once to hash it, once to send it, never whole in memory).
//!
//! The bucket and connection come from `with` over the DAG's `s3:`; credentials from
//! `access_key_id`/`secret_access_key` (and `session_token`), else the step's
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, else the profile
//! (`profile`, `AWS_PROFILE`, `default`) of `~/.aws/credentials`. A custom `endpoint`
//! (MinIO, Ceph, any S3-compatible store) is addressed by path (`force_path_style`, or
//! always for an IP address or `localhost`); AWS by virtual host.

use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame};
use hyper::{Method, Request, StatusCode};
use serde_json::{Map, Value, json};
use wharf_engine::StepJob;
use wharf_spec::S3Op;

use crate::{Ended, Output};

type Body = BoxBody<Bytes, std::io::Error>;

/// The SHA-256 of nothing, the payload hash of a request without a body.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
];

const ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

pub(crate) async fn run(
    op: S3Op,
    with: &Map<String, Value>,
    dir: &Path,
    job: &StepJob,
    out: &mut Output,
) -> Ended {
    let work = async {
        let store = Store::of(with, job)?;
        match op {
            S3Op::Upload => upload(&store, with, dir).await,
            S3Op::Download => download(&store, with, dir).await,
            S3Op::List => list(&store, with).await,
            S3Op::Delete => delete(&store, with).await,
        }
    };
    let result = tokio::select! {
        r = work => r,
        () = job.stop.cancelled() => return Ended::Stopped,
    };
    match result {
        Ok(text) => {
            out.stdout(text.as_bytes()).await;
            Ended::Done
        }
        Err(e) => Ended::Failed(e),
    }
}

fn text<'a>(with: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    with.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn flag(with: &Map<String, Value>, key: &str) -> bool {
    match with.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// A bucket and how to reach it.
struct Store {
    bucket: String,
    /// `http` or `https`.
    scheme: &'static str,
    /// The endpoint's host (and port).
    host: String,
    path_style: bool,
    region: String,
    key_id: String,
    secret: String,
    token: Option<String>,
}

impl Store {
    fn of(with: &Map<String, Value>, job: &StepJob) -> Result<Self, String> {
        let env = |name: &str| {
            job.env
                .get(name)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let bucket = text(with, "bucket").ok_or("bucket is required")?.to_owned();
        let region = text(with, "region")
            .map(str::to_owned)
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let plain = flag(with, "disable_ssl");
        let (scheme, host) = match text(with, "endpoint") {
            Some(e) => match e.split_once("://") {
                Some(("http", rest)) => ("http", rest),
                Some(("https", rest)) => ("https", rest),
                Some((other, _)) => {
                    return Err(format!("`endpoint` is http:// or https://, not {other}://"));
                }
                None => (if plain { "http" } else { "https" }, e),
            },
            None => (
                if plain { "http" } else { "https" },
                // Made below, once the region is known.
                "",
            ),
        };
        let host = if host.is_empty() {
            format!("s3.{region}.amazonaws.com")
        } else {
            host.trim_end_matches('/').to_owned()
        };
        let bare = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        let path_style = flag(with, "force_path_style")
            || bare == "localhost"
            || bare.parse::<std::net::IpAddr>().is_ok()
            || bare.starts_with('[')
            || bucket.contains('.');
        let (key_id, secret, token) = credentials(with, &env)?;
        Ok(Self {
            bucket,
            scheme,
            host,
            path_style,
            region,
            key_id,
            secret,
            token,
        })
    }

    /// A signed request for `key` (None: the bucket) with `query` and `headers`.
    fn request(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(&str, String)],
        headers: &[(String, String)],
        payload_sha256: &str,
        body: Body,
    ) -> Result<Request<Body>, String> {
        let (host, mut path) = if self.path_style {
            (
                self.host.clone(),
                format!("/{}", uri_encode(&self.bucket, false)),
            )
        } else {
            (format!("{}.{}", self.bucket, self.host), String::new())
        };
        match key {
            Some(k) => {
                path.push('/');
                path.push_str(&uri_encode(k, false));
            }
            None if path.is_empty() => path.push('/'),
            None => {}
        }
        let mut q: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
            .collect();
        q.sort();
        let query_text = q
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let now = jiff::Timestamp::now();
        let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
        let day = &stamp[..8];
        let mut signed: Vec<(String, String)> = vec![
            ("host".into(), host.clone()),
            ("x-amz-content-sha256".into(), payload_sha256.to_owned()),
            ("x-amz-date".into(), stamp.clone()),
        ];
        if let Some(t) = &self.token {
            signed.push(("x-amz-security-token".into(), t.clone()));
        }
        for (k, v) in headers {
            signed.push((k.to_ascii_lowercase(), v.trim().to_owned()));
        }
        signed.sort();
        let canonical_headers: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let names = signed
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canonical = format!(
            "{method}\n{path}\n{query_text}\n{canonical_headers}\n{names}\n{payload_sha256}"
        );
        let scope = format!("{day}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
        );
        let mut signing = hmac(format!("AWS4{}", self.secret).as_bytes(), day.as_bytes());
        for part in [self.region.as_str(), "s3", "aws4_request"] {
            signing = hmac(&signing, part.as_bytes());
        }
        let signature = hex(&hmac(&signing, to_sign.as_bytes()));
        let uri = if query_text.is_empty() {
            format!("{}://{host}{path}", self.scheme)
        } else {
            format!("{}://{host}{path}?{query_text}", self.scheme)
        };
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in &signed {
            if k != "host" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        req = req.header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={names}, Signature={signature}",
                self.key_id
            ),
        );
        req.body(body)
            .map_err(|e| format!("the request cannot be made: {e}"))
    }

    /// Sends `req`; the answer's status and body, or the store's error as text.
    async fn send(&self, req: Request<Body>) -> Result<(StatusCode, Bytes), String> {
        let client = crate::http::client_for::<Body>(false)?;
        let answer = client
            .request(req)
            .await
            .map_err(|e| crate::http::chain(&e))?;
        let status = answer.status();
        let body = answer
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("the answer was cut: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}

/// The store's error: its code and message (`NoSuchKey: The specified key does not
/// exist.`), else the HTTP status.
fn failure(status: StatusCode, body: &[u8]) -> String {
    let xml = String::from_utf8_lossy(body);
    let code = inner(&xml, "Code").next().map(unescape);
    let message = inner(&xml, "Message").next().map(unescape);
    match (code, message) {
        (Some(c), Some(m)) => format!("{c}: {m} (HTTP {})", status.as_u16()),
        (Some(c), None) => format!("{c} (HTTP {})", status.as_u16()),
        _ => format!("HTTP {}", status.as_u16()),
    }
}

/// Credentials from `with`, the step's environment, or a profile of the shared
/// credentials file.
fn credentials(
    with: &Map<String, Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, String, Option<String>), String> {
    if let (Some(id), Some(secret)) = (text(with, "access_key_id"), text(with, "secret_access_key"))
    {
        return Ok((
            id.to_owned(),
            secret.to_owned(),
            text(with, "session_token").map(str::to_owned),
        ));
    }
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok((
            id,
            secret,
            text(with, "session_token")
                .map(str::to_owned)
                .or_else(|| env("AWS_SESSION_TOKEN")),
        ));
    }
    let profile = text(with, "profile")
        .map(str::to_owned)
        .or_else(|| env("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_owned());
    let file = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .or_else(|| std::env::var("HOME").ok())
                .map(|h| PathBuf::from(h).join(".aws/credentials"))
        });
    let found = file
        .as_deref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| profile_keys(&t, &profile));
    found.ok_or_else(|| {
        format!(
            "no credentials: set `access_key_id` and `secret_access_key`, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the profile `{profile}` in ~/.aws/credentials"
        )
    })
}

/// The keys of `[profile]` in a shared credentials file.
fn profile_keys(file: &str, profile: &str) -> Option<(String, String, Option<String>)> {
    let mut current = String::new();
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in file.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().trim_start_matches("profile ").to_owned();
            continue;
        }
        if current != profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_owned();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some((id?, secret?, token))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// AWS's URI encoding: every byte but `A-Za-z0-9-_.~` as `%XX` (and `/` too, in a query).
fn uri_encode(text: &str, slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b'/' if !slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

/// The content type a file's name says, as Go's table has the common ones.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "json" => "application/json",
        "txt" | "log" => "text/plain; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "text/xml; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "yaml" | "yml" => "application/yaml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

async fn upload(store: &Store, with: &Map<String, Value>, dir: &Path) -> Result<String, String> {
    let source = text(with, "source").ok_or("source is required for upload")?;
    let key = text(with, "key").ok_or("key is required for upload")?;
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(class) = text(with, "storage_class") {
        if !STORAGE_CLASSES.contains(&class) {
            return Err(format!(
                "invalid storage class `{class}`: one of {}",
                STORAGE_CLASSES.join(", ")
            ));
        }
        headers.push(("x-amz-storage-class".into(), class.to_owned()));
    }
    if let Some(acl) = text(with, "acl") {
        if !ACLS.contains(&acl) {
            return Err(format!("invalid acl `{acl}`: one of {}", ACLS.join(", ")));
        }
        headers.push(("x-amz-acl".into(), acl.to_owned()));
    }
    match text(with, "sse") {
        Some("aws:kms") => {
            let id = text(with, "sse_kms_key_id")
                .ok_or("sse_kms_key_id is required when sse is 'aws:kms'")?;
            headers.push(("x-amz-server-side-encryption".into(), "aws:kms".into()));
            headers.push((
                "x-amz-server-side-encryption-aws-kms-key-id".into(),
                id.to_owned(),
            ));
        }
        Some("AES256") => headers.push(("x-amz-server-side-encryption".into(), "AES256".into())),
        Some(other) => return Err(format!("invalid sse `{other}`: AES256 or aws:kms")),
        None => {}
    }
    if let Some(Value::Object(meta)) = with.get("metadata") {
        for (k, v) in meta {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            headers.push((format!("x-amz-meta-{}", k.to_ascii_lowercase()), v));
        }
    }
    if let Some(Value::Object(tags)) = with.get("tags") {
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(tags.iter().map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            }))
            .finish();
        headers.push(("x-amz-tagging".into(), encoded));
    }
    let path = wharf_spec::formats::resolve_path(dir, source);
    let meta = std::fs::metadata(&path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .ok_or_else(|| format!("s3: source not found: {}", path.display()))?;
    let size = meta.len();
    let kind =
        text(with, "content_type").map_or_else(|| content_type(&path).to_owned(), str::to_owned);
    // The payload's hash first (the signature holds it), then the file as it is sent.
    let digest = {
        use tokio::io::AsyncReadExt as _;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| format!("s3: cannot read {}: {e}", path.display()))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| format!("s3: cannot read {}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        hex(ctx.finish().as_ref())
    };
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| format!("s3: cannot read {}: {e}", path.display()))?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)
        .map(|chunk| chunk.map(Frame::data));
    let body = BodyExt::boxed(StreamBody::new(stream));
    headers.push(("content-type".into(), kind.clone()));
    headers.push(("content-length".into(), size.to_string()));
    let req = store.request(Method::PUT, Some(key), &[], &headers, &digest, body)?;
    let (status, answer) = store
        .send(req)
        .await
        .map_err(|e| format!("s3: upload failed: {e}"))?;
    if !status.is_success() {
        return Err(format!("s3: upload failed: {}", failure(status, &answer)));
    }
    Ok(json!({
        "operation": "upload",
        "bucket": store.bucket,
        "key": key,
        "uri": format!("s3://{}/{key}", store.bucket),
        "size": size,
        "content_type": kind,
    })
    .to_string()
        + "\n")
}

async fn download(store: &Store, with: &Map<String, Value>, dir: &Path) -> Result<String, String> {
    let key = text(with, "key").ok_or("key is required for download")?;
    let destination = text(with, "destination").ok_or("destination is required for download")?;
    let path = wharf_spec::formats::resolve_path(dir, destination);
    let req = store.request(Method::GET, Some(key), &[], &[], EMPTY_SHA256, empty())?;
    let client = crate::http::client_for::<Body>(false)?;
    let answer = client
        .request(req)
        .await
        .map_err(|e| format!("s3: download failed: {}", crate::http::chain(&e)))?;
    let status = answer.status();
    if !status.is_success() {
        let body = answer
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(format!("s3: download failed: {}", failure(status, &body)));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("s3: cannot create {}: {e}", parent.display()))?;
    }
    // Written beside and renamed: a download cut short leaves no half file.
    let part = path.with_extension(format!(
        "{}wharf-part",
        path.extension()
            .map(|e| format!("{}.", e.to_string_lossy()))
            .unwrap_or_default()
    ));
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| format!("s3: cannot write {}: {e}", part.display()))?;
    let mut body = answer.into_body();
    let mut size = 0u64;
    let written = async {
        use tokio::io::AsyncWriteExt as _;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| format!("s3: download failed: the answer was cut: {e}"))?;
            if let Some(data) = frame.data_ref() {
                file.write_all(data)
                    .await
                    .map_err(|e| format!("s3: cannot write {}: {e}", part.display()))?;
                size += data.len() as u64;
            }
        }
        file.flush()
            .await
            .map_err(|e| format!("s3: cannot write {}: {e}", part.display()))
    }
    .await;
    if let Err(e) = written {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, &path).map_err(|e| {
        let _ = std::fs::remove_file(&part);
        format!("s3: cannot write {}: {e}", path.display())
    })?;
    Ok(json!({
        "operation": "download",
        "bucket": store.bucket,
        "key": key,
        "destination": path,
        "size": size,
    })
    .to_string()
        + "\n")
}

/// The entries under `prefix`: objects, and (not recursive) the common prefixes of
/// several, every page of the listing.
async fn listed(store: &Store, prefix: &str, recursive: bool) -> Result<Vec<Value>, String> {
    let prefix = prefix.to_owned();
    let mut entries = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query: Vec<(&str, String)> = vec![("list-type", "2".into())];
        if !prefix.is_empty() {
            query.push(("prefix", prefix.clone()));
        }
        if !recursive {
            query.push(("delimiter", "/".into()));
        }
        if let Some(t) = &token {
            query.push(("continuation-token", t.clone()));
        }
        let req = store.request(Method::GET, None, &query, &[], EMPTY_SHA256, empty())?;
        let (status, body) = store.send(req).await?;
        if !status.is_success() {
            return Err(failure(status, &body));
        }
        let xml = String::from_utf8_lossy(&body).into_owned();
        for object in inner(&xml, "Contents") {
            let field = |name: &str| inner(object, name).next().map(unescape);
            entries.push(json!({
                "key": field("Key").unwrap_or_default(),
                "size": field("Size").and_then(|s| s.parse::<u64>().ok()).unwrap_or(0),
                "last_modified": field("LastModified"),
                "etag": field("ETag").map(|e| e.trim_matches('"').to_owned()),
                "storage_class": field("StorageClass"),
            }));
        }
        for common in inner(&xml, "CommonPrefixes") {
            if let Some(p) = inner(common, "Prefix").next() {
                entries.push(json!({"key": unescape(p), "prefix": true}));
            }
        }
        let truncated = inner(&xml, "IsTruncated").next() == Some("true");
        token = inner(&xml, "NextContinuationToken").next().map(unescape);
        if !truncated || token.is_none() {
            return Ok(entries);
        }
    }
}

async fn list(store: &Store, with: &Map<String, Value>) -> Result<String, String> {
    let prefix = with
        .get("prefix")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let recursive = flag(with, "recursive");
    let entries = listed(store, prefix, recursive)
        .await
        .map_err(|e| format!("s3: list failed: {e}"))?;
    if text(with, "output_format") == Some("jsonl") {
        return Ok(entries.iter().map(|e| format!("{e}\n")).collect());
    }
    Ok(json!({
        "bucket": store.bucket,
        "prefix": prefix,
        "count": entries.len(),
        "objects": entries,
    })
    .to_string()
        + "\n")
}

async fn delete(store: &Store, with: &Map<String, Value>) -> Result<String, String> {
    let keys: Vec<String> = match (
        text(with, "key"),
        with.get("prefix").and_then(Value::as_str),
    ) {
        (Some(k), _) => vec![k.to_owned()],
        // Every object under the prefix, at any depth.
        (None, Some(p)) if !p.is_empty() => listed(store, p, true)
            .await
            .map_err(|e| format!("s3: delete failed: {e}"))?
            .into_iter()
            .filter_map(|e| e["key"].as_str().map(str::to_owned))
            .collect(),
        _ => return Err("key or prefix is required for delete".into()),
    };
    for key in &keys {
        let req = store.request(Method::DELETE, Some(key), &[], &[], EMPTY_SHA256, empty())?;
        let (status, body) = store
            .send(req)
            .await
            .map_err(|e| format!("s3: delete failed: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "s3: delete failed: {key}: {}",
                failure(status, &body)
            ));
        }
    }
    Ok(json!({
        "operation": "delete",
        "bucket": store.bucket,
        "count": keys.len(),
        "deleted": keys,
    })
    .to_string()
        + "\n")
}

/// The texts between each `<name>` and its `</name>` (not nested in itself).
fn inner<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = &'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let found = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(found)
    })
}

/// XML's entities as the characters they stand for.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=end]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_key_and_encodings_are_awss() {
        // AWS's documented example of a signing key (Signature Version 4, "deriving the
        // signing key"): secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20120215,
        // us-east-1, iam.
        let mut k = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20120215");
        for part in ["us-east-1", "iam", "aws4_request"] {
            k = hmac(&k, part.as_bytes());
        }
        assert_eq!(
            hex(&k),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
        assert_eq!(uri_encode("a b/c~d", false), "a%20b/c~d");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        assert_eq!(
            hex(ring::digest::digest(&ring::digest::SHA256, b"").as_ref()),
            EMPTY_SHA256
        );
    }

    #[test]
    fn list_answers_are_read() {
        let xml = "<ListBucketResult><Contents><Key>a&amp;b.txt</Key><Size>3</Size></Contents><Contents><Key>c</Key><Size>1</Size></Contents><CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes><IsTruncated>false</IsTruncated></ListBucketResult>";
        let keys: Vec<String> = inner(xml, "Contents")
            .filter_map(|c| inner(c, "Key").next().map(unescape))
            .collect();
        assert_eq!(keys, ["a&b.txt", "c"]);
        assert_eq!(inner(xml, "Prefix").next(), Some("d/"));
        assert_eq!(
            profile_keys(
                "[default]\naws_access_key_id = A\naws_secret_access_key=B\n[x]\naws_access_key_id=C\n",
                "default"
            ),
            Some(("A".into(), "B".into(), None))
        );
    }
}
