//! The encoding of a column snapshot (format 1): an entry's ids and columns cut into chunks of
//! [`CHUNK_ROWS`] rows, each chunk self-describing and checked on the way in, so a damaged or foreign
//! chunk is an error (the cache then loads from the documents), never a panic or a wrong value.
//!
//! Every chunk starts with a kind byte and its row count (`u32`, little-endian). Then:
//! - whole numbers (integers, money, dates, date-times, dictionary codes): a validity byte (all /
//!   none / a bitmap follows), the smallest value (`i64`) and a width of 0, 1, 2, 4 or 8 bytes, then
//!   each value minus the smallest in that width — region codes take a byte, dates two;
//! - floats: validity, then eight bytes each; booleans: validity, then a bitmap;
//! - text: validity, then each value as a `u32` length and its bytes;
//! - ids: canonical lower-case UUIDs (what the store generates) as 16 bytes each (big-endian, so in
//!   text order), or every id as text when some are not.
//!
//! A dictionary-coded column's distinct values are their own part (one chunk of texts). Decoding
//! writes each chunk straight into its slice of the full column, on every core.

use std::collections::HashMap;

use trellis_report::{ColumnData, ColumnType};

use super::ids::Ids;

/// Rows per chunk by default: big enough that a chunk is one cheap statement, small enough to spread
/// the decoding over the cores. (Readers take the chunks' own row counts.)
pub(crate) const CHUNK_ROWS: usize = 1 << 20;

/// The encoding's number, stored in the snapshot's head; a snapshot of another format is ignored.
pub(super) const FORMAT: i64 = 1;

const KIND_WHOLE: u8 = 1;
const KIND_FLOAT: u8 = 2;
const KIND_BOOL: u8 = 3;
const KIND_TEXT: u8 = 4;
const KIND_UUIDS: u8 = 5;

const ALL_VALID: u8 = 0;
const NONE_VALID: u8 = 1;
const BITMAP: u8 = 2;

/// A column of the cache: its field uid and type.
pub(super) type ColumnKey = (String, ColumnType);

/// Decoded ids and columns.
type Decoded = (Ids, HashMap<ColumnKey, ColumnData>);

/// The part holding a column's values.
pub(super) fn column_part(uid: &str, column: ColumnType) -> String {
    format!("c/{}/{uid}", type_tag(column))
}

/// The part holding a dictionary-coded column's distinct values.
pub(super) fn dictionary_part(uid: &str, column: ColumnType) -> String {
    format!("d/{}/{uid}", type_tag(column))
}

/// The part holding the record ids.
pub(super) const IDS_PART: &str = "ids";

/// The column a [`column_part`] name holds; `None` for other parts.
pub(super) fn column_of_part(part: &str) -> Option<(String, ColumnType)> {
    let (tag, uid) = part.strip_prefix("c/")?.split_once('/')?;
    let column = [
        ColumnType::Int,
        ColumnType::Float,
        ColumnType::Money,
        ColumnType::Bool,
        ColumnType::Text,
        ColumnType::Date,
        ColumnType::DateTime,
    ]
    .into_iter()
    .find(|column| type_tag(*column) == tag)?;
    Some((uid.to_owned(), column))
}

fn type_tag(column: ColumnType) -> &'static str {
    match column {
        ColumnType::Int => "int",
        ColumnType::Float => "float",
        ColumnType::Money => "money",
        ColumnType::Bool => "bool",
        ColumnType::Text => "text",
        ColumnType::Date => "date",
        ColumnType::DateTime => "datetime",
    }
}

