//! An in-process cache (quick_cache), for a single node in front of a remote
//! store. Entries live at most `ttl`: other nodes' writes do not reach this
//! cache, so the TTL is the staleness bound across nodes.

use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use playmark_core::{Entry, ProgressKey};
use quick_cache::sync::Cache;

use crate::cache::{CacheError, ProgressCache};

/// The in-process [`ProgressCache`].
pub struct MemoryCache {
    entries: Cache<ProgressKey, (Entry, Instant)>,
    ttl: Duration,
    stripes: Vec<Mutex<()>>,
    hasher: RandomState,
}

/// Lock stripes for puts: enough that unrelated keys rarely share one.
const STRIPES: usize = 64;

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache").field("len", &self.entries.len()).field("ttl", &self.ttl).finish()
    }
}

impl MemoryCache {
    /// A cache of at most `capacity` entries, each kept at most `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: Cache::new(capacity.max(1)),
            ttl,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: RandomState::new(),
        }
    }
}

#[async_trait]
impl ProgressCache for MemoryCache {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &ProgressKey) -> Result<Option<Entry>, CacheError> {
        Ok(self.entries.get(key).filter(|(_, at)| at.elapsed() < self.ttl).map(|(e, _)| e))
    }

    async fn put(&self, key: &ProgressKey, entry: &Entry) -> Result<bool, CacheError> {
        // Check and insert under the key's stripe lock: a compare-and-set
        // against every other put of the same key. Reads take no lock.
        let _stripe = self.stripes[self.hasher.hash_one(key) as usize % STRIPES]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match self.entries.get(key) {
            Some((current, at)) if at.elapsed() < self.ttl && *entry <= current => Ok(false),
            _ => {
                self.entries.insert(key.clone(), (entry.clone(), Instant::now()));
                Ok(true)
            }
        }
    }

    async fn remove(&self, key: &ProgressKey) -> Result<(), CacheError> {
        self.entries.remove(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}
