//! Property tests: the merge rule is a join (commutative, associative,
//! idempotent), so every replica and every arrival order agrees.

use playmark_core::{DeviceId, Duration, Entry, Outcome, Position, Progress, Timestamp};
use proptest::prelude::*;

fn entry() -> impl Strategy<Value = Entry> {
    // Small domains on purpose: collisions on time, device and position are
    // where tie-breaking bugs live.
    let live =
        (0u64..20, prop::sample::select(vec!["tv", "phone", "web"]), 0u64..5, prop::option::of(1u64..3))
            .prop_map(|(at, device, pos, dur)| {
                Entry::Live(Progress {
                    updated_at: Timestamp::from_millis(at),
                    device_id: DeviceId::parse(device).expect("valid id"),
                    position: Position::from_millis(pos * 1000).expect("in range"),
                    duration: dur.map(|d| Duration::from_millis(d * 1000).expect("in range")),
                    hidden: false,
                    finished: false,
                    series: None,
                    finished_at: None,
                })
            });
    let deleted = (0u64..20).prop_map(|at| Entry::Deleted { at: Timestamp::from_millis(at) });
    prop_oneof![4 => live, 1 => deleted]
}

/// Applies writes one by one the way a store does: keep the incoming entry
/// only when the merge rule says it applied.
fn replay(writes: &[Entry]) -> Option<Entry> {
    writes.iter().fold(None, |standing, incoming| match Entry::merge(standing.as_ref(), incoming) {
        Outcome::Applied => Some(incoming.clone()),
        Outcome::Stale | Outcome::Duplicate | Outcome::Conflict => standing,
    })
}

proptest! {
    #[test]
    fn join_is_commutative(a in entry(), b in entry()) {
        prop_assert_eq!(a.clone().join(b.clone()), b.join(a));
    }

    #[test]
    fn join_is_associative(a in entry(), b in entry(), c in entry()) {
        prop_assert_eq!(
            a.clone().join(b.clone()).join(c.clone()),
            a.join(b.join(c))
        );
    }

    #[test]
    fn join_is_idempotent(a in entry()) {
        prop_assert_eq!(a.clone().join(a.clone()), a);
    }

    #[test]
    fn any_arrival_order_ends_in_the_same_entry(
        (writes, shuffled) in prop::collection::vec(entry(), 1..12)
            .prop_flat_map(|w| (Just(w.clone()), Just(w).prop_shuffle()))
    ) {
        let expected = writes.iter().cloned().reduce(Entry::join);
        prop_assert_eq!(replay(&writes), expected.clone());
        prop_assert_eq!(replay(&shuffled), expected);
    }

    #[test]
    fn merge_outcome_agrees_with_join(standing in entry(), incoming in entry()) {
        let joined = standing.clone().join(incoming.clone());
        match Entry::merge(Some(&standing), &incoming) {
            Outcome::Applied => prop_assert_eq!(joined, incoming),
            Outcome::Duplicate => prop_assert_eq!(&standing, &incoming),
            Outcome::Stale => prop_assert_eq!(joined, standing),
            Outcome::Conflict => prop_assert!(false, "the merge rule alone never refuses a write"),
        }
    }

    #[test]
    fn a_tombstone_outranks_whatever_it_deletes(standing in prop::option::of(entry()), now in 0u64..40) {
        let gone = Entry::tombstone(standing.as_ref(), Timestamp::from_millis(now));
        if let Some(s) = &standing {
            prop_assert!(gone >= *s);
        }
        prop_assert!(gone.updated_at() >= Timestamp::from_millis(now));
    }
}
