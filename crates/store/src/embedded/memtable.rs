//! What was written since the last checkpoint, in memory, over the B-tree.
//!
//! Every group the writer makes durable in the log is applied here before
//! anyone hears of it, so reads see acknowledged writes at once. A reader
//! looks in the *active* table, then in the *frozen* one (being written into
//! the B-tree by the checkpoint), then in the B-tree. A removed key is held
//! as `None`, so it hides the B-tree's older value.
//!
//! Reads take the tables' read lock only while they look at the tables, and
//! open the B-tree snapshot *after*: a checkpoint moves the frozen table
//! into the B-tree before it drops it, so whatever a reader did not find in
//! the tables is in any snapshot it opens afterwards.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use redb::ReadOnlyTable;

use super::wal::Mutation;
use crate::StoreError;

/// One table of changes: a value, or `None` for a removed key.
pub(crate) type Table = BTreeMap<Vec<u8>, Option<Vec<u8>>>;
/// Keys and values, as a range read returns them.
pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;
/// The B-tree as a reader sees it.
pub(crate) type Tree = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// The changes since the last checkpoint.
pub(crate) struct Memtables {
    /// What the writer adds to.
    active: Table,
    /// Bytes of keys and values in `active`.
    active_bytes: usize,
    /// When `active` got its first change.
    active_since: Option<Instant>,
    /// What a checkpoint is writing into the B-tree, up to this LSN.
    frozen: Option<(Arc<Table>, u64)>,
}

impl Memtables {
    pub(crate) fn new() -> Self {
        Self { active: Table::new(), active_bytes: 0, active_since: None, frozen: None }
    }

    /// The key's value here: `Some(Some(v))` set, `Some(None)` removed,
    /// `None` not changed since the last checkpoint.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        if let Some(v) = self.active.get(key) {
            return Some(v.as_deref());
        }
        let (frozen, _) = self.frozen.as_ref()?;
        frozen.get(key).map(|v| v.as_deref())
    }

    /// Applies a durable group.
    pub(crate) fn apply(&mut self, mutations: Vec<Mutation>) {
        if self.active_since.is_none() && !mutations.is_empty() {
            self.active_since = Some(Instant::now());
        }
        for m in mutations {
            self.active_bytes += m.key.len() + m.value.as_ref().map_or(0, Vec::len);
            self.active.insert(m.key, m.value);
        }
    }

    /// Bytes held by the active table, and how long it has been filling.
    pub(crate) fn active_size(&self) -> (usize, Option<Instant>) {
        (self.active_bytes, self.active_since)
    }

    /// True while a checkpoint is writing the frozen table.
    pub(crate) fn is_frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// Freezes the active table (everything up to `upto`) for a checkpoint.
    pub(crate) fn freeze(&mut self, upto: u64) -> Arc<Table> {
        let table = Arc::new(std::mem::take(&mut self.active));
        self.active_bytes = 0;
        self.active_since = None;
        self.frozen = Some((Arc::clone(&table), upto));
        table
    }

    /// Drops the frozen table once the B-tree holds it.
    pub(crate) fn thaw(&mut self) {
        self.frozen = None;
    }

    /// The changes in `[start, end)`, newest winning, up to the `limit`-th
    /// that sets a value: a copy, so the lock is not held while the B-tree
    /// is read. Past that key the merge with the B-tree already has `limit`
    /// values, so no later change (a removal included) can matter, and a
    /// sweep's page costs its length, not the whole memtable's range.
    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        let bounds = (Bound::Included(start), Bound::Excluded(end));
        let mut active = self.active.range::<[u8], _>(bounds).peekable();
        let mut frozen = self.frozen.iter().flat_map(|(table, _)| table.range::<[u8], _>(bounds)).peekable();
        let mut values = 0;
        while values < limit {
            let next = match (active.peek(), frozen.peek()) {
                (None, None) => break,
                (Some(_), None) => active.next(),
                (None, Some(_)) => frozen.next(),
                (Some((a, _)), Some((f, _))) => match a.cmp(f) {
                    std::cmp::Ordering::Less => active.next(),
                    std::cmp::Ordering::Greater => frozen.next(),
                    std::cmp::Ordering::Equal => {
                        // The active table holds the newer change.
                        frozen.next();
                        active.next()
                    }
                },
            };
            let Some((key, change)) = next else { break };
            values += usize::from(change.is_some());
            out.push((key.clone(), change.clone()));
        }
        out
    }
}

/// The tables behind their lock, and the newest B-tree snapshot.
pub(crate) struct View {
    pub(crate) tables: RwLock<Memtables>,
    tree: RwLock<Option<Arc<Tree>>>,
    db: Arc<redb::Database>,
}

