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
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_cjk(c) {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
            out.push(c);
            out.push(' ');
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out.trim_end().to_owned()
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
    }
}
