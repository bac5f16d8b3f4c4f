//! Reading a few top-level fields of a stored record document without parsing all of it.
//!
//! Column loads on SQLite used to call `json_extract` once per requested field and row; each call
//! re-parses the document inside SQLite. Here the document bytes come out of SQLite untouched and one
//! forward pass over them finds the requested keys, skipping every other value without building it.
//! The answer is what `json_extract(data, '$."uid"')` (or `'$."uid".amount'` for money) returns:
//! strings unescaped, integers as integers, other numbers as reals, `true`/`false` as 1/0, `null` and a
//! missing key as SQL NULL, objects and arrays as their compact JSON text. A document the pass cannot
//! read (never written by Trellis) falls back to `serde_json` with the same answers.

use std::borrow::Cow;

/// One extracted value, as SQLite's `json_extract` would hand it over.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Extracted<'a> {
    Null,
    Int(i64),
    Float(f64),
    Text(Cow<'a, str>),
}

/// What to pull out of each document: a top-level key and, for money, the `amount` inside it.
#[derive(Debug, Clone)]
pub(crate) struct FieldPath {
    pub key: Cow<'static, str>,
    pub amount: bool,
}

/// Fills `out[i]` with the value at `paths[i]` of `document` (a JSON object).
pub(crate) fn extract<'a>(document: &'a [u8], paths: &[FieldPath], out: &mut Vec<Extracted<'a>>) {
    out.clear();
    out.resize(paths.len(), Extracted::Null);
    if scan_object(document, paths, out).is_none() {
        out.clear();
        out.resize(paths.len(), Extracted::Null);
        fallback(document, paths, out);
    }
}

/// The slow, sure way: parse the whole document.
fn fallback<'a>(document: &'a [u8], paths: &[FieldPath], out: &mut [Extracted<'a>]) {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(document)
    else {
        return;
    };
    for (slot, path) in out.iter_mut().zip(paths) {
        let mut value = map.get(path.key.as_ref());
        if path.amount {
            value = value
                .and_then(|v| v.as_object())
                .and_then(|o| o.get("amount"));
        }
        *slot = match value {
            None | Some(serde_json::Value::Null) => Extracted::Null,
            Some(serde_json::Value::Bool(b)) => Extracted::Int(i64::from(*b)),
            Some(serde_json::Value::Number(n)) => match n.as_i64() {
                Some(i) => Extracted::Int(i),
                None => Extracted::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Some(serde_json::Value::String(s)) => Extracted::Text(Cow::Owned(s.clone())),
            Some(other) => Extracted::Text(Cow::Owned(other.to_string())),
        };
    }
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\n' | b'\r' | b'\t')
}

/// The first index at or after `at` that is not JSON whitespace (documents Trellis writes have none,
/// so this is one comparison).
#[inline(always)]
fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() && is_space(bytes[at]) {
        at += 1;
    }
    at
}

/// The index of the next `"` or `\` at or after `at`. Most strings are short: a plain loop over the
/// first bytes, a vectorised search beyond.
#[inline(always)]
fn quote_or_backslash(bytes: &[u8], at: usize) -> Option<usize> {
    let near_end = bytes.len().min(at + 32);
    let mut index = at;
    while index < near_end {
        if matches!(bytes[index], b'"' | b'\\') {
            return Some(index);
        }
        index += 1;
    }
    memchr::memchr2(b'"', b'\\', &bytes[index..]).map(|offset| index + offset)
}

/// Given the index just after a string's opening quote: the index of its closing quote and whether
/// the string holds escapes.
#[inline(always)]
fn string_end(bytes: &[u8], mut at: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        at = quote_or_backslash(bytes, at)?;
        if bytes[at] == b'"' {
            return Some((at, escaped));
        }
        escaped = true;
        at += 2;
    }
}

