//! E-mail notifications over SMTP. When SMTP is configured (`TRELLIS_SMTP_URL`, `TRELLIS_SMTP_FROM`),
//! every in-app notification — a flow or rule `notify` action, an escalated or reassigned task — is
//! also queued as an `email` outbox entry in the notification's own transaction, then mailed after
//! commit and retried with backoff like a webhook. The mail goes to the person's address
//! (`PATCH /api/users/{id}` `{"email": …, "locale": …}`) in their language, or in both languages
//! when they chose none; a person without an address gets the in-app notification only.

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};

/// Where and as whom notifications are mailed.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `smtp://[user:password@]host[:port]` (plain; `?tls=required` for STARTTLS, `?tls=opportunistic`
    /// to use it when offered) or `smtps://…` (TLS from the first byte, port 465).
    pub url: String,
    /// The sender, e.g. `Trellis <noreply@example.com>`.
    pub from: Mailbox,
    /// This server's address as people reach it (`TRELLIS_PUBLIC_URL`), for a link to the record.
    pub public_url: Option<String>,
}

impl MailSettings {
    /// Check the parts; every problem names the variable it came from and the fix.
    pub fn new(url: &str, from: &str, public_url: Option<&str>) -> Result<Self, String> {
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| {
            format!(
                "TRELLIS_SMTP_URL: '{}' is not an SMTP address ({e}); use smtp://user:password@host:587?tls=required or smtps://host:465",
                redact(url)
            )
        })?;
        let from = from.parse::<Mailbox>().map_err(|e| {
            format!("TRELLIS_SMTP_FROM: '{from}' is not a sender address ({e}); use e.g. 'Trellis <noreply@example.com>'")
        })?;
        let public_url = public_url
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty());
        if let Some(public) = &public_url
            && !(public.starts_with("http://") || public.starts_with("https://"))
        {
            return Err(format!(
                "TRELLIS_PUBLIC_URL: '{public}' must start with http:// or https://"
            ));
        }
        Ok(Self {
            url: url.to_owned(),
            from,
            public_url,
        })
    }

    /// From `TRELLIS_SMTP_URL`, `TRELLIS_SMTP_FROM` and `TRELLIS_PUBLIC_URL`; `Ok(None)` when no
    /// SMTP address is set (notifications stay in-app).
    pub fn from_env() -> Result<Option<Self>, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let Some(url) = var("TRELLIS_SMTP_URL") else {
            return Ok(None);
        };
        let from = var("TRELLIS_SMTP_FROM").ok_or_else(|| {
            "TRELLIS_SMTP_URL is set but TRELLIS_SMTP_FROM is not: set the sender, e.g. TRELLIS_SMTP_FROM='Trellis <noreply@example.com>'".to_owned()
        })?;
        Self::new(&url, &from, var("TRELLIS_PUBLIC_URL").as_deref()).map(Some)
    }
}

/// `url` with its password replaced by `***` (for messages and logs).
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The SMTP transport for `settings`, trusting the Mozilla roots and `extra` for its TLS.
pub(crate) fn transport(
    settings: &MailSettings,
    extra: &[CertificateDer<'static>],
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.url)
        .map_err(|e| format!("TRELLIS_SMTP_URL: {e}"))?
        .timeout(Some(std::time::Duration::from_secs(20)));
    if !extra.is_empty() {
        let parsed = url::Url::parse(&settings.url).map_err(|e| e.to_string())?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let mut parameters = TlsParameters::builder(host);
        for certificate in extra {
            parameters = parameters.add_root_certificate(
                Certificate::from_der(certificate.to_vec()).map_err(|e| e.to_string())?,
            );
        }
        let parameters = parameters.build_rustls().map_err(|e| e.to_string())?;
        let mode = parsed
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        builder = match (parsed.scheme(), mode.as_deref()) {
            ("smtps", _) => builder.tls(Tls::Wrapper(parameters)),
            (_, Some("required")) => builder.tls(Tls::Required(parameters)),
            (_, Some("opportunistic")) => builder.tls(Tls::Opportunistic(parameters)),
            _ => builder,
        };
    }
    Ok(builder.build())
}

