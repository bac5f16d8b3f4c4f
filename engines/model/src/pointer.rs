//! JSON pointers (RFC 6901): building them and turning serde paths into them.

/// Escape one reference token of a JSON pointer.
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Join `base` (a pointer, possibly empty) and `token`.
pub fn join(base: &str, token: &str) -> String {
    format!("{base}/{}", escape_token(token))
}

/// Convert the path of a `serde_path_to_error` failure into a JSON pointer below `base`.
pub fn from_serde_path(base: &str, path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = base.to_owned();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer = join(&pointer, &index.to_string()),
            Segment::Map { key } => pointer = join(&pointer, key),
            Segment::Enum { variant } => pointer = join(&pointer, variant),
            Segment::Unknown => {}
        }
    }
    pointer
}

/// Deserialize `value` as `T`; on failure return the JSON pointer (below `base`) and serde's message.
pub fn deserialize_at<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    base: &str,
) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let pointer = from_serde_path(base, error.path());
        (pointer, error.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_tokens() {
        assert_eq!(join("", "a/b"), "/a~1b");
        assert_eq!(join("/x", "m~n"), "/x/m~0n");
    }
}
