//! Text normalization for full-text search, shared by indexing (the form engine) and querying (the
//! store): lower-case, and every CJK character becomes its own word. Chinese has no spaces between
//! words, so a query such as 绿茶 matches as the phrase "绿 茶" — any substring of the text — while
//! other languages match by word and prefix.

/// Is `c` a CJK ideograph, kana or hangul (a script written without spaces)?
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Lower-case `text` and put spaces around every CJK character.
pub fn normalize(text: &str) -> String {
    let mut out = String::new();
    normalize_into(&mut out, text);
    out
}

/// Append [`normalize`]`(text)` to `out`, a space apart from what `out` holds (nothing is appended
/// for text that normalizes to nothing): a record's search text is its fields' texts so joined.
pub fn normalize_into(out: &mut String, text: &str) {
    let start = out.len();
    if start > 0 {
        out.push(' ');
    }
    let from = out.len();
    out.reserve(text.len() + 8);
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if is_cjk(c) {
            if out.len() > from && !out.ends_with(' ') {
                out.push(' ');
            }
            out.push(c);
            out.push(' ');
        } else {
            out.extend(c.to_lowercase());
        }
    }
    let kept = out.trim_end().len().max(from);
    out.truncate(kept);
    if out.len() == from {
        // Nothing (or only trailing space) from `text`: no separator either.
        out.truncate(start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cjk_and_lowercases() {
        assert_eq!(
            normalize("上海客户，喜欢绿茶"),
            "上 海 客 户 ， 喜 欢 绿 茶"
        );
        assert_eq!(normalize("Ada PRICING"), "ada pricing");
        assert_eq!(normalize("VIP王芳"), "vip 王 芳");
        assert_eq!(normalize("Émile ÅSA"), "émile åsa");
    }

    #[test]
    fn appends_texts_a_space_apart() {
        let mut text = String::new();
        for part in ["Ada PRICING", "", "上海客户", "   ", "VIP王芳", "x"] {
            normalize_into(&mut text, part);
        }
        assert_eq!(text, "ada pricing 上 海 客 户 vip 王 芳 x");
        let mut cjk_first = String::new();
        normalize_into(&mut cjk_first, "绿茶");
        assert_eq!(cjk_first, normalize("绿茶"));
    }
}
