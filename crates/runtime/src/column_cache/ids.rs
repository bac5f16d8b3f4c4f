//! The record ids of a cache entry, compactly: the canonical lower-case UUIDs the store generates as
//! 128-bit numbers (16 bytes each instead of a 36-byte string and its allocation — at ten million
//! records, 160 MB instead of ~700 MB, and nothing to allocate when a snapshot is read), any other id
//! as text. For canonical UUIDs the numeric order is the text order (hex digits in big-endian order,
//! hyphens at fixed places), so sorted stays sorted either way.

use std::borrow::Cow;
use std::cmp::Ordering;

/// An entry's ids, one per row.
#[derive(Debug, Clone)]
pub(crate) enum Ids {
    Uuids(Vec<u128>),
    Texts(Vec<String>),
}

impl Default for Ids {
    fn default() -> Self {
        Self::Uuids(Vec::new())
    }
}

/// `id` as a number when it is a canonical lower-case UUID.
pub(super) fn canonical_uuid(id: &str) -> Option<u128> {
    let uuid = uuid::Uuid::try_parse(id).ok()?;
    let mut buffer = uuid::Uuid::encode_buffer();
    (uuid.hyphenated().encode_lower(&mut buffer) == id).then(|| uuid.as_u128())
}

fn uuid_text(uuid: u128) -> String {
    uuid::Uuid::from_u128(uuid).hyphenated().to_string()
}

impl Ids {
    /// From texts: compact when every id is a canonical UUID.
    pub(crate) fn from_texts(texts: Vec<String>) -> Self {
        match texts
            .iter()
            .map(|id| canonical_uuid(id))
            .collect::<Option<Vec<u128>>>()
        {
            Some(uuids) => Self::Uuids(uuids),
            None => Self::Texts(texts),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Uuids(v) => v.len(),
            Self::Texts(v) => v.len(),
        }
    }

    /// The id of row `row`.
    pub(crate) fn get(&self, row: usize) -> Cow<'_, str> {
        match self {
            Self::Uuids(v) => Cow::Owned(uuid_text(v[row])),
            Self::Texts(v) => Cow::Borrowed(v[row].as_str()),
        }
    }

    /// Row `row`'s id compared with `id`.
    pub(crate) fn cmp_with(&self, row: usize, id: &str) -> Ordering {
        match self {
            Self::Uuids(v) => match canonical_uuid(id) {
                Some(other) => v[row].cmp(&other),
                None => uuid_text(v[row]).as_str().cmp(id),
            },
            Self::Texts(v) => v[row].as_str().cmp(id),
        }
    }

    /// A comparison of rows' ids with `id`, which is parsed once (for loops over many rows).
    pub(crate) fn comparer<'a>(&'a self, id: &'a str) -> impl Fn(usize) -> Ordering + 'a {
        let uuid = canonical_uuid(id);
        move |row| match (self, uuid) {
            (Self::Uuids(v), Some(uuid)) => v[row].cmp(&uuid),
            _ => self.cmp_with(row, id),
        }
    }

    /// For a row, how many of `sorted` (ids in increasing order) are below its id; the ids are
    /// parsed once.
    pub(crate) fn count_below<'a>(&'a self, sorted: &'a [&'a str]) -> impl Fn(usize) -> usize + 'a {
        let uuids: Option<Vec<u128>> = match self {
            Self::Uuids(_) => sorted.iter().map(|id| canonical_uuid(id)).collect(),
            Self::Texts(_) => None,
        };
        move |row| match (self, &uuids) {
            (Self::Uuids(v), Some(uuids)) => uuids.partition_point(|end| *end < v[row]),
            _ => {
                let id = self.get(row);
                sorted.partition_point(|end| *end < id.as_ref())
            }
        }
    }

    /// Row `a`'s id compared with row `b`'s.
    pub(crate) fn cmp_rows(&self, a: usize, b: usize) -> Ordering {
        match self {
            Self::Uuids(v) => v[a].cmp(&v[b]),
            Self::Texts(v) => v[a].cmp(&v[b]),
        }
    }

    /// Whether the ids strictly increase.
    pub(crate) fn strictly_increasing(&self) -> bool {
        match self {
            Self::Uuids(v) => v.windows(2).all(|pair| pair[0] < pair[1]),
            Self::Texts(v) => v.windows(2).all(|pair| pair[0] < pair[1]),
        }
    }

    /// The row of `id` among rows `..end`, which are in id order.
    pub(crate) fn search(&self, end: usize, id: &str) -> Option<usize> {
        match (self, canonical_uuid(id)) {
            (Self::Uuids(v), Some(uuid)) => v[..end].binary_search(&uuid).ok(),
            (Self::Uuids(_), None) => None,
            (Self::Texts(v), _) => v[..end]
                .binary_search_by(|probe| probe.as_str().cmp(id))
                .ok(),
        }
    }

    pub(crate) fn push(&mut self, id: &str) {
        match (&mut *self, canonical_uuid(id)) {
            (Self::Uuids(v), Some(uuid)) => v.push(uuid),
            (Self::Uuids(v), None) => {
                let mut texts: Vec<String> = v.iter().map(|u| uuid_text(*u)).collect();
                texts.push(id.to_owned());
                *self = Self::Texts(texts);
            }
            (Self::Texts(v), _) => v.push(id.to_owned()),
        }
    }
}
