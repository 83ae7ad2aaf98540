//! Records and indexes on the in-memory store: what concurrent writers and readers of a list
//! would notice, on every store semantics with atomics: Spin's SQLite store, Spin's Redis
//! store (whose swap reports failure even when it applied) and a faulty remote store.

use std::sync::Arc;

use funnelhooks_store::{Index, Kv, MemoryKv, Modified, Records, Semantics, StoreError};

/// The semantics with atomics the concurrency tests run on.
const ATOMIC: [Semantics; 4] = [
    Semantics::Sqlite,
    Semantics::Redis,
    Semantics::Faulty(7),
    Semantics::Faulty(0x5eed),
];

#[test]
fn concurrent_modifies_of_one_record_all_land_once() {
    for semantics in ATOMIC {
        concurrent_modifies(semantics);
    }
}

fn concurrent_modifies(semantics: Semantics) {
    let kv = Arc::new(MemoryKv::with(semantics));
    Records::new(kv.as_ref()).put("count", &0u32).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let kv = kv.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    Records::new(kv.as_ref())
                        .modify("count", |n: &mut u32| {
                            *n += 1;
                            Ok::<_, StoreError>(())
                        })
                        .unwrap()
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let n: u32 = Records::new(kv.as_ref()).get("count").unwrap().unwrap();
    assert_eq!(n, 16 * 50, "{semantics:?}");
}

#[test]
fn concurrent_upserts_of_an_absent_record_create_it_once_and_keep_every_change() {
    for semantics in ATOMIC {
        concurrent_upserts(semantics);
    }
}

fn concurrent_upserts(semantics: Semantics) {
    let kv = Arc::new(MemoryKv::with(semantics));
    let threads: Vec<_> = (0..32)
        .map(|i| {
            let kv = kv.clone();
            std::thread::spawn(move || {
                Records::new(kv.as_ref())
                    .upsert("set", "set:born", Vec::<u32>::new, |v: &mut Vec<u32>| {
                        v.push(i);
                        Ok::<_, StoreError>(())
                    })
                    .unwrap()
                    .1
            })
        })
        .collect();
    let created = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|m| *m == Modified::Created)
        .count();
    assert_eq!(created, 1, "{semantics:?}");
    let mut v: Vec<u32> = Records::new(kv.as_ref()).get("set").unwrap().unwrap();
    v.sort();
    assert_eq!(v, (0..32).collect::<Vec<_>>(), "{semantics:?}");
}

#[test]
fn a_change_that_appends_is_applied_exactly_once_when_the_swap_reports_failure() {
    // What Spin's Redis store did to postback links: every swap applied, then reported
    // failure, so a retry loop appended the same id again until a limit.
    for semantics in ATOMIC {
        let kv = MemoryKv::with(semantics);
        let records = Records::new(&kv);
        records.put("links", &Vec::<String>::new()).unwrap();
        for i in 0..20 {
            let added = records
                .modify("links", |links: &mut Vec<String>| {
                    links.push(format!("link-{i}"));
                    Ok::<_, StoreError>(links.len())
                })
                .unwrap();
            assert_eq!(added, Some(i + 1), "{semantics:?}");
        }
        let links: Vec<String> = records.get("links").unwrap().unwrap();
        let want: Vec<String> = (0..20).map(|i| format!("link-{i}")).collect();
        assert_eq!(links, want, "{semantics:?}");
    }
}

#[test]
fn redis_counters_are_decimal_text_and_still_count() {
    let kv = MemoryKv::with(Semantics::Redis);
    assert_eq!(kv.increment("n", 5).unwrap(), 5);
    assert_eq!(kv.get("n").unwrap().as_deref(), Some(&b"5"[..]));
    let index = Index::new(&kv, "things".into());
    assert_eq!(index.add("a").unwrap(), 1);
    assert_eq!(index.add("b").unwrap(), 2);
    assert_eq!(index.page(0, 10).unwrap().items, ["a", "b"]);
}

#[test]
fn a_rejected_change_writes_nothing_not_even_a_new_record() {
    let kv = MemoryKv::new();
    let records = Records::new(&kv);
    let err = records
        .upsert(
            "x",
            "x:born",
            || 1u8,
            |_| Err::<(), _>(StoreError::Contended("no".into())),
        )
        .unwrap_err();
    assert_eq!(err, StoreError::Contended("no".into()));
    assert!(kv.keys().is_empty());
    records.put("y", &5u8).unwrap();
    let _ = records.modify("y", |v: &mut u8| {
        *v = 6;
        Err::<(), _>(StoreError::Contended("no".into()))
    });
    assert_eq!(records.get::<u8>("y").unwrap(), Some(5));
}

#[test]
fn an_index_pages_in_order_skips_removed_entries_and_bounds_each_page() {
    let kv = MemoryKv::new();
    let index = Index::new(&kv, "things".into());
    let slots: Vec<u64> = (0..2_500)
        .map(|i| index.add(&format!("t{i}")).unwrap())
        .collect();
    assert_eq!(slots[0], 1);
    // Remove a long run: one page never reads more than 1000 slots, but still moves on.
    for slot in &slots[1..2_200] {
        index.remove(*slot).unwrap();
    }
    let first = index.page(0, 10).unwrap();
    assert_eq!(first.items, ["t0"]);
    let mut items = first.items;
    let mut next = first.next;
    while let Some(after) = next {
        let page = index.page(after, 10).unwrap();
        items.extend(page.items);
        next = page.next;
    }
    assert_eq!(items.len(), 1 + 300);
    assert_eq!(items[1], "t2200");
    assert_eq!(items.last().unwrap(), "t2499");
    index.clear().unwrap();
    assert!(kv.keys().is_empty());
}

#[test]
fn a_record_that_is_not_json_is_reported_as_corrupt_with_its_key() {
    let kv = MemoryKv::new();
    kv.set("bot:1", b"{not json").unwrap();
    let err = Records::new(&kv).get::<u8>("bot:1").unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { ref key, .. } if key == "bot:1"),
        "{err}"
    );
}
