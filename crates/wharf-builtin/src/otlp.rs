//! A run's trace sent to an OpenTelemetry collector (the DAG's `otel`): OTLP over HTTP
//! (`POST` of the protobuf request to the `/v1/traces` URL) or over gRPC (the
//! `TraceService/Export` call on `host:port`, HTTP/2 with TLS, or without it when
//! `insecure`). The request comes encoded from the engine.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use wharf_engine::{BoxFuture, TraceExporter, TraceTarget};

/// Sends traces over OTLP, HTTP or gRPC as the endpoint says.
pub struct OtlpExporter;

impl TraceExporter for OtlpExporter {
    fn export<'a>(
        &'a self,
        to: &'a TraceTarget,
        request: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if to.is_http() {
                over_http(to, request).await
            } else {
                over_grpc(to, request).await
            }
        })
    }
}

async fn over_http(to: &TraceTarget, body: Vec<u8>) -> Result<(), String> {
    let client = crate::http::client(to.insecure)?;
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(&to.endpoint)
        .header("content-type", "application/x-protobuf");
    for (k, v) in &to.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("the request cannot be made: {e}"))?;
    let answer = client
        .request(req)
        .await
        .map_err(|e| crate::http::chain(&e))?;
    let status = answer.status();
    let text = answer
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "the collector answered {}{}",
            status.as_u16(),
            if text.trim().is_empty() || !text.is_ascii() {
                String::new()
            } else {
                format!(": {}", text.trim())
            }
        ))
    }
}

/// gRPC's path of the export call.
const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

async fn over_grpc(to: &TraceTarget, body: Vec<u8>) -> Result<(), String> {
    let endpoint = to
        .endpoint
        .trim_start_matches("grpc://")
        .trim_end_matches('/');
    let (host, port) = endpoint
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("`{endpoint}` is not host:port"))?;
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    // The message, length-prefixed as gRPC frames it (not compressed).
    let mut framed = Vec::with_capacity(body.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    framed.extend_from_slice(&body);
    let scheme = if to.insecure { "http" } else { "https" };
    let uri: Uri = format!("{scheme}://{endpoint}{EXPORT}")
        .parse()
        .map_err(|e| format!("`{endpoint}`: {e}"))?;
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in &to.headers {
        req = req.header(k.to_ascii_lowercase().as_str(), v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::from(framed)))
        .map_err(|e| format!("the request cannot be made: {e}"))?;
    if to.insecure {
        call(TokioIo::new(tcp), req).await
    } else {
        let config = tls_config()?;
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| format!("`{host}`: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        call(TokioIo::new(tls), req).await
    }
}

/// TLS to a collector: the system's roots, HTTP/2 by ALPN.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// One gRPC call over a new HTTP/2 connection: its status from the headers or trailers.
async fn call<T>(io: T, req: Request<Full<Bytes>>) -> Result<(), String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(|e| format!("HTTP/2: {}", crate::http::chain(&e)))?;
    let driver = tokio::spawn(conn);
    let result = async {
        let answer = sender
            .send_request(req)
            .await
            .map_err(|e| format!("the call failed: {}", crate::http::chain(&e)))?;
        if !answer.status().is_success() {
            return Err(format!(
                "the collector answered HTTP {}",
                answer.status().as_u16()
            ));
        }
        let header = |h: &hyper::HeaderMap, k: &str| {
            h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        let mut status = header(answer.headers(), "grpc-status");
        let mut message = header(answer.headers(), "grpc-message");
        let mut body = answer.into_body();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| format!("the answer was cut: {}", crate::http::chain(&e)))?;
            if let Some(trailers) = frame.trailers_ref() {
                status = header(trailers, "grpc-status").or(status);
                message = header(trailers, "grpc-message").or(message);
            }
        }
        match status.as_deref() {
            Some("0") => Ok(()),
            Some(code) => Err(format!(
                "the collector refused the trace (gRPC status {code}{})",
                message.map(|m| format!(": {m}")).unwrap_or_default()
            )),
            None => Err("the collector's answer has no gRPC status".to_owned()),
        }
    }
    .await;
    driver.abort();
    result
}
