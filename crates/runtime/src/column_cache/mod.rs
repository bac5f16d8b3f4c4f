//! The per-entity column cache behind reports: every live record's value of the fields reports have
//! asked for, as typed columns, kept current from the change log. A report run refreshes the entry
//! (one statement for the changed ids, one for their values), evaluates the viewer's row filter and the
//! report's filters in memory, and hands the engine the matching rows — so a repeated dashboard reads
//! no documents. Entries are keyed by app version (a publish may rewrite documents) and dropped
//! beyond a memory budget.
//!
//! Entries of many rows are persisted as column snapshots (`codec`, `Store::save_column_snapshot`)
//! in the background, and rewritten once a tenth of their rows changed: a cold server loads an
//! entity from its snapshot and then only the records changed after the snapshot's cursor.

mod codec;
mod ids;
mod snapshots;

pub(crate) use ids::Ids;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use trellis_model::CheckedFilter;
use trellis_report::{ColumnData, ColumnType, Dataset};
use trellis_store::{ChangeCursor, ColumnRequest, ColumnValues, Store};

use crate::RuntimeError;

/// Values an entry may hold before it is no longer kept (≈ 8 bytes each).
const MAX_CELLS: usize = 200_000_000;

/// Generations of every entry of every cache of the process: a new one at each load and at each
/// refresh that found changes, never reused (a dropped and reloaded entry cannot repeat one).
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// When entries are persisted as column snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Entries of at least this many live rows are persisted (`usize::MAX`: never).
    pub min_rows: usize,
    /// Rows per stored chunk.
    pub chunk_rows: usize,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self {
            min_rows: 100_000,
            chunk_rows: codec::CHUNK_ROWS,
        }
    }
}

/// Shared by every request of a server.
#[derive(Debug, Default, Clone)]
pub struct ColumnCache {
    entries: Arc<Mutex<HashMap<EntryKey, Arc<tokio::sync::Mutex<Entry>>>>>,
    policy: SnapshotPolicy,
    /// Snapshot writes in flight, and background loads that may start one.
    writes: Arc<Mutex<tokio::task::JoinSet<()>>>,
    /// Entries loaded from snapshots and from the documents, since the start.
    loads: Arc<LoadCounts>,
}

