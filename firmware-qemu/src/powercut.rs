//! The power-cut check of the label store on the semihosting NOR flash.
//!
//! `labels-write FLASH N` mounts (or formats) the store in the file FLASH
//! and adds examples until the head has N, printing `ack <id>` over the UART
//! after each `add_example` has returned (the record is on flash). The
//! host script (`power-cut-test.sh`) kills QEMU at a random moment, in
//! the middle of a write most of the time (the flash programs word by
//! word). `labels-check FLASH` mounts the store and checks what is there:
//! ids `0..n` with no gap, each example's class and embedding exactly as
//! written; the script then checks that n covers every acknowledged id.

use crate::println;
use crate::semihost_flash::{Opened, SemihostFlash};
use crate::statics::knn_head;
use seaclr_edge::store::{DEFAULT_REGION_SIZE, LabelStore, MountReport};
use seaclr_shared::labels::{EMBEDDING_DIM, ExampleId};

/// The classes examples are spread over (`id % 4`).
const CLASSES: [&str; 4] = ["pc-a", "pc-b", "pc-c", "pc-d"];
/// Most examples the check writes (below the head's 1,000, so nothing is evicted).
pub const MAX_EXAMPLES: u32 = 990;

/// The embedding written for example `id`: deterministic, never all zero.
fn example(id: u32) -> [i8; EMBEDDING_DIM] {
    let mut x = id.wrapping_mul(0x9E37_79B9) | 1;
    let mut out = [0i8; EMBEDDING_DIM];
    for v in out.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *v = (x % 201) as i8 - 100;
    }
    out[0] = 1 + (id % 100) as i8;
    out
}

fn class_name(id: u32) -> &'static str {
    CLASSES[id as usize % CLASSES.len()]
}

fn open(path: &str) -> Option<SemihostFlash> {
    match SemihostFlash::open(path, DEFAULT_REGION_SIZE) {
        Ok((mut flash, opened)) => {
            if opened == Opened::Created {
                println!("flash {path}: created blank ({DEFAULT_REGION_SIZE} bytes)");
            }
            flash.set_word_by_word(true);
            Some(flash)
        }
        Err(e) => {
            println!("FAIL flash {path}: {e}");
            None
        }
    }
}

fn print_report(r: &MountReport) {
    println!(
        "mounted: generation {}, half {}, {} records, dirty tail {}, fell back {}, formatted {}",
        r.generation, r.half, r.records, r.dirty_tail, r.fell_back, r.formatted
    );
}

/// `labels-write`: add examples up to `target`, acknowledging each.
pub fn write(path: &str, target: u32) -> bool {
    let target = target.min(MAX_EXAMPLES);
    let (Some(flash), Some(head)) = (open(path), knn_head()) else {
        return false;
    };
    let (mut store, report) = match LabelStore::mount_or_format(flash, head) {
        Ok(s) => s,
        Err(e) => {
            println!("FAIL mount: {e:?}");
            return false;
        }
    };
    print_report(&report);
    for name in CLASSES {
        if head.find_class(name).is_none()
            && let Err(e) = store.add_class(head, name)
        {
            println!("FAIL add class {name}: {e:?}");
            return false;
        }
    }
    println!("writing from id {} to {}", head.next_example_id(), target);
    while head.next_example_id() < target {
        let id = head.next_example_id();
        let Some(class) = head.find_class(class_name(id)) else {
            println!("FAIL class {} missing", class_name(id));
            return false;
        };
        match store.add_example(head, class, &example(id)) {
            Ok(added) if added.id == ExampleId(id) && added.evicted.is_none() => {
                println!("ack {id}");
            }
            Ok(added) => {
                println!("FAIL example {id} stored as {:?}", added);
                return false;
            }
            Err(e) => {
                println!("FAIL add example {id}: {e:?}");
                return false;
            }
        }
    }
    let (writes, erases) = store.flash().counts();
    println!(
        "done: {} examples ({writes} flash writes, {erases} sector erases)",
        head.len()
    );
    true
}

/// `labels-check`: mount and verify every stored example.
pub fn check(path: &str) -> bool {
    let (Some(flash), Some(head)) = (open(path), knn_head()) else {
        return false;
    };
    let report = match LabelStore::mount(flash, head) {
        Ok((_, r)) => r,
        Err(e) => {
            println!("FAIL mount: {e:?}");
            return false;
        }
    };
    print_report(&report);
    let n = head.len() as u32;
    if n > MAX_EXAMPLES {
        println!("FAIL {n} examples, the writer never writes more than {MAX_EXAMPLES}");
        return false;
    }
    let mut seen = [false; MAX_EXAMPLES as usize];
    for (id, class, bytes) in head.examples() {
        let i = id.0;
        let want = example(i);
        let same = bytes.iter().zip(want).all(|(&b, w)| b as i8 == w);
        let class_ok = head.class_name(class) == Some(class_name(i));
        if i >= n || seen[i as usize] || !same || !class_ok {
            println!("FAIL example {i}: gap, duplicate, wrong class or wrong embedding");
            return false;
        }
        seen[i as usize] = true;
    }
    println!("store ok: {n} examples (ids 0..{n}), classes and embeddings as written");
    true
}
