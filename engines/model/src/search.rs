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

/// The parts of a normalized text or query word that search compares: runs of letters and digits,
/// split at spaces and punctuation (as SQLite's FTS5 `unicode61` tokenizer splits; PostgreSQL's
/// search vector is built from the text so split). A Chinese character is a part of its own, since
/// [`normalize`] spaced it.
pub fn parts(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|part| !part.is_empty())
}

/// Does the normalized `text` match every word of the query `q`, as the search index matches? A
/// word matches where its parts appear in a row, the last one as a prefix (exactly, for a word
/// with Chinese); a word of punctuation alone matches nothing. Used where a search must be checked
/// outside the index (a list that hides fields from its reader re-checks what the reader sees).
pub fn matches_words(text: &str, q: &str) -> bool {
    let tokens: Vec<&str> = parts(text).collect();
    q.split_whitespace().map(normalize).all(|word| {
        let wanted: Vec<&str> = parts(&word).collect();
        let Some((last, leading)) = wanted.split_last() else {
            return false;
        };
        let exact = word.chars().any(is_cjk);
        tokens.windows(wanted.len()).any(|window| {
            let (tail, head) = window.split_last().expect("windows are never empty");
            head == leading
                && if exact {
                    tail == last
                } else {
                    tail.starts_with(last)
                }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_as_the_index_matches_them() {
        let text = normalize("Write to Li.Na@example.cn about INV-7731-0042; 上海客户，喜欢绿茶");
        for (q, expected) in [
            ("pric", false),
            ("write", true),
            ("wri", true),
            ("rite", false),
            ("li.na@exa", true),
            ("na@example", true),
            ("inv-7731", true),
            ("INV-7731-0042 write", true),
            ("inv-7731 nobody", false),
            ("绿茶", true),
            ("客户", true),
            ("户喜", true), // punctuation between two characters is no word of its own
            ("海喜", false),
            ("-", false),
            ("", true),
        ] {
            assert_eq!(matches_words(&text, q), expected, "{q}");
        }
    }

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