/// How entries were loaded (see [`ColumnCache::loads`]).
#[derive(Debug, Default)]
struct LoadCounts {
    from_snapshots: std::sync::atomic::AtomicU64,
    from_documents: std::sync::atomic::AtomicU64,
    /// Scans of the documents for columns a loaded entry lacked.
    columns_added: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EntryKey {
    app: String,
    entity_uid: String,
    version: i64,
}

impl EntryKey {
    fn of(app: &str, version: i64, entity_uid: &str) -> Self {
        Self {
            app: app.to_owned(),
            entity_uid: entity_uid.to_owned(),
            version,
        }
    }
}

/// One entity's cached columns.
#[derive(Debug, Default)]
struct Entry {
    loaded: bool,
    cursor: ChangeCursor,
    /// Names the entry's data: equal generations, equal rows and values (see [`next_generation`]).
    generation: u64,
    ids: Ids,
    /// `ids[..sorted]` are in id order (as loaded); rows added since are indexed in `appended`. A
    /// full map of ten million ids would cost seconds on every cold load.
    sorted: usize,
    appended: HashMap<String, usize>,
    live: Vec<bool>,
    /// Shared with the datasets handed to reports (copied on write only while one still runs).
    columns: HashMap<(String, ColumnType), Arc<ColumnData>>,
    snapshot: SnapshotState,
}

/// What the entity's persisted snapshot holds, as far as this entry knows.
#[derive(Debug, Default)]
struct SnapshotState {
    /// The columns it holds (empty: none known to be current).
    columns: HashSet<(String, ColumnType)>,
    /// Records changed since it was taken.
    changed_since: usize,
    /// A write is in flight.
    writing: bool,
}

/// What the store loads for `columns`.
fn requests(columns: &[(String, ColumnType)]) -> Vec<ColumnRequest> {
    columns
        .iter()
        .map(|(uid, column)| ColumnRequest {
            uid: uid.clone(),
            kind: crate::reports::column_kind(*column),
        })
        .collect()
}

pub(crate) fn column_data(values: ColumnValues) -> ColumnData {
    match values {
        ColumnValues::Int(v) => ColumnData::Int(v),
        ColumnValues::Float(v) => ColumnData::Float(v),
        ColumnValues::Money(v) => ColumnData::Money(v),
        ColumnValues::Bool(v) => ColumnData::Bool(v),
        ColumnValues::Dict { codes, values } => ColumnData::Dict {
            codes,
            values: Arc::new(values),
        },
        ColumnValues::Date(v) => ColumnData::Date(v),
        ColumnValues::DateTime(v) => ColumnData::DateTime(v),
    }
}

/// Changed rows up to which a text value is looked up in the dictionary one by one rather than
/// through an index of the whole dictionary built for the refresh.
const FEW_CHANGES: usize = 16;

/// Write `value`'s row `from` into `column`'s row `to` (appending when `to` is the length);
/// `dictionary` indexes a text column's distinct values (left empty when `few` rows changed: the
/// values are then searched one by one).
fn put(
    column: &mut ColumnData,
    to: usize,
    value: &ColumnData,
    from: usize,
    dictionary: &mut HashMap<String, u32>,
    few: bool,
) {
    fn set<T: Clone>(target: &mut Vec<Option<T>>, to: usize, value: Option<T>) {
        if to == target.len() {
            target.push(value);
        } else {
            target[to] = value;
        }
    }
    match (column, value) {
        (ColumnData::Int(t), ColumnData::Int(v))
        | (ColumnData::Money(t), ColumnData::Money(v))
        | (ColumnData::DateTime(t), ColumnData::DateTime(v)) => set(t, to, v[from]),
        (ColumnData::Float(t), ColumnData::Float(v)) => set(t, to, v[from]),
        (ColumnData::Bool(t), ColumnData::Bool(v)) => set(t, to, v[from]),
        (ColumnData::Date(t), ColumnData::Date(v)) => set(t, to, v[from]),
        (ColumnData::Text(t), ColumnData::Text(v)) => set(t, to, v[from].clone()),
        (
            ColumnData::Dict { codes, values },
            ColumnData::Dict {
                codes: new_codes,
                values: new_values,
            },
        ) => {
            if !few && dictionary.is_empty() && !values.is_empty() {
                dictionary.extend(
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (v.clone(), i as u32)),
                );
            }
            let code = new_codes[from].map(|c| {
                let text = &new_values[c as usize];
                let existing = if few {
                    values.iter().position(|v| v == text).map(|i| i as u32)
                } else {
                    dictionary.get(text).copied()
                };
                existing.unwrap_or_else(|| {
                    // Copied first only while a dataset still shares the texts.
                    let values = Arc::make_mut(values);
                    values.push(text.clone());
                    let code = values.len() as u32 - 1;
                    if !few {
                        dictionary.insert(text.clone(), code);
                    }
                    code
                })
            });
            set(codes, to, code);
        }
        (column, _) => {
            // A kind mismatch cannot happen (columns are keyed by kind); keep lengths aligned.
            *column = ColumnData::empty(column.column_type());
        }
    }
}

impl Entry {
    /// The row of record `id`, if it has one.
    fn row_of(&self, id: &str) -> Option<usize> {
        self.ids
            .search(self.sorted, id)
            .or_else(|| self.appended.get(id).copied())
    }

    fn cells(&self) -> usize {
        self.ids.len() * (self.columns.len() + 1)
    }

