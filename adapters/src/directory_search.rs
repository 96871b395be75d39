//! The directory's search rows kept in memory, per tenant, on each node.
//!
//! A picker searches as its user types; at a real company's size a scan of the tenant's rows in
//! the database costs milliseconds each time, while the same scan over the rows in memory costs
//! tens of microseconds. Freshness: every write of a tenant's users moves the tenant's stamp
//! (`directory_stamps`, in the write's own transaction, on whichever node), and a search reads
//! the stamp first — rows are served from memory only while their stamp is the stored one.
//!
//! Bounded in bytes: a tenant whose rows exceed [`SearchCache::per_tenant`] is marked too large
//! and searched in the database; all tenants together stay under [`SearchCache::budget`], the
//! least recently searched going first. One load at a time per node: a search that finds a load
//! under way is answered from the database instead of loading again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One user's search row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SearchRow {
    pub id: String,
    pub name: String,
    pub search: String,
}

impl SearchRow {
    /// What the row costs in memory, roughly: its text and the three strings' headers.
    fn bytes(&self) -> usize {
        self.id.len() + self.name.len() + self.search.len() + 3 * 24
    }
}

/// A tenant's rows as kept: ordered by id (byte-wise), or too large to keep.
#[derive(Debug, Clone)]
pub(crate) enum Cached {
    Rows(Arc<Vec<SearchRow>>),
    TooLarge,
}

#[derive(Debug)]
struct Entry {
    stamp: i64,
    cached: Cached,
    bytes: usize,
    used: u64,
}

#[derive(Debug, Default)]
struct Inner {
    tenants: HashMap<String, Entry>,
    bytes: usize,
    clock: u64,
}

#[derive(Debug)]
pub(crate) struct SearchCache {
    inner: Mutex<Inner>,
    /// Held while a tenant's rows are read from the database.
    pub loading: tokio::sync::Mutex<()>,
    /// All tenants' rows together, in bytes.
    pub budget: usize,
    /// One tenant's rows, in bytes: a larger tenant is searched in the database.
    pub per_tenant: usize,
}

impl Default for SearchCache {
    fn default() -> Self {
        Self::new(256 << 20, 64 << 20)
    }
}

impl SearchCache {
    pub(crate) fn new(budget: usize, per_tenant: usize) -> Self {
        Self {
            inner: Mutex::default(),
            loading: tokio::sync::Mutex::new(()),
            budget,
            per_tenant: per_tenant.min(budget),
        }
    }

    /// The tenant's rows if they were read at `stamp`.
    pub(crate) fn get(&self, tenant: &str, stamp: i64) -> Option<Cached> {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.clock += 1;
        let clock = inner.clock;
        let entry = inner
            .tenants
            .get_mut(tenant)
            .filter(|entry| entry.stamp == stamp)?;
        entry.used = clock;
        Some(entry.cached.clone())
    }

    /// Keeps `rows` (ordered by id) read at `stamp`, or marks the tenant too large; evicts the
    /// least recently used tenants until all fit the budget. An entry of a later stamp is kept
    /// (a slow load does not replace a newer one).
    pub(crate) fn put(&self, tenant: &str, stamp: i64, rows: Option<Vec<SearchRow>>) -> Cached {
        let (cached, bytes) = match rows {
            Some(rows) => {
                let bytes = rows.iter().map(SearchRow::bytes).sum();
                if bytes > self.per_tenant {
                    (Cached::TooLarge, 0)
                } else {
                    (Cached::Rows(Arc::new(rows)), bytes)
                }
            }
            None => (Cached::TooLarge, 0),
        };
        let mut inner = self.inner.lock().expect("not poisoned");
        if let Some(newer) = inner
            .tenants
            .get(tenant)
            .filter(|entry| entry.stamp > stamp)
        {
            return newer.cached.clone();
        }
        if let Some(old) = inner.tenants.remove(tenant) {
            inner.bytes -= old.bytes;
        }
        while inner.bytes + bytes > self.budget {
            let Some(oldest) = inner
                .tenants
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(name, _)| name.clone())
            else {
                break;
            };
            let evicted = inner.tenants.remove(&oldest).expect("found above");
            inner.bytes -= evicted.bytes;
        }
        inner.clock += 1;
        let used = inner.clock;
        inner.bytes += bytes;
        inner.tenants.insert(
            tenant.to_owned(),
            Entry {
                stamp,
                cached: cached.clone(),
                bytes,
                used,
            },
        );
        cached
    }

    #[cfg(test)]
    fn tenants(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.lock().unwrap().tenants.keys().cloned().collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(count: usize) -> Vec<SearchRow> {
        (0..count)
            .map(|n| SearchRow {
                id: format!("u{n:04}"),
                name: "张伟".to_owned(),
                search: "u\u{1f}张伟\u{1f}zhangwei\u{1f}zw".to_owned(),
            })
            .collect()
    }

    #[test]
    fn the_least_recently_searched_tenant_goes_first_and_a_fresh_load_counts_as_used() {
        let one = rows(10).iter().map(SearchRow::bytes).sum::<usize>();
        let cache = SearchCache::new(3 * one, one);
        cache.put("a", 1, Some(rows(10)));
        cache.put("b", 1, Some(rows(10)));
        cache.put("c", 1, Some(rows(10)));
        // a searched, then b reloaded after a write: c is the least recently used.
        assert!(cache.get("a", 1).is_some());
        cache.put("b", 2, Some(rows(10)));
        cache.put("d", 1, Some(rows(10)));
        assert_eq!(cache.tenants(), ["a", "b", "d"]);
        // A stamp that moved is a miss.
        assert!(cache.get("b", 1).is_none());
        assert!(cache.get("b", 2).is_some());
    }

    #[test]
    fn a_tenant_over_its_bound_is_too_large_and_costs_nothing() {
        let one = rows(10).iter().map(SearchRow::bytes).sum::<usize>();
        let cache = SearchCache::new(10 * one, one);
        assert!(matches!(
            cache.put("big", 1, Some(rows(11))),
            Cached::TooLarge
        ));
        assert!(matches!(cache.get("big", 1), Some(Cached::TooLarge)));
        assert_eq!(cache.inner.lock().unwrap().bytes, 0);
    }

    #[test]
    fn a_slow_load_does_not_replace_a_newer_one() {
        let cache = SearchCache::default();
        cache.put("a", 5, Some(rows(2)));
        let kept = cache.put("a", 4, Some(rows(1)));
        assert!(matches!(kept, Cached::Rows(rows) if rows.len() == 2));
        assert!(cache.get("a", 5).is_some());
    }
}