/// Encode the rows `order` (indexes into `ids` and every column, in the order to store them) of
/// `ids` and `columns` as parts of chunks of `chunk_rows` rows.
pub(super) fn encode(
    ids: &Ids,
    order: &[usize],
    columns: &HashMap<ColumnKey, std::sync::Arc<ColumnData>>,
    chunk_rows: usize,
) -> Vec<(String, Vec<Vec<u8>>)> {
    let chunked = |encode_chunk: &dyn Fn(&[usize]) -> Vec<u8>| -> Vec<Vec<u8>> {
        order.chunks(chunk_rows.max(1)).map(encode_chunk).collect()
    };
    let mut parts = vec![(IDS_PART.to_owned(), chunked(&|rows| encode_ids(ids, rows)))];
    for ((uid, column), data) in columns {
        let part = column_part(uid, *column);
        let chunks = match data.as_ref() {
            ColumnData::Int(v) | ColumnData::Money(v) | ColumnData::DateTime(v) => {
                chunked(&|rows| encode_whole(rows.iter().map(|&r| v[r])))
            }
            ColumnData::Date(v) => {
                chunked(&|rows| encode_whole(rows.iter().map(|&r| v[r].map(i64::from))))
            }
            ColumnData::Dict { codes, values } => {
                parts.push((
                    dictionary_part(uid, *column),
                    vec![encode_texts(values.iter().map(|v| Some(v.as_str())))],
                ));
                chunked(&|rows| encode_whole(rows.iter().map(|&r| codes[r].map(i64::from))))
            }
            ColumnData::Float(v) => chunked(&|rows| encode_floats(rows.iter().map(|&r| v[r]))),
            ColumnData::Bool(v) => chunked(&|rows| encode_bools(rows.iter().map(|&r| v[r]))),
            ColumnData::Text(v) => {
                chunked(&|rows| encode_texts(rows.iter().map(|&r| v[r].as_deref())))
            }
        };
        parts.push((part, chunks));
    }
    parts
}

fn header(kind: u8, rows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + rows);
    out.push(kind);
    out.extend_from_slice(&(rows as u32).to_le_bytes());
    out
}

/// The validity byte and, when some but not all are valid, the bitmap.
fn push_validity(out: &mut Vec<u8>, valid: impl ExactSizeIterator<Item = bool>) {
    let rows = valid.len();
    let bits = bitmap(valid);
    let set: u32 = bits.iter().map(|b| b.count_ones()).sum();
    if set as usize == rows {
        out.push(ALL_VALID);
    } else if set == 0 {
        out.push(NONE_VALID);
    } else {
        out.push(BITMAP);
        out.extend_from_slice(&bits);
    }
}

fn bitmap(bits: impl Iterator<Item = bool>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, bit) in bits.enumerate() {
        if i % 8 == 0 {
            out.push(0);
        }
        if bit {
            *out.last_mut().expect("pushed above") |= 1 << (i % 8);
        }
    }
    out
}

