//! The languages people see messages in, and picking one from `Accept-Language`.

/// A supported language for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    #[default]
    En,
    ZhCn,
}

impl Locale {
    /// Pick the best supported language from an `Accept-Language` header (quality values respected).
    pub fn from_accept_language(header: Option<&str>) -> Self {
        let Some(header) = header else {
            return Self::En;
        };
        let mut best: Option<(f32, Self)> = None;
        for part in header.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = pieces
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let locale = if tag.starts_with("zh") {
                Some(Self::ZhCn)
            } else if tag.starts_with("en") {
                Some(Self::En)
            } else {
                None
            };
            if let Some(locale) = locale
                && best.is_none_or(|(q, _)| quality > q)
            {
                best = Some((quality, locale));
            }
        }
        best.map(|(_, l)| l).unwrap_or_default()
    }

    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::ZhCn => "zh-CN",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_by_quality() {
        assert_eq!(
            Locale::from_accept_language(Some("zh-CN,zh;q=0.9,en;q=0.8")),
            Locale::ZhCn
        );
        assert_eq!(
            Locale::from_accept_language(Some("en-US,zh;q=0.5")),
            Locale::En
        );
        assert_eq!(
            Locale::from_accept_language(Some("fr, zh-TW;q=0.3")),
            Locale::ZhCn
        );
        assert_eq!(Locale::from_accept_language(None), Locale::En);
    }
}
