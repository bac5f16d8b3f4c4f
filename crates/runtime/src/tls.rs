//! TLS for what Trellis sends out — https webhooks and SMTP. Certificates are checked against the
//! Mozilla roots (webpki-roots) plus the operator's own certificate authorities: the PEM file named by
//! `TRELLIS_TLS_CA_FILE` (a company CA, or a self-signed relay). Nothing is ever sent over a
//! connection whose certificate does not check out.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Read every certificate of the PEM file at `path` (for `TRELLIS_TLS_CA_FILE`).
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("TRELLIS_TLS_CA_FILE: cannot read '{shown}': {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!("TRELLIS_TLS_CA_FILE: '{shown}' is not a PEM certificate file: {e}")
        })?;
    if certificates.is_empty() {
        return Err(format!(
            "TRELLIS_TLS_CA_FILE: '{shown}' holds no certificate (expected '-----BEGIN CERTIFICATE-----' blocks)"
        ));
    }
    Ok(certificates)
}

/// A client configuration trusting the Mozilla roots and `extra` (the ring provider, TLS 1.2 and 1.3).
pub fn client_config(
    extra: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for certificate in extra {
        roots
            .add(certificate.clone())
            .map_err(|e| format!("a trusted certificate is not usable as a root: {e}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The HTTP client of outgoing webhooks: http and https (HTTP/1.1).
pub type WebhookClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<hyper::body::Bytes>,
>;

/// Build the webhook client trusting the Mozilla roots and `extra`.
pub fn webhook_client(extra: &[CertificateDer<'static>]) -> Result<WebhookClient, String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(Arc::unwrap_or_clone(client_config(extra)?))
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}