fn encode_whole(values: impl ExactSizeIterator<Item = Option<i64>> + Clone) -> Vec<u8> {
    let mut out = header(KIND_WHOLE, values.len());
    push_validity(&mut out, values.clone().map(|v| v.is_some()));
    let (min, max) = values
        .clone()
        .flatten()
        .fold((i64::MAX, i64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (base, range) = if min > max {
        (0, 0)
    } else {
        (min, (i128::from(max) - i128::from(min)) as u128)
    };
    let width: usize = match range {
        0 => 0,
        1..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    };
    out.extend_from_slice(&base.to_le_bytes());
    out.push(width as u8);
    if width > 0 {
        out.reserve(values.len() * width);
        for value in values {
            let offset = value.map_or(0, |v| v.wrapping_sub(base) as u64);
            out.extend_from_slice(&offset.to_le_bytes()[..width]);
        }
    }
    out
}

fn encode_floats(values: impl ExactSizeIterator<Item = Option<f64>> + Clone) -> Vec<u8> {
    let mut out = header(KIND_FLOAT, values.len());
    push_validity(&mut out, values.clone().map(|v| v.is_some()));
    for value in values {
        out.extend_from_slice(&value.unwrap_or(0.0).to_le_bytes());
    }
    out
}

fn encode_bools(values: impl ExactSizeIterator<Item = Option<bool>> + Clone) -> Vec<u8> {
    let mut out = header(KIND_BOOL, values.len());
    push_validity(&mut out, values.clone().map(|v| v.is_some()));
    out.extend_from_slice(&bitmap(values.map(|v| v == Some(true))));
    out
}

fn encode_texts<'a>(values: impl ExactSizeIterator<Item = Option<&'a str>> + Clone) -> Vec<u8> {
    let mut out = header(KIND_TEXT, values.len());
    push_validity(&mut out, values.clone().map(|v| v.is_some()));
    for value in values {
        let value = value.unwrap_or("");
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

fn encode_ids(ids: &Ids, rows: &[usize]) -> Vec<u8> {
    match ids {
        Ids::Uuids(uuids) => {
            let mut out = header(KIND_UUIDS, rows.len());
            out.reserve(rows.len() * 16);
            for &row in rows {
                out.extend_from_slice(&uuids[row].to_be_bytes());
            }
            out
        }
        Ids::Texts(texts) => encode_texts(rows.iter().map(|&r| Some(texts[r].as_str()))),
    }
}

/// A chunk being read: its bytes and where the reader is.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or("chunk ends early")?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("four bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().expect("eight bytes"),
        ))
    }

    /// The chunk's kind (checked) and row count (checked against the slice it fills).
    fn header(&mut self, kind: u8, rows: usize) -> Result<(), String> {
        let found = self.u8()?;
        if found != kind {
            return Err(format!("chunk of kind {found}, expected {kind}"));
        }
        let count = self.u32()? as usize;
        if count != rows {
            return Err(format!("chunk of {count} rows, expected {rows}"));
        }
        Ok(())
    }

    /// Validity per row: `None` when all are valid.
    fn validity(&mut self, rows: usize) -> Result<Option<Vec<bool>>, String> {
        match self.u8()? {
            ALL_VALID => Ok(None),
            NONE_VALID => Ok(Some(vec![false; rows])),
            BITMAP => {
                let bits = self.take(rows.div_ceil(8))?;
                Ok(Some(
                    (0..rows)
                        .map(|i| bits[i / 8] & (1 << (i % 8)) != 0)
                        .collect(),
                ))
            }
            other => Err(format!("unknown validity {other}")),
        }
    }

    fn finish(&self) -> Result<(), String> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err("chunk has trailing bytes".into())
        }
    }
}

fn decode_whole<T>(
    bytes: &[u8],
    target: &mut [Option<T>],
    convert: impl Fn(i64) -> Option<T>,
) -> Result<(), String> {
    let mut reader = Reader { bytes, at: 0 };
    reader.header(KIND_WHOLE, target.len())?;
    let valid = reader.validity(target.len())?;
    let base = reader.i64()?;
    let width = reader.u8()? as usize;
    if ![0, 1, 2, 4, 8].contains(&width) {
        return Err(format!("unknown width {width}"));
    }
    let data = reader.take(target.len() * width)?;
    reader.finish()?;
    match width {
        0 => fill_whole::<T, 0>(data, base, target, valid.as_deref(), &convert),
        1 => fill_whole::<T, 1>(data, base, target, valid.as_deref(), &convert),
        2 => fill_whole::<T, 2>(data, base, target, valid.as_deref(), &convert),
        4 => fill_whole::<T, 4>(data, base, target, valid.as_deref(), &convert),
        _ => fill_whole::<T, 8>(data, base, target, valid.as_deref(), &convert),
    }
}

