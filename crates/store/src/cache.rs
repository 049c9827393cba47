//! The cache port: a fast, lossy copy of recent entries in front of a store.
//!
//! A cache never decides anything. It holds entries under the same merge rule
//! as the store (a put only replaces an older entry), so a slow writer or a
//! racing refill can never put an older record over a newer one, and it may
//! forget anything at any time. Timeouts and fallbacks are the caller's.

use async_trait::async_trait;
use playmark_core::{Entry, ProgressKey};

/// Why a cache operation failed. Every failure is a miss to the caller.
#[derive(Debug, thiserror::Error)]
#[error("{backend} cache failed: {reason}")]
pub struct CacheError {
    /// Which cache.
    pub backend: &'static str,
    /// What went wrong.
    pub reason: String,
}

/// A cache of progress entries (tombstones included).
#[async_trait]
pub trait ProgressCache: Send + Sync + std::fmt::Debug + 'static {
    /// A short name for logs and metrics, e.g. `redis`.
    fn backend(&self) -> &'static str;

    /// The cached entry, if any.
    async fn get(&self, key: &ProgressKey) -> Result<Option<Entry>, CacheError>;

    /// Caches `entry` unless a newer one is cached (compare-and-set under
    /// the merge rule). Returns whether it was stored.
    async fn put(&self, key: &ProgressKey, entry: &Entry) -> Result<bool, CacheError>;

    /// [`put`](Self::put) for many entries at once (one round trip where the
    /// cache can pipeline them): whether each was stored, in order. By
    /// default, the puts one after another.
    async fn put_many(&self, entries: &[(ProgressKey, Entry)]) -> Result<Vec<bool>, CacheError> {
        let mut stored = Vec::with_capacity(entries.len());
        for (key, entry) in entries {
            stored.push(self.put(key, entry).await?);
        }
        Ok(stored)
    }

    /// Forgets the key.
    async fn remove(&self, key: &ProgressKey) -> Result<(), CacheError>;

    /// Succeeds when the cache answers.
    async fn ping(&self) -> Result<(), CacheError>;
}