/// Given the index of a value's first byte: the index just past the value.
#[inline(always)]
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match *bytes.get(at)? {
        b'"' => string_end(bytes, at + 1).map(|(end, _)| end + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut index = at;
            loop {
                match *bytes.get(index)? {
                    b'"' => {
                        index = string_end(bytes, index + 1)?.0;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(index + 1);
                        }
                    }
                    _ => {}
                }
                index += 1;
            }
        }
        _ => {
            let mut index = at;
            while index < bytes.len() && !matches!(bytes[index], b',' | b'}' | b']') {
                if is_space(bytes[index]) {
                    break;
                }
                index += 1;
            }
            (index > at).then_some(index)
        }
    }
}

/// One pass over the top-level object; `None` when the document is not what Trellis writes.
fn scan_object<'a>(
    document: &'a [u8],
    paths: &[FieldPath],
    out: &mut [Extracted<'a>],
) -> Option<()> {
    let bytes = document;
    let mut at = skip_space(bytes, 0);
    if *bytes.get(at)? != b'{' {
        return None;
    }
    at = skip_space(bytes, at + 1);
    if *bytes.get(at)? == b'}' {
        return Some(());
    }
    let mut found = 0;
    loop {
        if *bytes.get(at)? != b'"' {
            return None;
        }
        let (key_end, key_escaped) = string_end(bytes, at + 1)?;
        if key_escaped {
            return None;
        }
        let key = &bytes[at + 1..key_end];
        at = skip_space(bytes, key_end + 1);
        if *bytes.get(at)? != b':' {
            return None;
        }
        let value_start = skip_space(bytes, at + 1);
        let end = value_end(bytes, value_start)?;
        let value = &bytes[value_start..end];
        for (slot, path) in out.iter_mut().zip(paths) {
            let wanted = path.key.as_bytes();
            // Length and last byte first: most keys differ there, and a call to memcmp is dearer.
            if wanted.len() == key.len() && wanted.last() == key.last() && wanted == key {
                *slot = if path.amount {
                    amount_of(value)?
                } else {
                    convert(value)?
                };
                found += 1;
            }
        }
        if found == paths.len() {
            return Some(());
        }
        at = skip_space(bytes, end);
        match *bytes.get(at)? {
            b',' => at = skip_space(bytes, at + 1),
            b'}' => return Some(()),
            _ => return None,
        }
    }
}

/// `json_extract(value, '$.amount')`.
fn amount_of(value: &[u8]) -> Option<Extracted<'_>> {
    if value.first() != Some(&b'{') {
        return Some(Extracted::Null);
    }
    const PATHS: [FieldPath; 1] = [FieldPath {
        key: Cow::Borrowed("amount"),
        amount: false,
    }];
    let paths = &PATHS;
    let mut out = [Extracted::Null];
    scan_object(value, paths, &mut out)?;
    let [amount] = out;
    Some(amount)
}

/// A raw JSON value as `json_extract` returns it.
fn convert(value: &[u8]) -> Option<Extracted<'_>> {
    Some(match value.first()? {
        b'"' => {
            let inner = &value[1..value.len() - 1];
            if inner.contains(&b'\\') {
                Extracted::Text(Cow::Owned(serde_json::from_slice::<String>(value).ok()?))
            } else {
                Extracted::Text(Cow::Borrowed(std::str::from_utf8(inner).ok()?))
            }
        }
        b'n' if value == b"null" => Extracted::Null,
        b't' if value == b"true" => Extracted::Int(1),
        b'f' if value == b"false" => Extracted::Int(0),
        b'{' | b'[' => {
            let compact = !value
                .iter()
                .any(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t'));
            if compact {
                Extracted::Text(Cow::Borrowed(std::str::from_utf8(value).ok()?))
            } else {
                let parsed: serde_json::Value = serde_json::from_slice(value).ok()?;
                Extracted::Text(Cow::Owned(parsed.to_string()))
            }
        }
        b'-' | b'0'..=b'9' => {
            let text = std::str::from_utf8(value).ok()?;
            let integral = !value.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
            match integral.then(|| text.parse::<i64>().ok()).flatten() {
                Some(i) => Extracted::Int(i),
                None => Extracted::Float(text.parse().ok()?),
            }
        }
        _ => return None,
    })
}