/// Each value of `WIDTH` bytes (`base` plus the offset), or missing where `valid` says so.
fn fill_whole<T, const WIDTH: usize>(
    data: &[u8],
    base: i64,
    target: &mut [Option<T>],
    valid: Option<&[bool]>,
    convert: &impl Fn(i64) -> Option<T>,
) -> Result<(), String> {
    let value = |raw: &[u8]| -> Result<T, String> {
        let mut bytes = [0u8; 8];
        bytes[..WIDTH].copy_from_slice(&raw[..WIDTH]);
        let whole = base.wrapping_add(u64::from_le_bytes(bytes) as i64);
        convert(whole).ok_or_else(|| format!("value {whole} out of range"))
    };
    let zero = [0u8; 8];
    for (i, slot) in target.iter_mut().enumerate() {
        let raw = if WIDTH == 0 {
            &zero[..]
        } else {
            &data[i * WIDTH..(i + 1) * WIDTH]
        };
        *slot = match valid {
            Some(valid) if !valid[i] => None,
            _ => Some(value(raw)?),
        };
    }
    Ok(())
}

fn decode_floats(bytes: &[u8], target: &mut [Option<f64>]) -> Result<(), String> {
    let mut reader = Reader { bytes, at: 0 };
    reader.header(KIND_FLOAT, target.len())?;
    let valid = reader.validity(target.len())?;
    let data = reader.take(target.len() * 8)?;
    reader.finish()?;
    for (i, slot) in target.iter_mut().enumerate() {
        let value = f64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().expect("eight bytes"));
        *slot = match &valid {
            Some(valid) if !valid[i] => None,
            _ => Some(value),
        };
    }
    Ok(())
}

fn decode_bools(bytes: &[u8], target: &mut [Option<bool>]) -> Result<(), String> {
    let mut reader = Reader { bytes, at: 0 };
    reader.header(KIND_BOOL, target.len())?;
    let valid = reader.validity(target.len())?;
    let bits = reader.take(target.len().div_ceil(8))?;
    reader.finish()?;
    for (i, slot) in target.iter_mut().enumerate() {
        *slot = match &valid {
            Some(valid) if !valid[i] => None,
            _ => Some(bits[i / 8] & (1 << (i % 8)) != 0),
        };
    }
    Ok(())
}

fn decode_texts(bytes: &[u8], target: &mut [Option<String>]) -> Result<(), String> {
    let mut reader = Reader { bytes, at: 0 };
    reader.header(KIND_TEXT, target.len())?;
    let valid = reader.validity(target.len())?;
    for (i, slot) in target.iter_mut().enumerate() {
        let length = reader.u32()? as usize;
        let text = std::str::from_utf8(reader.take(length)?).map_err(|e| e.to_string())?;
        *slot = match &valid {
            Some(valid) if !valid[i] => None,
            _ => Some(text.to_owned()),
        };
    }
    reader.finish()
}

fn decode_uuids(bytes: &[u8], target: &mut [u128]) -> Result<(), String> {
    let mut reader = Reader { bytes, at: 0 };
    reader.header(KIND_UUIDS, target.len())?;
    let data = reader.take(target.len() * 16)?;
    reader.finish()?;
    for (slot, raw) in target.iter_mut().zip(data.chunks_exact(16)) {
        *slot = u128::from_be_bytes(raw.try_into().expect("sixteen bytes"));
    }
    Ok(())
}

fn decode_id_texts(bytes: &[u8], target: &mut [String]) -> Result<(), String> {
    let mut texts = vec![None; target.len()];
    decode_texts(bytes, &mut texts)?;
    for (slot, text) in target.iter_mut().zip(texts) {
        *slot = text.ok_or("an id is missing")?;
    }
    Ok(())
}

/// One chunk to decode and the slice of the full column it fills.
enum Task<'a> {
    Uuids(&'a [u8], &'a mut [u128]),
    IdTexts(&'a [u8], &'a mut [String]),
    Whole(&'a [u8], &'a mut [Option<i64>]),
    Date(&'a [u8], &'a mut [Option<i32>]),
    Codes(&'a [u8], &'a mut [Option<u32>]),
    Float(&'a [u8], &'a mut [Option<f64>]),
    Bool(&'a [u8], &'a mut [Option<bool>]),
    Text(&'a [u8], &'a mut [Option<String>]),
}