/// The outbox payload of one mailed notification.
pub(crate) fn outbox_payload(user: &str, message: &Value, entity: &str, record_id: &str) -> Value {
    json!({"user": user, "message": message, "entity": entity, "record_id": record_id})
}

/// A notification turned into a mail: subject and plain-text body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Composed {
    pub subject: String,
    pub body: String,
}

/// The text of `message` (`{"en": …, "zh-CN": …}` or a plain string) in `locale`.
fn text_in(message: &Value, locale: &str) -> Option<String> {
    match message {
        Value::String(text) => Some(text.clone()),
        Value::Object(texts) => texts
            .get(locale)
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
            .map(str::to_owned),
        _ => None,
    }
}

/// Compose the mail of a notification for someone whose locale is `locale` (none: both languages,
/// Chinese first), naming the app and linking the record when the public address is known.
pub(crate) fn compose(
    message: &Value,
    locale: Option<&str>,
    app_name: &Value,
    link: Option<&str>,
) -> Composed {
    let locales: Vec<&str> = match locale {
        Some("zh-CN") => vec!["zh-CN"],
        Some(_) => vec!["en"],
        None => vec!["zh-CN", "en"],
    };
    let mut texts: Vec<String> = Vec::new();
    for locale in &locales {
        if let Some(text) = text_in(message, locale).or_else(|| text_in(message, "en"))
            && !texts.contains(&text)
        {
            texts.push(text);
        }
    }
    if texts.is_empty() {
        texts.push(message.to_string());
    }
    let app = locales
        .iter()
        .find_map(|l| text_in(app_name, l))
        .or_else(|| text_in(app_name, "en"))
        .unwrap_or_else(|| "Trellis".into());
    let first_line = |text: &str| text.lines().next().unwrap_or_default().to_owned();
    let mut subject = format!(
        "[{app}] {}",
        texts
            .iter()
            .map(|t| first_line(t))
            .collect::<Vec<_>>()
            .join(" / ")
    );
    if subject.chars().count() > 150 {
        subject = subject.chars().take(149).collect::<String>() + "…";
    }
    let mut body = texts.join("\n\n");
    if let Some(link) = link {
        let open = locales
            .iter()
            .map(|l| {
                if *l == "zh-CN" {
                    "打开记录"
                } else {
                    "Open the record"
                }
            })
            .collect::<Vec<_>>()
            .join(" / ");
        body.push_str(&format!("\n\n{open}: {link}"));
    }
    let footer = locales
        .iter()
        .map(|l| {
            if *l == "zh-CN" {
                "此邮件由 Trellis 根据您在应用中的通知发送。"
            } else {
                "Trellis sent this because you have a notification in the app."
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    body.push_str(&format!("\n\n-- \n{app}\n{footer}\n"));
    Composed { subject, body }
}

/// Build the message to `to`.
pub(crate) fn message(
    settings: &MailSettings,
    to: Mailbox,
    composed: Composed,
    delivery: i64,
) -> Result<lettre::Message, String> {
    let domain = settings.from.email.domain().to_owned();
    lettre::Message::builder()
        .from(settings.from.clone())
        .to(to)
        .subject(composed.subject)
        .message_id(Some(format!(
            "<trellis.{delivery}.{}@{domain}>",
            uuid::Uuid::now_v7()
        )))
        .header(ContentType::TEXT_PLAIN)
        .body(composed.body)
        .map_err(|e| e.to_string())
}

/// Send `message` over `transport`; `Err((retry, reason))`: whether trying again can help.
pub(crate) async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    message: lettre::Message,
) -> Result<(), (bool, String)> {
    match transport.send(message).await {
        Ok(_) => Ok(()),
        // 5xx answers (no such mailbox, refused sender) will not change; the rest may.
        Err(error) if error.is_permanent() => {
            Err((false, format!("the SMTP server refused the mail: {error}")))
        }
        Err(error) => Err((true, format!("SMTP: {error}"))),
    }
}
