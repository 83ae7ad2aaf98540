//! Records and indexes on the in-memory store: what concurrent writers and readers of a list
//! would notice, on every store semantics with atomics: Spin's SQLite store, Spin's Redis
//! store (whose swap reports failure even when it applied) and a faulty remote store.

use std::cell::Cell;
use std::sync::Arc;

use funnelhooks_store::{
    Decide, Index, Interleaved, Kv, MAX_REMEMBERED, MAX_REMEMBERED_REPEATABLE, MemoryKv, Modified,
    Records, Seen, Semantics, StoreError,
};

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
        concurrent_modifies(semantics, false);
    }
}

#[test]
fn concurrent_modifies_prepared_from_reads_before_them_all_land_once() {
    for semantics in ATOMIC {
        concurrent_modifies(semantics, true);
    }
}

/// 16 writers increment one record 50 times each; with `prepared`, each increment starts from
/// a read made before it (most of them stale by the time they swap).
fn concurrent_modifies(semantics: Semantics, prepared: bool) {
    let kv = Arc::new(MemoryKv::with(semantics));
    Records::new(kv.as_ref()).put("count", &0u32).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let kv = kv.clone();
            std::thread::spawn(move || {
                let (mut done, mut unsure) = (0u32, 0u32);
                for _ in 0..50 {
                    let read = prepared.then(|| kv.get("count").unwrap().unwrap());
                    let seen = read.as_deref().map_or(Seen::Unknown, Seen::Bytes);
                    let records = Records::new(kv.as_ref());
                    let increment = records.modify_seen("count", seen, |n: &mut u32| {
                        *n += 1;
                        Ok::<_, StoreError>(())
                    });
                    match increment {
                        Ok(Some(())) => done += 1,
                        // A writer paused past the header's memory: told, not guessed.
                        Err(StoreError::Unsure(_)) => unsure += 1,
                        other => panic!("{other:?}"),
                    }
                }
                (done, unsure)
            })
        })
        .collect();
    let (mut done, mut unsure) = (0, 0);
    for t in threads {
        let (d, u) = t.join().unwrap();
        done += d;
        unsure += u;
    }
    let n: u32 = Records::new(kv.as_ref()).get("count").unwrap().unwrap();
    // Every confirmed increment counted once; an unsure one at most once.
    assert!(
        done <= n && n <= done + unsure,
        "{semantics:?}: {n} counted, {done} confirmed, {unsure} unsure"
    );
    assert!(unsure <= 16 * 50 / 10, "{semantics:?}: {unsure} unsure");
}