impl Task<'_> {
    fn run(self) -> Result<(), String> {
        match self {
            Task::Uuids(bytes, target) => decode_uuids(bytes, target),
            Task::IdTexts(bytes, target) => decode_id_texts(bytes, target),
            Task::Whole(bytes, target) => decode_whole(bytes, target, Some),
            Task::Date(bytes, target) => decode_whole(bytes, target, |v| i32::try_from(v).ok()),
            Task::Codes(bytes, target) => decode_whole(bytes, target, |v| u32::try_from(v).ok()),
            Task::Float(bytes, target) => decode_floats(bytes, target),
            Task::Bool(bytes, target) => decode_bools(bytes, target),
            Task::Text(bytes, target) => decode_texts(bytes, target),
        }
    }
}

/// The target column for `column` as stored (a text part holds dictionary codes when it has a
/// dictionary part).
fn empty_column(column: ColumnType, rows: usize, dictionary: Option<Vec<String>>) -> ColumnData {
    match (column, dictionary) {
        (ColumnType::Int, _) => ColumnData::Int(vec![None; rows]),
        (ColumnType::Money, _) => ColumnData::Money(vec![None; rows]),
        (ColumnType::DateTime, _) => ColumnData::DateTime(vec![None; rows]),
        (ColumnType::Date, _) => ColumnData::Date(vec![None; rows]),
        (ColumnType::Float, _) => ColumnData::Float(vec![None; rows]),
        (ColumnType::Bool, _) => ColumnData::Bool(vec![None; rows]),
        (ColumnType::Text, Some(values)) => ColumnData::Dict {
            codes: vec![None; rows],
            values: std::sync::Arc::new(values),
        },
        (ColumnType::Text, None) => ColumnData::Text(vec![None; rows]),
    }
}

/// `target` cut into slices of `sizes` rows (which add up to its length).
fn split_at_sizes<'a, T>(mut target: &'a mut [T], sizes: &[usize]) -> Vec<&'a mut [T]> {
    let mut slices = Vec::with_capacity(sizes.len());
    for &size in sizes {
        let (head, rest) = std::mem::take(&mut target).split_at_mut(size);
        slices.push(head);
        target = rest;
    }
    slices
}

/// The tasks filling `target` from `chunks`, whose row counts are `sizes`.
fn tasks<'a>(target: &'a mut ColumnData, chunks: &'a [Vec<u8>], sizes: &[usize]) -> Vec<Task<'a>> {
    fn split<'a, T>(
        target: &'a mut [T],
        chunks: &'a [Vec<u8>],
        sizes: &[usize],
        task: fn(&'a [u8], &'a mut [T]) -> Task<'a>,
    ) -> Vec<Task<'a>> {
        split_at_sizes(target, sizes)
            .into_iter()
            .zip(chunks)
            .map(|(slice, bytes)| task(bytes, slice))
            .collect()
    }
    match target {
        ColumnData::Int(v) | ColumnData::Money(v) | ColumnData::DateTime(v) => {
            split(v, chunks, sizes, Task::Whole)
        }
        ColumnData::Date(v) => split(v, chunks, sizes, Task::Date),
        ColumnData::Dict { codes, .. } => split(codes, chunks, sizes, Task::Codes),
        ColumnData::Float(v) => split(v, chunks, sizes, Task::Float),
        ColumnData::Bool(v) => split(v, chunks, sizes, Task::Bool),
        ColumnData::Text(v) => split(v, chunks, sizes, Task::Text),
    }
}

/// A chunk's row count (from its header).
fn chunk_rows(chunk: &[u8]) -> Result<usize, String> {
    let count = chunk.get(1..5).ok_or("chunk ends early")?;
    Ok(u32::from_le_bytes(count.try_into().expect("four bytes")) as usize)
}

