//! Replicas of one catalog divide a loop's survey: each reads only the tables of its share.
//!
//! Every daemon whose compaction loop runs for real keeps a row in `compactor_replicas` under its
//! [`survey_group`] (the loop and the catalog's name; renewed every `lease_ttl / 3`, expiring after
//! `lease_ttl` on the catalog database's clock, removed when the daemon stops; its `busy_since` says
//! when its running pass started). At each poll a loop reads the live rows and surveys the tables
//! that rendezvous hashing gives it: a table belongs to the member whose hash of (member, table) is
//! highest, so each table has exactly one owner among the members a replica sees, and a member
//! joining or leaving moves only its own share. A member whose pass has run longer than half the lag
//! target counts for nothing in the others' polls, so its share's due tables go to free replicas.
//!
//! The share divides *reading*; it never decides safety. Table leases still keep two replicas from
//! working on one table, and the catalog's compare-and-swap still keeps every commit atomic. While two
//! replicas see different members (one joined or left between their reads), a table may be surveyed
//! by both (the lease sorts them out) or by neither for one poll; a replica that dies without leaving
//! keeps its share unsurveyed until its row expires (`lease_ttl`; a row not renewed for the reader's
//! own `lease_ttl` counts as expired whatever its expiry, and a replica on the dead process's host
//! removes its row at once, for the replicas of other hosts, which cannot tell it exited). Whenever a
//! replica cannot tell (the query fails, or its own row is not among the live ones) it surveys every
//! table: unsure means more reading, never less compaction.

/// The survey group of a loop over one catalog: replicas of another catalog in the same database
/// are never members of it.
pub fn survey_group(job: &str, catalog_name: &str) -> String {
    format!("{job}@{catalog_name}")
}

/// The tables a replica surveys: its own holder id among the live members' ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    me: String,
    members: Vec<String>,
}

impl Share {
    /// `None` when `me` is not among `members` (its row expired or was never written): the caller
    /// then surveys every table. Duplicates are ignored; the order of `members` does not matter.
    pub fn of(me: &str, members: impl IntoIterator<Item = String>) -> Option<Share> {
        let mut members: Vec<String> = members.into_iter().collect();
        members.sort();
        members.dedup();
        members.iter().any(|m| m == me).then(|| Share { me: me.to_string(), members })
    }

    /// How many live replicas divide the tables.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// Whether the table named `key` (its qualified name) is this replica's to survey.
    pub fn owns(&self, key: &str) -> bool {
        owner(&self.members, key) == Some(self.me.as_str())
    }
}

/// The member that owns `key`: the highest [`weight`], ties to the smaller id.
pub fn owner<'a>(members: &'a [String], key: &str) -> Option<&'a str> {
    members
        .iter()
        .max_by(|a, b| weight(a, key).cmp(&weight(b, key)).then_with(|| b.cmp(a)))
        .map(String::as_str)
}

/// A member's weight for a key: 64-bit FNV-1a of `member 0xff key`, then SplitMix64's finalizer so
/// that near-identical inputs spread. Fixed here rather than `std`'s hasher, whose output may change
/// between Rust releases: replicas of different builds (a rolling upgrade) must agree on owners.
fn weight(member: &str, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member.bytes().chain([0xff]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("host-{i}:{}:0badcafe", 100 + i)).collect()
    }

    proptest! {
        /// Every table belongs to exactly one of the members, as each member sees it.
        #[test]
        fn every_table_has_exactly_one_owner(n in 1usize..12, tables in prop::collection::vec("[a-z.]{1,40}", 1..200)) {
            let members = ids(n);
            let shares: Vec<Share> = members.iter().map(|m| Share::of(m, members.clone()).unwrap()).collect();
            for t in &tables {
                prop_assert_eq!(shares.iter().filter(|s| s.owns(t)).count(), 1, "{}", t);
            }
        }

        /// A member leaving moves only its own tables; the others keep theirs.
        #[test]
        fn a_member_leaving_moves_only_its_tables(n in 2usize..12, gone in 0usize..12, tables in prop::collection::vec("[a-z.]{1,40}", 1..200)) {
            let members = ids(n);
            let gone = gone % n;
            let mut rest = members.clone();
            rest.remove(gone);
            for t in &tables {
                let before = owner(&members, t).unwrap();
                let after = owner(&rest, t).unwrap();
                if before != members[gone] {
                    prop_assert_eq!(before, after, "{} moved although its owner stayed", t);
                }
            }
        }

        /// What the readers' filters rely on (a dead local process, a row not renewed for a ttl):
        /// while every row is a running replica, each replica leaving any others out of its view
        /// (never itself) leaves no table to nobody; dropping a member only enlarges shares.
        #[test]
        fn views_that_leave_members_out_leave_no_table_to_nobody(
            n in 1usize..10,
            dropped in prop::collection::vec(prop::collection::vec(any::<bool>(), 10), 10),
            tables in prop::collection::vec("[a-z.]{1,40}", 1..100),
        ) {
            let members = ids(n);
            let shares: Vec<Share> = (0..n)
                .map(|r| {
                    let view = members.iter().enumerate().filter(|&(i, _)| i == r || !dropped[r][i]);
                    Share::of(&members[r], view.map(|(_, m)| m.clone())).unwrap()
                })
                .collect();
            for t in &tables {
                prop_assert!(shares.iter().any(|s| s.owns(t)), "{} surveyed by nobody", t);
            }
        }
    }

    #[test]
    fn a_replica_not_among_the_live_members_has_no_share() {
        assert_eq!(Share::of("me", ["a".to_string(), "b".to_string()]), None);
        let alone = Share::of("me", ["me".to_string(), "me".to_string()]).unwrap();
        assert_eq!(alone.members(), 1);
        assert!(alone.owns("acme.production.traces"), "a lone replica owns every table");
    }

    /// 10,000 tables over 64 replicas: no replica gets more than 1.5 times its fair share (the
    /// simulator's figures depend on the balance), and the weights are the same in every build.
    #[test]
    fn shares_are_balanced_and_stable() {
        let members = ids(64);
        let mut counts = vec![0usize; members.len()];
        for i in 0..10_000 {
            let key = format!("tenant{}.dataset{}.traces", i % 50, i);
            let o = owner(&members, &key).unwrap();
            counts[members.iter().position(|m| m == o).unwrap()] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*max as f64 <= 1.5 * 10_000.0 / 64.0 && *min > 0, "shares {min}..{max}");
        // Computed independently (Python, the same FNV-1a and SplitMix64 constants): a change of the
        // function would split a fleet of mixed builds.
        assert_eq!(weight("replica-a", "acme.production.traces"), 0xeed8_fc58_447f_e7b8);
    }
}
