//! Verified tokens, remembered until they expire, so a signature (tens of µs for RSA) is
//! checked once per token rather than once per request. Sharded mutexes: a lookup holds
//! one shard's lock for a hash-map probe; 16 shards keep contention low on any core
//! count we run on.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Identity;

const SHARDS: usize = 16;

pub struct TokenCache {
    shards: Vec<Mutex<HashMap<Box<str>, Identity>>>,
    per_shard: usize,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0 disables caching).
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    fn shard(&self, token: &str) -> &Mutex<HashMap<Box<str>, Identity>> {
        let i = crate::hash::fnv1a(token.as_bytes()) as usize % SHARDS;
        &self.shards[i]
    }

    /// The identity of a token verified earlier, unless it has expired since.
    pub fn get(&self, token: &str, now: u64) -> Option<Identity> {
        if self.per_shard == 0 {
            return None;
        }
        let mut shard = self.shard(token).lock().unwrap_or_else(|p| p.into_inner());
        match shard.get(token) {
            Some(id) if id.expires_at > now => Some(id.clone()),
            Some(_) => {
                shard.remove(token);
                None
            }
            None => None,
        }
    }

    /// Remembers a verified token until `identity.expires_at`.
    pub fn insert(&self, token: &str, identity: Identity, now: u64) {
        if self.per_shard == 0 || identity.expires_at <= now {
            return;
        }
        let mut shard = self.shard(token).lock().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= self.per_shard {
            shard.retain(|_, id| id.expires_at > now);
        }
        if shard.len() >= self.per_shard {
            // Still full of live tokens: drop an arbitrary eighth (at least one). A
            // dropped token is simply verified again on its next use.
            let n = (self.per_shard / 8).max(1);
            let victims: Vec<Box<str>> = shard.keys().take(n).cloned().collect();
            for k in victims {
                shard.remove(&k);
            }
        }
        shard.insert(token.into(), identity);
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(sub: &str, expires_at: u64) -> Identity {
        Identity::user(sub, expires_at)
    }

    #[test]
    fn entries_expire_with_their_token() {
        let c = TokenCache::new(100);
        c.insert("t1", id("alice", 200), 100);
        assert_eq!(c.get("t1", 150).map(|i| i.sub), Some("alice".into()));
        assert_eq!(c.get("t1", 200), None, "gone at exp");
        assert_eq!(c.len(), 0, "expired entry removed on lookup");
        c.insert("t2", id("bob", 100), 100);
        assert_eq!(c.len(), 0, "an already-expired token is not cached");
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = TokenCache::new(64);
        for i in 0..10_000 {
            c.insert(&format!("token-{i}"), id("u", 1_000), 10);
        }
        assert!(c.len() <= 64, "{} entries", c.len());
        assert!(c.get("token-9999", 10).is_some(), "the newest is kept");
    }

    #[test]
    fn capacity_zero_disables_it() {
        let c = TokenCache::new(0);
        c.insert("t", id("u", 1_000), 10);
        assert!(c.get("t", 10).is_none());
        assert!(c.is_empty());
    }
}
