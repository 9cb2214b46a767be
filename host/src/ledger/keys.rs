//! The ledger's key layout, for its two sled trees. Every key starts with a one-byte kind, then
//! length-prefixed names, so no tenant or plugin name can make two keys collide.
//!
//! `meta`: `t`+tenant → tenant record; `k`+token hash → tenant; `p`+tenant+plugin →
//! plugin record; `P`+tenant → policy; `F` → the format marker; `R` → the random
//! secret; `C`+who+secret hash → a console session.
//! `pipeline`: `i`+tenant+seq → inbox chunk (the events of one request, from seq); `d`+tenant+event id → seq;
//! `g`+(tenant, plugin scope)+bound → a page of plugin state (keys from the bound on;
//! `s` names the keys in the journal); `e`+seq → a state journal record (writes not
//! yet folded into pages); `c`+tenant+plugin → detector cursor;
//! `f`+tenant+seq → finding; `q`+tenant+position+plugin+seq → a finding waiting for
//! its decision; `x`+tenant+seq → decision; `O`, `E`+tenant → the decision engine's
//! cursor over the inbox and its memory; `r`+tenant+seq → pending response;
//! `a`+tenant+decision+responder+action+target → action log entry; `L`+tenant+seq →
//! dead letter; `w`+tenant+source → how far a pull source was read; `v`+tenant+decision
//! seq → review; `u`+tenant → suppressions; `y`+tenant+(`f`|`d`)+seq → triage;
//! `N`+tenant+route+subject+rule → when a route last sent about them; `G`+tenant+route+
//! decision seq → a line waiting for the route's digest; `z`+partition → the stream
//! sequence a cluster node has let into the inbox.

/// Where the daemon keeps plugin state in the `pipeline` tree.
pub const STATE_LAYOUT: crate::store::StateLayout<'static> = crate::store::StateLayout {
    keys: &[kind::STATE],
    pages: &[kind::STATE_PAGE],
    journal: &[kind::STATE_JOURNAL],
    old_journal: Some(&[kind::OLD_STATE_JOURNAL]),
};

/// Kind bytes.
pub mod kind {
    /// Tenant record.
    pub const TENANT: u8 = b't';
    /// Token hash → tenant.
    pub const TOKEN: u8 = b'k';
    /// Plugin record.
    pub const PLUGIN: u8 = b'p';
    /// Decision policy.
    pub const POLICY: u8 = b'P';
    /// Inbox event.
    pub const INBOX: u8 = b'i';
    /// Event id index (deduplication).
    pub const EVENT_ID: u8 = b'd';
    /// Plugin state keys (logical: the journal and the cache name state by these; kept
    /// in pages, not under this kind).
    pub const STATE: u8 = b's';
    /// A page of plugin state keys, by scope and the page's first key.
    pub const STATE_PAGE: u8 = b'g';
    /// Plugin state writes not yet folded into their pages, by journal seq.
    ///
    /// Its kind sorts right after small records (cursors): removing folded records
    /// empties tree leaves, which sled merges into the leaf to their left
    /// (`Tree::merge_node`), and a leaf of 64 KiB inbox chunks grown by one is written
    /// as a blob file of its own. Placed after the inbox, a fold's removal of 1,024
    /// records took 50-190 ms; here 4-18 ms.
    pub const STATE_JOURNAL: u8 = b'e';
    /// Where versions before [`STATE_JOURNAL`] kept the journal; folded on open.
    pub const OLD_STATE_JOURNAL: u8 = b'j';
    /// A detector's cursor: the next inbox seq it has not processed.
    pub const CURSOR: u8 = b'c';
    /// A finding, by per-tenant finding seq.
    pub const FINDING: u8 = b'f';
    /// A decision, by per-tenant decision seq.
    pub const DECISION: u8 = b'x';
    /// Where versions before the decision queue kept the decision stage's cursor (the
    /// next finding seq it had not decided); moved into the queue on open.
    pub const OLD_DECISION_CURSOR: u8 = b'D';
    /// The findings waiting for a decision, in decision order (see [`decision_queue`]).
    pub const DECISION_QUEUE: u8 = b'q';
    /// The decision engine's cursor over the inbox (events it has observed).
    pub const OBSERVED: u8 = b'O';
    /// The decision engine's memory.
    pub const ENGINE_STATE: u8 = b'E';
    /// A decision whose responders have not all run yet, by decision seq; the value
    /// names (JSON array) the responders done with it.
    pub const PENDING_RESPONSE: u8 = b'r';
    /// The action log, by idempotency key.
    pub const ACTION: u8 = b'a';
    /// Bytes of plugin state (keys and values) a tenant keeps, for its quota.
    pub const STATE_BYTES: u8 = b'b';
    /// The layout version of the pipeline tree (absent: the first layout).
    pub const LAYOUT: u8 = b'V';
    /// The data directory's format marker (in `meta`).
    pub const FORMAT: u8 = b'F';
    /// The host secret behind the plugins' random seeds (in `meta`).
    pub const RANDOM_SECRET: u8 = b'R';
    /// A dead letter, by per-tenant seq.
    pub const DEAD_LETTER: u8 = b'L';
    /// Entries in a tenant's action log, for its quota.
    pub const ACTION_COUNT: u8 = b'n';
    /// A tenant's pull source settings, by source name (in `meta`).
    pub const SOURCE: u8 = b'S';
    /// How far a tenant's pull source has been read, by source name: written with
    /// the inbox events it let in.
    pub const SOURCE_MARK: u8 = b'w';
    /// A review, by the seq of its decision.
    pub const REVIEW: u8 = b'v';
    /// A tenant's suppressions (one record).
    pub const SUPPRESSIONS: u8 = b'u';
    /// The triage of a finding or decision.
    pub const TRIAGE: u8 = b'y';
    /// When a notification route last sent about a subject and rule.
    pub const NOTIFIED: u8 = b'N';
    /// A line waiting for a route's digest.
    pub const DIGEST: u8 = b'G';
    /// A console sign-in session, by who signed in and the hash of its secret (in
    /// `meta`).
    pub const CONSOLE_SESSION: u8 = b'C';
    /// A cluster node's place in a partition's event stream: the stream sequence of
    /// the last message let into the inbox, by partition (in `pipeline`; written with
    /// the events).
    pub const STREAM_CURSOR: u8 = b'z';
}

