//! The far ends of outgoing traffic, real over sockets: a throw-away certificate authority with a
//! server certificate for 127.0.0.1, an http(s) endpoint that keeps every request, and an SMTP server
//! (plain or TLS from the first byte) that keeps every mail it accepts.

use std::sync::{Arc, Mutex};

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// A certificate authority made for one test, and a server configuration whose certificate
/// (for `127.0.0.1` and `localhost`) it signed.
pub struct TestCa {
    pub certificate: CertificateDer<'static>,
    pub pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

pub fn test_ca() -> TestCa {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "Trellis test CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    TestCa {
        certificate: ca.der().clone(),
        pem: ca.pem(),
        server: Arc::new(server),
    }
}

/// Read one HTTP/1.1 request: (head, body).
pub async fn read_http_request(socket: &mut (impl AsyncRead + Unpin)) -> (String, String) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = socket.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return (String::new(), String::new());
        }
        buffer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buffer).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                return (head, text[end + 4..end + 4 + length].to_owned());
            }
        }
    }
}

/// Requests an endpoint received: (head, body).
pub type Received = Arc<Mutex<Vec<(String, String)>>>;

/// An endpoint at `/hooks/won`: answers 500 to the first `failures` requests and 200 after, keeps
/// every request. With `tls`, it speaks https (a failed handshake is counted in the second value).
pub async fn http_endpoint(
    failures: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (String, Received, Arc<Mutex<usize>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}/hooks/won", listener.local_addr().unwrap());
    let seen: Received = Arc::default();
    let refused_handshakes = Arc::new(Mutex::new(0));
    let (log, refused) = (seen.clone(), refused_handshakes.clone());
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let (log, refused, tls) = (log.clone(), refused.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    Some(config) => {
                        match tokio_rustls::TlsAcceptor::from(config).accept(socket).await {
                            Ok(mut stream) => answer(&mut stream, &log, failures).await,
                            Err(_) => *refused.lock().unwrap() += 1,
                        }
                    }
                    None => answer(&mut { socket }, &log, failures).await,
                }
            });
        }
    });
    (url, seen, refused_handshakes)
}

async fn answer(
    socket: &mut (impl AsyncRead + AsyncWrite + Unpin),
    log: &Received,
    failures: usize,
) {
    let (head, body) = read_http_request(socket).await;
    let failing = {
        let mut log = log.lock().unwrap();
        log.push((head, body));
        log.len() <= failures
    };
    let status = if failing {
        "500 Internal Server Error"
    } else {
        "200 OK"
    };
    let _ = socket
        .write_all(
            format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
    let _ = socket.shutdown().await;
}

/// A mail as an SMTP server received it.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent after DATA (dot-stuffing undone).
    pub data: Vec<u8>,
    /// The `AUTH PLAIN` credentials (user, password), when the client signed in.
    pub credentials: Option<(String, String)>,
}

/// A running SMTP server.
pub struct SmtpServer {
    pub address: std::net::SocketAddr,
    pub mails: Arc<Mutex<Vec<ReceivedMail>>>,
}

/// An SMTP server on 127.0.0.1 (TLS from the first byte with `tls`, as on port 465) that accepts
/// every mail except to recipients containing `refuse` (answered `550`, a permanent refusal).
pub async fn smtp_server(
    tls: Option<Arc<rustls::ServerConfig>>,
    refuse: &'static str,
) -> SmtpServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mails: Arc<Mutex<Vec<ReceivedMail>>> = Arc::default();
    let kept = mails.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let (kept, tls) = (kept.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    Some(config) => {
                        if let Ok(stream) =
                            tokio_rustls::TlsAcceptor::from(config).accept(socket).await
                        {
                            smtp_session(stream, &kept, refuse).await;
                        }
                    }
                    None => smtp_session(socket, &kept, refuse).await,
                }
            });
        }
    });
    SmtpServer { address, mails }
}

/// One SMTP conversation (RFC 5321: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, QUIT).
async fn smtp_session(
    stream: impl AsyncRead + AsyncWrite + Unpin,
    kept: &Mutex<Vec<ReceivedMail>>,
    refuse: &str,
) {
    use base64::Engine;
    let mut stream = BufReader::new(stream);
    let mut mail = ReceivedMail {
        from: String::new(),
        to: Vec::new(),
        data: Vec::new(),
        credentials: None,
    };
    if stream
        .get_mut()
        .write_all(b"220 smtp.test ESMTP ready\r\n")
        .await
        .is_err()
    {
        return;
    }
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            "250-smtp.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN\r\n".to_owned()
        } else if upper.starts_with("HELO") || upper == "NOOP" {
            "250 ok\r\n".to_owned()
        } else if let Some(response) = upper.strip_prefix("AUTH PLAIN ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(command[command.len() - response.len()..].trim())
                .unwrap_or_default();
            let parts: Vec<String> = decoded
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            mail.credentials = parts
                .get(1)
                .zip(parts.get(2))
                .map(|(u, p)| (u.clone(), p.clone()));
            "235 2.7.0 authenticated\r\n".to_owned()
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = angle(&command);
            mail.to.clear();
            "250 2.1.0 ok\r\n".to_owned()
        } else if upper.starts_with("RCPT TO:") {
            let to = angle(&command);
            if to.contains(refuse) {
                "550 5.1.1 no such mailbox here\r\n".to_owned()
            } else {
                mail.to.push(to);
                "250 2.1.5 ok\r\n".to_owned()
            }
        } else if upper == "DATA" {
            if stream
                .get_mut()
                .write_all(b"354 end with <CRLF>.<CRLF>\r\n")
                .await
                .is_err()
            {
                return;
            }
            let mut data = Vec::new();
            loop {
                let mut line = Vec::new();
                if stream.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == b".\r\n" {
                    break;
                }
                let line = if line.starts_with(b"..") {
                    &line[1..]
                } else {
                    &line[..]
                };
                data.extend_from_slice(line);
            }
            mail.data = data;
            kept.lock().unwrap().push(mail.clone());
            "250 2.0.0 queued\r\n".to_owned()
        } else if upper == "RSET" {
            mail.to.clear();
            "250 ok\r\n".to_owned()
        } else if upper == "QUIT" {
            let _ = stream.get_mut().write_all(b"221 bye\r\n").await;
            return;
        } else {
            "502 5.5.2 not implemented\r\n".to_owned()
        };
        if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The address between `<` and `>` of an SMTP command.
fn angle(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}