#[test]
fn concurrent_repeatable_changes_of_one_record_all_land() {
    for semantics in ATOMIC {
        let kv = Arc::new(MemoryKv::with(semantics));
        Records::new(kv.as_ref())
            .put("set", &Vec::<u32>::new())
            .unwrap();
        let threads: Vec<_> = (0..16u32)
            .map(|t| {
                let kv = kv.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        Records::repeatable(kv.as_ref())
                            .modify("set", |set: &mut Vec<u32>| {
                                if !set.contains(&(t * 100 + i)) {
                                    set.push(t * 100 + i);
                                }
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
        let mut set: Vec<u32> = Records::new(kv.as_ref()).get("set").unwrap().unwrap();
        set.sort();
        let want: Vec<u32> = (0..16)
            .flat_map(|t| (0..50).map(move |i| t * 100 + i))
            .collect();
        assert_eq!(set, want, "{semantics:?}");
    }
}

#[test]
fn a_writer_paused_within_the_headers_memory_learns_its_write_landed() {
    for others in [0, 1, MAX_REMEMBERED - 1] {
        let kv = paused_after_swap(others, false);
        let result = Records::new(&kv).modify("r", |v: &mut Vec<u32>| {
            v.push(7);
            Ok::<_, StoreError>(())
        });
        assert_eq!(result, Ok(Some(())), "{others}");
        let v: Vec<u32> = Records::new(&kv).get("r").unwrap().unwrap();
        assert_eq!(v.iter().filter(|x| **x == 7).count(), 1, "{others}");
        assert_eq!(v.len(), 1 + others, "{others}");
    }
}

#[test]
fn a_writer_paused_past_the_headers_memory_is_told_it_cannot_know_never_applied_twice() {
    let kv = paused_after_swap(MAX_REMEMBERED, false);
    let result = Records::new(&kv).modify("r", |v: &mut Vec<u32>| {
        v.push(7);
        Ok::<_, StoreError>(())
    });
    assert_eq!(result, Err(StoreError::Unsure("r".into())));
    let v: Vec<u32> = Records::new(&kv).get("r").unwrap().unwrap();
    assert_eq!(v.iter().filter(|x| **x == 7).count(), 1);
    // A change that gives the same record when applied twice is applied again instead.
    let kv = paused_after_swap(MAX_REMEMBERED_REPEATABLE + 5, true);
    let result = Records::repeatable(&kv).modify("r", |v: &mut Vec<u32>| {
        if !v.contains(&7) {
            v.push(7);
        }
        Ok::<_, StoreError>(())
    });
    assert_eq!(result, Ok(Some(())));
    let v: Vec<u32> = Records::new(&kv).get("r").unwrap().unwrap();
    assert_eq!(v.iter().filter(|x| **x == 7).count(), 1);
}

/// A store whose next swap of record `r` applies, then lets `others` writes by other writers
/// (as `Records::repeatable` when `repeatable`) land before it is reported failed and read
/// again: a writer paused on a busy host, on Spin's Redis store.
fn paused_after_swap(others: usize, repeatable: bool) -> MemoryKv {
    let kv = MemoryKv::with(Semantics::Sqlite);
    Records::new(&kv).put("r", &Vec::<u32>::new()).unwrap();
    kv.pause_after_next_swap("r", move |kv| {
        let records = if repeatable {
            Records::repeatable(kv)
        } else {
            Records::new(kv)
        };
        for _ in 0..others {
            records
                .modify("r", |n: &mut Vec<u32>| {
                    n.push(0);
                    Ok::<_, StoreError>(())
                })
                .unwrap();
        }
    });
    kv
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

#[test]
fn a_change_prepared_from_the_record_as_it_still_is_is_swapped_without_being_made_again() {
    for semantics in ATOMIC {
        let kv = MemoryKv::with(semantics);
        Records::new(&kv).put("r", &vec![1u32]).unwrap();
        let read = kv.get("r").unwrap().unwrap();
        let mut made = 0;
        let result = Records::new(&kv).modify_seen("r", Seen::Bytes(&read), |v: &mut Vec<u32>| {
            made += 1;
            v.push(2);
            Ok::<_, StoreError>(v.len())
        });
        assert_eq!(result, Ok(Some(2)), "{semantics:?}");
        // Faulty stores may lose or misreport a swap; then the change is made again.
        if semantics == Semantics::Sqlite {
            assert_eq!(made, 1);
        }
        let v: Vec<u32> = Records::new(&kv).get("r").unwrap().unwrap();
        assert_eq!(v, [1, 2], "{semantics:?}");
    }
}

#[test]
fn a_change_prepared_from_a_stale_read_is_made_again_on_what_is_there_now() {
    for semantics in ATOMIC {
        let kv = MemoryKv::with(semantics);
        let records = Records::new(&kv);
        records.put("r", &vec![1u32]).unwrap();
        let read = kv.get("r").unwrap().unwrap();
        // Another writer comes between the read and the change.
        records
            .modify("r", |v: &mut Vec<u32>| {
                v.push(2);
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let mut made = 0;
        let result = records.modify_seen("r", Seen::Bytes(&read), |v: &mut Vec<u32>| {
            made += 1;
            v.push(3);
            Ok::<_, StoreError>(v.clone())
        });
        // What the change returns is from the change that was written.
        assert_eq!(result, Ok(Some(vec![1, 2, 3])), "{semantics:?}");
        assert!(made >= 2, "{semantics:?}");
        let v: Vec<u32> = records.get("r").unwrap().unwrap();
        assert_eq!(v, [1, 2, 3], "{semantics:?}");
    }
}

#[test]
fn a_record_seen_absent_is_created_once_even_when_another_writer_made_it_since() {
    for semantics in ATOMIC {
        let kv = MemoryKv::with(semantics);
        let records = Records::new(&kv);
        // Seen absent and still absent: not read again, not changed.
        let none = records.modify_seen("r", Seen::Absent, |v: &mut Vec<u32>| {
            v.push(9);
            Ok::<_, StoreError>(())
        });
        assert_eq!(none, Ok(None));
        assert_eq!(kv.get("r").unwrap(), None);
        // Seen absent, but another writer created it since: the upsert's election tells,
        // and the change goes onto the record that is there.
        records
            .upsert("r", "r:born", Vec::new, |v: &mut Vec<u32>| {
                v.push(1);
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let (_, modified) = records
            .upsert_born(
                "r",
                "r:born",
                Seen::Absent,
                Vec::new,
                |v: &mut Vec<u32>| {
                    v.push(2);
                    Ok::<_, StoreError>(())
                },
                |_| Ok(Vec::new()),
            )
            .unwrap();
        assert_eq!(modified, Modified::Updated, "{semantics:?}");
        let v: Vec<u32> = records.get("r").unwrap().unwrap();
        assert_eq!(v, [1, 2], "{semantics:?}");
    }
}

#[test]
fn a_writer_overtaken_while_it_makes_its_change_swaps_straight_after_its_next_read() {
    for semantics in [Semantics::Sqlite, Semantics::Redis] {
        let inner = MemoryKv::with(semantics);
        Records::new(&inner).put("r", &Vec::<u32>::new()).unwrap();
        // Until they run out, another writer's write lands whenever a change is made between
        // a session's read and its swap: what a busy record does to a writer that takes time
        // (or waits) there.
        let (changing, overtakes) = (Cell::new(false), Cell::new(50));
        let kv = Interleaved {
            inner: &inner,
            around: |inner: &MemoryKv,
                     key: &str,
                     current: Option<&[u8]>,
                     decide: &mut Decide<'_>| {
                changing.set(false);
                let new = decide(current)?;
                if changing.get() && overtakes.get() > 0 {
                    overtakes.set(overtakes.get() - 1);
                    Records::new(inner)
                        .modify(key, |v: &mut Vec<u32>| {
                            v.push(0);
                            Ok::<_, StoreError>(())
                        })
                        .unwrap();
                }
                Some(new)
            },
        };
        let mut made = 0;
        let result = Records::new(&kv).modify("r", |v: &mut Vec<u32>| {
            changing.set(true);
            made += 1;
            v.push(1);
            Ok::<_, StoreError>(v.clone())
        });
        // Overtaken once, it makes the change again on what is there and swaps it only
        // over a read made after that: not overtaken again, however busy the record.
        assert_eq!(result, Ok(Some(vec![0, 1])), "{semantics:?}");
        assert_eq!(made, 2, "{semantics:?}");
        let v: Vec<u32> = Records::new(&inner).get("r").unwrap().unwrap();
        assert_eq!(v, [0, 1], "{semantics:?}");
    }
}