/// The ids and the `wanted` columns found in `parts`, `rows` each (columns the snapshot lacks are
/// left out: the cache loads them from the documents).
pub(super) fn decode(
    parts: &HashMap<String, Vec<Vec<u8>>>,
    rows: usize,
    wanted: &[(String, ColumnType)],
) -> Result<Decoded, String> {
    let started = std::time::Instant::now();
    let id_chunks = parts.get(IDS_PART).ok_or("the snapshot has no ids")?;
    // Every part is cut where the ids are (each chunk's header is checked against its slice).
    let sizes: Vec<usize> = id_chunks
        .iter()
        .map(|chunk| chunk_rows(chunk))
        .collect::<Result<_, _>>()?;
    if sizes.iter().sum::<usize>() != rows {
        return Err(format!("the ids' chunks do not hold {rows} rows"));
    }
    let chunks_of = |part: &str| -> Result<Option<&Vec<Vec<u8>>>, String> {
        match parts.get(part) {
            Some(chunks) if chunks.len() != sizes.len() => Err(format!(
                "part {part} has {} chunks, expected {}",
                chunks.len(),
                sizes.len()
            )),
            found => Ok(found),
        }
    };
    // Ids are all UUIDs or all texts (as encoded).
    let mut ids = if id_chunks
        .first()
        .is_some_and(|c| c.first() == Some(&KIND_TEXT))
    {
        Ids::Texts(vec![String::new(); rows])
    } else {
        Ids::Uuids(vec![0; rows])
    };
    let mut columns: Vec<(ColumnKey, ColumnData, &Vec<Vec<u8>>)> = Vec::new();
    for (uid, column) in wanted {
        let Some(chunks) = chunks_of(&column_part(uid, *column))? else {
            continue;
        };
        let dictionary = match parts.get(&dictionary_part(uid, *column)) {
            Some(dictionary) => {
                let [chunk] = dictionary.as_slice() else {
                    return Err(format!("dictionary of {uid} is not one chunk"));
                };
                let mut values = vec![None; chunk_rows(chunk)?];
                decode_texts(chunk, &mut values)?;
                Some(values.into_iter().map(Option::unwrap_or_default).collect())
            }
            None => None,
        };
        columns.push((
            (uid.clone(), *column),
            empty_column(*column, rows, dictionary),
            chunks,
        ));
    }
    let allocated_ms = started.elapsed().as_millis() as u64;
    {
        let mut work: Vec<Task<'_>> = match &mut ids {
            Ids::Uuids(uuids) => split_at_sizes(uuids, &sizes)
                .into_iter()
                .zip(id_chunks)
                .map(|(slice, bytes)| Task::Uuids(bytes, slice))
                .collect(),
            Ids::Texts(texts) => split_at_sizes(texts, &sizes)
                .into_iter()
                .zip(id_chunks)
                .map(|(slice, bytes)| Task::IdTexts(bytes, slice))
                .collect(),
        };
        for (_, target, chunks) in columns.iter_mut() {
            work.extend(tasks(target, chunks, &sizes));
        }
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(work.len().max(1));
        let queue = std::sync::Mutex::new(work);
        let next = || queue.lock().ok().and_then(|mut q| q.pop());
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| -> Result<(), String> {
                        while let Some(task) = next() {
                            task.run()?;
                        }
                        Ok(())
                    })
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().map_err(|_| "decoding panicked".to_owned())?)
        })?;
    }
    tracing::debug!(
        allocated_ms,
        filled_ms = started.elapsed().as_millis() as u64,
        "column snapshot decoded"
    );
    if let Some((key, ..)) = columns.iter().find(|(_, data, _)| match data {
        ColumnData::Dict { codes, values } => {
            codes.iter().flatten().any(|c| *c as usize >= values.len())
        }
        _ => false,
    }) {
        return Err(format!("column {} has a code past its dictionary", key.0));
    }
    Ok((
        ids,
        columns
            .into_iter()
            .map(|(key, data, _)| (key, data))
            .collect(),
    ))
}