fn tree_error(e: impl Into<redb::Error>) -> StoreError {
    super::redb_error(e.into())
}

impl View {
    pub(crate) fn new(db: Arc<redb::Database>, tables: Memtables) -> Self {
        let view = Self { tables: RwLock::new(tables), tree: RwLock::new(None), db };
        view.refresh();
        view
    }

    /// Publishes a snapshot of what the B-tree holds now (after a
    /// checkpoint). If one cannot be opened, readers open their own.
    pub(crate) fn refresh(&self) {
        let fresh = match open_tree(&self.db) {
            Ok(tree) => Some(Arc::new(tree)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a read snapshot; readers will open their own");
                None
            }
        };
        *self.tree.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
    }

    /// The newest B-tree snapshot.
    pub(crate) fn tree(&self) -> Result<Arc<Tree>, StoreError> {
        let shared = self.tree.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match shared {
            Some(tree) => Ok(tree),
            None => open_tree(&self.db).map(Arc::new),
        }
    }

    /// The key's value as of now.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        {
            let tables = self.tables.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(found) = tables.get(key) {
                return Ok(found.map(<[u8]>::to_vec));
            }
        }
        let tree = self.tree()?;
        Ok(tree.get(key).map_err(tree_error)?.map(|v| v.value().to_vec()))
    }

    /// Up to `limit` keys of `[start, end)` with their values, in key order.
    pub(crate) fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Pairs, StoreError> {
        let changed =
            self.tables.read().unwrap_or_else(std::sync::PoisonError::into_inner).range(start, end, limit);
        let tree = self.tree()?;
        let mut stored = tree.range(start..end).map_err(tree_error)?;
        let mut changed = changed.into_iter().peekable();
        let mut next_stored = stored.next().transpose().map_err(tree_error)?;
        let mut out = Vec::new();
        while out.len() < limit {
            let take_changed = match (changed.peek(), &next_stored) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((ck, _)), Some((sk, _))) => ck.as_slice() <= sk.value(),
            };
            if take_changed {
                let Some((k, v)) = changed.next() else { break };
                // The change replaces the stored value of the same key.
                if next_stored.as_ref().is_some_and(|(sk, _)| sk.value() == k.as_slice()) {
                    next_stored = stored.next().transpose().map_err(tree_error)?;
                }
                if let Some(v) = v {
                    out.push((k, v));
                }
            } else if let Some((k, v)) = next_stored.take() {
                out.push((k.value().to_vec(), v.value().to_vec()));
                next_stored = stored.next().transpose().map_err(tree_error)?;
            }
        }
        Ok(out)
    }
}

/// A fresh snapshot of the key space.
pub(crate) fn open_tree(db: &redb::Database) -> Result<Tree, StoreError> {
    use redb::ReadableDatabase;
    let txn = db.begin_read().map_err(tree_error)?;
    txn.open_table(super::KV).map_err(tree_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row key of profile `p` of account `a`.
    fn row(a: &str, p: &str, video: &str) -> Vec<u8> {
        format!("R{a}\0{p}\0{video}").into_bytes()
    }

    fn value(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn a_range_merges_the_active_table_over_the_frozen_one_and_stops_at_the_limit() {
        let mut tables = Memtables::new();
        let key = |v: &str| row("a", "A", v);
        tables.apply(vec![
            Mutation { key: key("1"), value: value("old 1") },
            Mutation { key: key("2"), value: value("old 2") },
            Mutation { key: key("3"), value: value("old 3") },
            Mutation { key: key("5"), value: value("old 5") },
        ]);
        tables.freeze(9);
        tables.apply(vec![
            Mutation { key: key("2"), value: None },
            Mutation { key: key("3"), value: value("new 3") },
            Mutation { key: key("4"), value: value("new 4") },
        ]);
        let (start, end) = (row("a", "A", ""), row("a", "A\x01", ""));
        let got = tables.range(&start, &end, usize::MAX);
        assert_eq!(
            got,
            vec![
                (key("1"), value("old 1")),
                (key("2"), None),
                (key("3"), value("new 3")),
                (key("4"), value("new 4")),
                (key("5"), value("old 5")),
            ]
        );
        // Two values: the removal between them is kept, so it still hides
        // what the B-tree holds; nothing past the second value is copied.
        assert_eq!(tables.range(&start, &end, 2), got[..3].to_vec());
        assert_eq!(tables.range(&start, &end, 0), Vec::new());
        assert_eq!(tables.get(&key("2")), Some(None));
        assert_eq!(tables.get(&key("5")), Some(Some(b"old 5".as_slice())));
        tables.thaw();
        assert_eq!(tables.get(&key("5")), None);
    }
}