    /// Load every live record's id and the given columns: from the entity's snapshot when it has
    /// one of this app version (the caller's refresh then applies later changes and loads the
    /// columns it lacks), else from the documents. `true`: from the snapshot.
    async fn load(
        &mut self,
        store: &Store,
        (app, version, entity_uid): (&str, i64, &str),
        wanted: &[(String, ColumnType)],
    ) -> Result<bool, RuntimeError> {
        match self
            .load_snapshot(store, (app, version, entity_uid), wanted)
            .await
        {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(app, entity = entity_uid, %error, "column snapshot not used");
            }
        }
        self.load_documents(store, app, entity_uid, wanted).await?;
        Ok(false)
    }

    /// Load every live record's id and the given columns from the documents.
    async fn load_documents(
        &mut self,
        store: &Store,
        app: &str,
        entity_uid: &str,
        wanted: &[(String, ColumnType)],
    ) -> Result<(), RuntimeError> {
        let started = std::time::Instant::now();
        self.cursor = store.change_cursor().await?;
        let requests = requests(wanted);
        let loaded = store
            .load_columns(app, entity_uid, &requests, &CheckedFilter::All)
            .await?;
        // Loads come in id order; a database collation that orders ids otherwise than Rust does
        // (PostgreSQL's can) gets them all indexed in the map instead.
        if loaded.ids.windows(2).all(|pair| pair[0] < pair[1]) {
            self.sorted = loaded.ids.len();
            self.appended = HashMap::new();
        } else {
            self.sorted = 0;
            self.appended = loaded
                .ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i))
                .collect();
        }
        self.live = vec![true; loaded.ids.len()];
        self.ids = Ids::from_texts(loaded.ids);
        self.generation = next_generation();
        self.columns = wanted
            .iter()
            .cloned()
            .zip(
                loaded
                    .columns
                    .into_iter()
                    .map(|values| Arc::new(column_data(values))),
            )
            .collect();
        // Whatever snapshot there is predates this load.
        self.snapshot.columns.clear();
        self.loaded = true;
        tracing::debug!(
            app,
            entity = entity_uid,
            columns = wanted.len(),
            rows = self.ids.len(),
            ms = started.elapsed().as_millis() as u64,
            "columns loaded from the documents"
        );
        Ok(())
    }

    /// Bring the entry up to date with the change log, and add any column it lacks (`true`: it
    /// lacked some, read from the documents).
    async fn refresh(
        &mut self,
        store: &Store,
        app: &str,
        entity_uid: &str,
        wanted: &[(String, ColumnType)],
    ) -> Result<bool, RuntimeError> {
        let missing: Vec<(String, ColumnType)> = wanted
            .iter()
            .filter(|key| !self.columns.contains_key(*key))
            .cloned()
            .collect();
        let added = !missing.is_empty();
        if added {
            // Load the new columns for every live record, aligned to the cached rows; rows that
            // changed meanwhile are reloaded whole by the change-log pass below.
            let started = std::time::Instant::now();
            let names: Vec<&str> = missing.iter().map(|(uid, _)| uid.as_str()).collect();
            let names = names.join(",");
            let requests = requests(&missing);
            let loaded = store
                .load_columns(app, entity_uid, &requests, &CheckedFilter::All)
                .await?;
            let rows: Vec<Option<usize>> = {
                let at: HashMap<&str, usize> = loaded
                    .ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| (id.as_str(), i))
                    .collect();
                (0..self.ids.len())
                    .map(|row| at.get(self.ids.get(row).as_ref()).copied())
                    .collect()
            };
            for (key, values) in missing.into_iter().zip(loaded.columns) {
                self.columns
                    .insert(key, Arc::new(column_data(values).take(&rows)));
            }
            tracing::debug!(
                app,
                entity = entity_uid,
                columns = %names,
                rows = self.ids.len(),
                ms = started.elapsed().as_millis() as u64,
                "columns added from the documents"
            );
        }
        let (changed, next) = store.record_changes(app, entity_uid, self.cursor).await?;
        if changed.len() > 50_000.max(self.ids.len() / 5) {
            // A bulk change: loading everything again is cheaper than patching row by row.
            let keys: Vec<(String, ColumnType)> = self.columns.keys().cloned().collect();
            self.load_documents(store, app, entity_uid, &keys).await?;
            return Ok(added);
        }
        if !changed.is_empty() {
            let started = std::time::Instant::now();
            self.generation = next_generation();
            self.snapshot.changed_since += changed.len();
            let mut dictionaries: Vec<HashMap<String, u32>> = Vec::new();
            let keys: Vec<(String, ColumnType)> = self.columns.keys().cloned().collect();
            dictionaries.resize_with(keys.len(), HashMap::new);
            let requests = requests(&keys);
            for chunk in changed.chunks(10_000) {
                let fresh = store
                    .load_columns_of(app, entity_uid, &requests, chunk)
                    .await?;
                let fresh_columns: Vec<ColumnData> =
                    fresh.columns.into_iter().map(column_data).collect();
                let found: HashMap<&str, usize> = fresh
                    .ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| (id.as_str(), i))
                    .collect();
                for id in chunk {
                    let slot = self.row_of(id);
                    match (found.get(id.as_str()), slot) {
                        (Some(&from), slot) => {
                            let to = slot.unwrap_or(self.ids.len());
                            for ((key, value), dictionary) in
                                keys.iter().zip(&fresh_columns).zip(dictionaries.iter_mut())
                            {
                                if let Some(column) = self.columns.get_mut(key) {
                                    put(
                                        Arc::make_mut(column),
                                        to,
                                        value,
                                        from,
                                        dictionary,
                                        changed.len() <= FEW_CHANGES,
                                    );
                                }
                            }
                            if slot.is_none() {
                                self.ids.push(id);
                                self.appended.insert(id.clone(), to);
                                self.live.push(true);
                            } else {
                                self.live[to] = true;
                            }
                        }
                        // Deleted (or never visible): no longer a row of any report.
                        (None, Some(slot)) => self.live[slot] = false,
                        (None, None) => {}
                    }
                }
            }
            tracing::debug!(
                entity = entity_uid,
                changed = changed.len(),
                ms = started.elapsed().as_millis() as u64,
                "column cache refreshed"
            );
        }
        self.cursor = next;
        Ok(added)
    }
}