/// Pipeline records kept per tenant, each under `kind`+tenant: deleted with the tenant.
pub const TENANT_PIPELINE_KINDS: [u8; 20] = [
    kind::INBOX,
    kind::EVENT_ID,
    kind::CURSOR,
    kind::FINDING,
    kind::DECISION,
    kind::OLD_DECISION_CURSOR,
    kind::DECISION_QUEUE,
    kind::OBSERVED,
    kind::ENGINE_STATE,
    kind::PENDING_RESPONSE,
    kind::ACTION,
    kind::STATE_BYTES,
    kind::DEAD_LETTER,
    kind::ACTION_COUNT,
    kind::SOURCE_MARK,
    kind::REVIEW,
    kind::SUPPRESSIONS,
    kind::TRIAGE,
    kind::NOTIFIED,
    kind::DIGEST,
];

/// `kind` then each part length-prefixed.
pub fn key(kind: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len() + 4).sum::<usize>());
    k.push(kind);
    for p in parts {
        k.extend_from_slice(&(p.len() as u32).to_be_bytes());
        k.extend_from_slice(p);
    }
    k
}

/// The tenant a per-tenant key belongs to (its first length-prefixed part).
pub fn tenant_of(key: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(key.get(1..5)?.try_into().ok()?) as usize;
    let name = key.get(5..5_usize.checked_add(len)?)?;
    Some(String::from_utf8_lossy(name).into_owned())
}

/// The number of entries in a tenant's action log (for its quota).
pub fn action_count(tenant: &str) -> Vec<u8> {
    key(kind::ACTION_COUNT, &[tenant.as_bytes()])
}

/// A detector's cursor.
pub fn cursor(tenant: &str, plugin: &str) -> Vec<u8> {
    key(kind::CURSOR, &[tenant.as_bytes(), plugin.as_bytes()])
}

/// A finding's place in its tenant's decision queue: the tenant, then the finding's
/// position, detector name (names are `[a-z0-9-]`, so a terminating 0 keeps name
/// order) and finding seq, so keys sort in
/// [`crate::pipeline::decide::DecisionOrder`]. The value is empty.
pub fn decision_queue(tenant: &str, position: u64, plugin: &str, finding_seq: u64) -> Vec<u8> {
    let mut k = key(kind::DECISION_QUEUE, &[tenant.as_bytes()]);
    k.extend_from_slice(&position.to_be_bytes());
    k.extend_from_slice(plugin.as_bytes());
    k.push(0);
    k.extend_from_slice(&finding_seq.to_be_bytes());
    k
}

/// The position and finding seq of a [`decision_queue`] key.
pub fn queued(key: &[u8], tenant: &str) -> Option<(u64, u64)> {
    let at = 1 + 4 + tenant.len();
    let position = u64::from_be_bytes(key.get(at..at + 8)?.try_into().ok()?);
    Some((position, seq_of(key)?))
}

/// A cluster partition's stream cursor ([`kind::STREAM_CURSOR`]).
pub fn stream_cursor(partition: u32) -> Vec<u8> {
    key(kind::STREAM_CURSOR, &[&partition.to_be_bytes()])
}

/// The decision engine's cursor over a tenant's inbox.
pub fn observed(tenant: &str) -> Vec<u8> {
    key(kind::OBSERVED, &[tenant.as_bytes()])
}

/// The bytes of plugin state a tenant keeps (for its quota).
pub fn state_bytes(tenant: &str) -> Vec<u8> {
    key(kind::STATE_BYTES, &[tenant.as_bytes()])
}

/// The bytes of state one plugin of a tenant keeps (for its own quota; its tenant's
/// total is [`state_bytes`]).
pub fn plugin_state_bytes(tenant: &str, plugin: &str) -> Vec<u8> {
    key(kind::STATE_BYTES, &[tenant.as_bytes(), plugin.as_bytes()])
}

/// `kind`, the length-prefixed tenant, then `seq` big-endian (so keys sort by seq).
pub fn seq_key(kind: u8, tenant: &str, seq: u64) -> Vec<u8> {
    let mut k = key(kind, &[tenant.as_bytes()]);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The seq at the end of a [`seq_key`].
pub fn seq_of(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_collide() {
        assert_ne!(
            key(kind::PLUGIN, &[b"ab", b"c"]),
            key(kind::PLUGIN, &[b"a", b"bc"])
        );
        let k = seq_key(kind::INBOX, "acme", 42);
        assert_eq!(seq_of(&k), Some(42));
        assert!(seq_key(kind::INBOX, "acme", 1) < seq_key(kind::INBOX, "acme", 256));
    }

    #[test]
    fn the_decision_queue_sorts_in_decision_order() {
        let order = [
            (1, "b", 9),
            (2, "a", 3),
            (2, "a", 4),
            (2, "ab", 0),
            (2, "b", 1),
            (256, "a", 2),
        ];
        let keys: Vec<Vec<u8>> = order
            .iter()
            .map(|&(p, n, s)| decision_queue("acme", p, n, s))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(queued(&keys[5], "acme"), Some((256, 2)));
    }
}
