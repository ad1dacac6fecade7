//! Mount over arbitrary flash contents must never panic; if it succeeds,
//! the store must be writable and a remount must see exactly the memory
//! the head holds.
//!
//! First input byte even: the rest is the raw flash region. Odd: the rest
//! scripts a session on a valid store (3 bytes per operation), whose image
//! then gets bit flips from the last 8 bytes (4 x u16 bit positions), so
//! the fuzzer reaches replay and compaction paths that random bytes with
//! CRCs never would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seaclr_edge::knn::Knn;
use seaclr_edge::store::mock_flash::MockFlash;
use seaclr_edge::store::{LabelStore, StoreError};
use seaclr_shared::labels::{ClassId, ExampleId};

/// Two halves of 4 pages of 256 bytes; 4-byte words.
const REGION: usize = 2048;
type Head = Knn<16, 8, 4>;
type Flash<'a> = MockFlash<'a, 4, 256>;

fn snapshot(h: &Head) -> ([u8; 4], Vec<(u32, u8, [u8; 8])>, i32) {
    let mut classes = [0u8; 4];
    for c in h.classes() {
        classes[c.0 as usize] = 1 + h.class_count(c) as u8;
    }
    let mut examples: Vec<_> = h.examples().map(|(i, c, e)| (i.0, c.0, *e)).collect();
    examples.sort();
    (classes, examples, h.threshold_q15())
}

/// Refusals (full store, bad request) are fine; flash errors are store bugs.
fn check<T>(r: Result<T, StoreError<seaclr_edge::store::mock_flash::MockFlashError>>) {
    match r {
        Ok(_) | Err(StoreError::Full) | Err(StoreError::Label(_)) => {}
        Err(e) => panic!("store operation failed: {e:?}"),
    }
}

fn scripted_session(memory: &mut [u8], script: &[u8]) {
    let mut flash = Flash::new(memory);
    let mut head = Head::new();
    let (mut store, _) = LabelStore::mount_or_format(&mut flash, &mut head).expect("format");
    const NAMES: [&str; 6] = ["a", "bb", "diatom", "copepod", "x", "radiolaria"];
    for op in script.chunks_exact(3) {
        let (a, b) = (op[1], op[2]);
        match op[0] % 6 {
            0 => check(store.add_class(&mut head, NAMES[a as usize % NAMES.len()])),
            1 | 2 => {
                let e: [i8; 8] = core::array::from_fn(|i| (a.wrapping_mul(i as u8 + 1) ^ b) as i8);
                check(store.add_example(&mut head, ClassId(a % 4), &e));
            }
            3 => check(store.forget_example(&mut head, ExampleId(a as u32))),
            4 => check(store.forget_class(&mut head, ClassId(a % 4))),
            _ => match b % 2 {
                0 => check(store.relabel(&mut head, ClassId(a % 4), ClassId(b / 2 % 4))),
                _ => check(store.set_threshold(&mut head, a as i32 * 128 - 16384)),
            },
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut memory = [0xFFu8; REGION];
    if mode % 2 == 0 {
        let n = rest.len().min(REGION);
        memory[..n].copy_from_slice(&rest[..n]);
    } else {
        let split = rest.len().saturating_sub(8);
        let (script, flips) = rest.split_at(split);
        scripted_session(&mut memory, script);
        for f in flips.chunks_exact(2) {
            let bit = u16::from_le_bytes([f[0], f[1]]) as usize % (REGION * 8);
            memory[bit / 8] ^= 1 << (bit % 8);
        }
    }
    let mut flash = Flash::new(&mut memory);
    let mut head = Head::new();
    let mut store = match LabelStore::mount(&mut flash, &mut head) {
        Ok((store, _report)) => store,
        // Formatting arbitrary contents must work too.
        Err(StoreError::NotFormatted) => {
            let mut head = Head::new();
            LabelStore::mount_or_format(&mut flash, &mut head).expect("format");
            return;
        }
        // A genuine store written with another record alignment.
        Err(StoreError::Geometry) => return,
        Err(e) => panic!("mount: {e:?}"),
    };
    // Whatever was mounted, more operations must persist.
    let existing = head.classes().next();
    let class = match existing {
        Some(c) => c,
        None => match store.add_class(&mut head, "fuzz") {
            Ok(c) => c,
            Err(e) => {
                check::<()>(Err(e));
                return;
            }
        },
    };
    check(store.add_example(&mut head, class, &[1, -2, 3, -4, 5, -6, 7, -8]));
    let expected = snapshot(&head);
    let mut again = Head::new();
    LabelStore::mount(&mut flash, &mut again).expect("remount after a write");
    assert_eq!(snapshot(&again), expected);
});