/// Read access to one entity's cached columns (current as of the call), without copying them.
pub(crate) struct EntryView<'a> {
    /// Record ids, one per row.
    pub ids: &'a Ids,
    /// Whether each row is still a live record.
    pub live: &'a [bool],
    columns: &'a HashMap<(String, ColumnType), Arc<ColumnData>>,
}

impl EntryView<'_> {
    /// A column the call asked for.
    pub(crate) fn column(&self, uid: &str, column: ColumnType) -> Option<&ColumnData> {
        self.columns
            .get(&(uid.to_owned(), column))
            .map(|data| data.as_ref())
    }
}

impl ColumnCache {
    /// The entry of an entity at an app version (older versions of that entity are dropped: never
    /// read again).
    fn entry(&self, key: &EntryKey) -> Result<Arc<tokio::sync::Mutex<Entry>>, RuntimeError> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| RuntimeError::Internal("column cache poisoned".into()))?;
        entries.retain(|k, _| {
            !(k.app == key.app && k.entity_uid == key.entity_uid && k.version != key.version)
        });
        Ok(entries.entry(key.clone()).or_default().clone())
    }

    /// A cache of this snapshot policy.
    pub(crate) fn new(policy: SnapshotPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// The entry of an entity at an app version with `fields`, loaded and brought up to date with
    /// the change log (locked); its snapshot is (re)written in the background when due.
    async fn current(
        &self,
        store: &Store,
        (app, version, entity_uid): (&str, i64, &str),
        fields: &[(String, ColumnType)],
    ) -> Result<tokio::sync::OwnedMutexGuard<Entry>, RuntimeError> {
        let key = EntryKey::of(app, version, entity_uid);
        let shared = self.entry(&key)?;
        let mut entry = shared.clone().lock_owned().await;
        if !entry.loaded {
            let from_snapshot = entry
                .load(store, (app, version, entity_uid), fields)
                .await?;
            let count = if from_snapshot {
                &self.loads.from_snapshots
            } else {
                &self.loads.from_documents
            };
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // Changes that committed while loading (or after the snapshot) are applied now.
        if entry.refresh(store, app, entity_uid, fields).await? {
            self.loads
                .columns_added
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if entry.snapshot_due(&self.policy) {
            entry.snapshot.writing = true;
            self.write_snapshot(store.clone(), key, shared);
        }
        Ok(entry)
    }

    /// How many times since the start a loaded entry lacked columns and read them from the
    /// documents.
    pub(crate) fn columns_added(&self) -> u64 {
        self.loads
            .columns_added
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Entries loaded from snapshots and from the documents since the start, as
    /// `(from_snapshots, from_documents)`.
    pub(crate) fn loads(&self) -> (u64, u64) {
        let read =
            |count: &std::sync::atomic::AtomicU64| count.load(std::sync::atomic::Ordering::Relaxed);
        (
            read(&self.loads.from_snapshots),
            read(&self.loads.from_documents),
        )
    }

    /// Run `work` (a load that may write a snapshot) in the background, waited for by
    /// [`ColumnCache::snapshots_written`].
    pub(crate) fn track(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Ok(mut writes) = self.writes.lock() {
            while writes.try_join_next().is_some() {}
            writes.spawn(work);
        }
    }

    /// Bring `fields` of an entity up to date and run `work` over the cached columns on a blocking
    /// thread, in place (batch-run pre-filters read millions of rows this way without a copy).
    pub(crate) async fn with_columns<T: Send + 'static>(
        &self,
        store: &Store,
        (app, version, entity_uid): (&str, i64, &str),
        fields: &[(String, ColumnType)],
        work: impl FnOnce(EntryView<'_>) -> T + Send + 'static,
    ) -> Result<T, RuntimeError> {
        let key = EntryKey::of(app, version, entity_uid);
        let entry = self
            .current(store, (app, version, entity_uid), fields)
            .await?;
        let too_big = entry.cells() > MAX_CELLS;
        let result = tokio::task::spawn_blocking(move || {
            work(EntryView {
                ids: &entry.ids,
                live: &entry.live,
                columns: &entry.columns,
            })
        })
        .await
        .map_err(|e| RuntimeError::Internal(format!("column cache: {e}")))?;
        if too_big && let Ok(mut entries) = self.entries.lock() {
            entries.remove(&key);
        }
        Ok(result)
    }

    /// Load (or refresh) `fields` of an entity in one pass — a dashboard calls this with the union of
    /// its widgets' fields before running them, instead of one scan per widget.
    pub(crate) async fn warm(
        &self,
        store: &Store,
        (app, version, entity_uid): (&str, i64, &str),
        fields: &[(String, ColumnType)],
    ) -> Result<(), RuntimeError> {
        self.current(store, (app, version, entity_uid), fields)
            .await
            .map(drop)
    }

    /// The generation of an entity's entry brought up to date with the change log, or `None` when
    /// nothing is loaded yet. Data read from the entry after this call is of this generation or a
    /// later one, so a result computed from it may be kept under this generation
    /// (`reports::results`).
    pub(crate) async fn generation(
        &self,
        store: &Store,
        (app, version, entity_uid): (&str, i64, &str),
    ) -> Result<Option<u64>, RuntimeError> {
        let key = EntryKey::of(app, version, entity_uid);
        let entry = self.entry(&key)?;
        let mut entry = entry.lock().await;
        if !entry.loaded {
            return Ok(None);
        }
        entry.refresh(store, app, entity_uid, &[]).await?;
        Ok(Some(entry.generation))
    }

    /// The rows of `entity_uid` matching `filter`, with the `fields` columns keyed by field name —
    /// or `None` when the filter cannot be evaluated in memory (the caller then loads with SQL).
    pub(crate) async fn dataset(
        &self,
        store: &Store,
        (app, version, entity_uid): (&str, i64, &str),
        fields: &[(String, String, ColumnType)],
        filter: &CheckedFilter,
        with_ids: bool,
    ) -> Result<Option<Dataset>, RuntimeError> {
        let Some(filter_columns) = trellis_report::filter::columns_needed(filter) else {
            return Ok(None);
        };
        let mut wanted: Vec<(String, ColumnType)> = fields
            .iter()
            .map(|(_, uid, column)| (uid.clone(), *column))
            .chain(filter_columns)
            .collect();
        wanted.sort_by(|a, b| a.0.cmp(&b.0));
        wanted.dedup();
        let key = EntryKey::of(app, version, entity_uid);
        let entry = self
            .current(store, (app, version, entity_uid), &wanted)
            .await?;
        let by_uid: HashMap<&str, &ColumnData> = entry
            .columns
            .iter()
            .map(|((uid, _), data)| (uid.as_str(), data.as_ref()))
            .collect();
        let lookup = |uid: &str| by_uid.get(uid).copied();
        // No filter: no mask of every row to build and test.
        let matches = (!matches!(filter, CheckedFilter::All))
            .then(|| trellis_report::filter::mask(filter, &lookup, entry.ids.len()));
        let every_row =
            entry.live.iter().all(|l| *l) && matches.as_ref().is_none_or(|m| m.iter().all(|m| *m));
        // Rows are listed only when some are left out or their ids are wanted.
        let rows: Vec<usize> = if every_row && !with_ids {
            Vec::new()
        } else {
            // Room for every row up front: growing a list of millions by doubling copies it
            // and touches fresh memory each time.
            let mut rows = Vec::with_capacity(entry.ids.len());
            rows.extend(
                (0..entry.ids.len())
                    .filter(|&i| entry.live[i] && matches.as_ref().is_none_or(|m| m[i])),
            );
            rows
        };
        let mut dataset = Dataset {
            rows: if every_row {
                entry.ids.len()
            } else {
                rows.len()
            },
            ids: if with_ids {
                rows.iter()
                    .map(|&i| entry.ids.get(i).into_owned())
                    .collect()
            } else {
                Vec::new()
            },
            columns: Default::default(),
        };
        for (name, uid, column) in fields {
            if let Some(data) = entry.columns.get(&(uid.clone(), *column)) {
                let data = if every_row {
                    Arc::clone(data)
                } else {
                    Arc::new(data.take_rows(&rows))
                };
                dataset.columns.insert(name.clone(), data);
            }
        }
        let too_big = entry.cells() > MAX_CELLS;
        drop(entry);
        if too_big && let Ok(mut entries) = self.entries.lock() {
            entries.remove(&key);
        }
        Ok(Some(dataset))
    }
}
