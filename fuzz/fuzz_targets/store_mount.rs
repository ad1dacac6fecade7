//! Mount over arbitrary flash contents must never panic; if it succeeds,
//! the store must be writable and a remount must see exactly the memory
//! the head holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seaclr_edge::knn::Knn;
use seaclr_edge::store::{LabelStore, StoreError};
use seaclr_edge::store::mock_flash::MockFlash;

/// Two halves of 4 pages of 256 bytes; 4-byte words.
const REGION: usize = 2048;
type Head = Knn<16, 8, 4>;

fn snapshot(h: &Head) -> ([u8; 4], Vec<(u32, u8, [u8; 8])>, i32) {
    let mut classes = [0u8; 4];
    for c in h.classes() {
        classes[c.0 as usize] = 1 + h.class_count(c) as u8;
    }
    let mut examples: Vec<_> = h.examples().map(|(i, c, e)| (i.0, c.0, *e)).collect();
    examples.sort();
    (classes, examples, h.threshold_q15())
}

fuzz_target!(|data: &[u8]| {
    let mut memory = [0xFFu8; REGION];
    let n = data.len().min(REGION);
    memory[..n].copy_from_slice(&data[..n]);
    let mut flash = MockFlash::<4, 256>::new(&mut memory);
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
    // Whatever was mounted, one more operation must persist. Refusals
    // (full store, full class table) are fine; flash errors are store bugs.
    let acceptable = |e: &StoreError<_>| matches!(e, StoreError::Full | StoreError::Label(_));
    let class = match head.classes().next() {
        Some(c) => c,
        None => match store.add_class(&mut head, "fuzz") {
            Ok(c) => c,
            Err(e) if acceptable(&e) => return,
            Err(e) => panic!("add_class: {e:?}"),
        },
    };
    match store.add_example(&mut head, class, &[1, -2, 3, -4, 5, -6, 7, -8]) {
        Ok(_) => {}
        Err(e) if acceptable(&e) => {}
        Err(e) => panic!("add_example: {e:?}"),
    }
    let expected = snapshot(&head);
    let mut again = Head::new();
    LabelStore::mount(&mut flash, &mut again).expect("remount after a write");
    assert_eq!(snapshot(&again), expected);
});
