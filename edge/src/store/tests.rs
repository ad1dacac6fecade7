//! Label store tests: an exhaustive power cut at every unit (byte written or
//! page erased) of a scripted 50-operation session, exhaustive single-bit
//! flips, random multi-bit flips, flash full, geometry mismatch.

use super::mock_flash::{MockFlash, MockFlashError};
use super::*;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

/// Small geometry so the exhaustive test runs in seconds: 12 examples of 8
/// values, 4 classes; two halves of 6 pages of 128 bytes (4-byte words).
type Head = Knn<12, 8, 4>;
const PAGE: usize = 128;
const REGION: usize = 2 * 6 * PAGE;
type Flash<'a> = MockFlash<'a, 4, PAGE>;
const SCRIPT_LEN: usize = 50;

#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    classes: Vec<(u8, String)>,
    examples: Vec<(u32, u8, Vec<u8>)>,
    threshold: i32,
    next_id: u32,
}

fn state<const N: usize, const D: usize, const C: usize>(h: &Knn<N, D, C>) -> State {
    let classes = h
        .classes()
        .map(|c| (c.0, h.class_name(c).unwrap().to_string()))
        .collect();
    let mut examples: Vec<_> = h
        .examples()
        .map(|(id, c, e)| (id.0, c.0, e.to_vec()))
        .collect();
    examples.sort();
    State {
        classes,
        examples,
        threshold: h.threshold_q15(),
        next_id: h.next_example_id(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    AddClass(&'static str),
    AddExample(ClassId, [i8; 8]),
    ForgetExample(ExampleId),
    ForgetClass(ClassId),
    Relabel(ClassId, ClassId),
    SetThreshold(i32),
}

/// A synthetic embedding: a class direction plus deterministic jitter.
fn embedding(i: usize, class: ClassId) -> [i8; 8] {
    let mut e = [0i8; 8];
    for (j, v) in e.iter_mut().enumerate() {
        let jitter = ((i * 31 + j * 17) % 23) as i32 - 11;
        let base = if j == class.0 as usize * 2 % 8 { 90 } else { 0 };
        *v = (base + jitter) as i8;
    }
    e
}

/// Operation `i` of the script, chosen from the current memory (so the
/// store run and the model run choose the same operations).
fn choose(i: usize, h: &Head) -> Op {
    match i {
        0 => Op::AddClass("diatom"),
        1 => Op::AddClass("copepod"),
        2 => Op::AddClass("ciliate"),
        3 => Op::SetThreshold(12_000),
        20 => Op::Relabel(ClassId(2), ClassId(1)),
        21 => Op::AddClass("dinoflagellate"),
        33 => Op::ForgetClass(ClassId(0)),
        34 => Op::AddClass("radiolaria"),
        42 => Op::SetThreshold(-4_000),
        i if i % 9 == 5 && !h.is_empty() => {
            let oldest = h.examples().map(|(id, _, _)| id).min().unwrap();
            Op::ForgetExample(oldest)
        }
        _ => {
            let classes: Vec<_> = h.classes().collect();
            let class = classes[i % classes.len()];
            Op::AddExample(class, embedding(i, class))
        }
    }
}

fn run_on_head(op: Op, h: &mut Head) {
    match op {
        Op::AddClass(n) => drop(h.add_class(n).unwrap()),
        Op::AddExample(c, e) => drop(h.add_example(c, &e).unwrap()),
        Op::ForgetExample(id) => drop(h.forget_example(id).unwrap()),
        Op::ForgetClass(c) => drop(h.forget_class(c).unwrap()),
        Op::Relabel(a, b) => drop(h.relabel(a, b).unwrap()),
        Op::SetThreshold(t) => h.set_threshold_q15(t).unwrap(),
    }
}

fn run_on_store<F: NorFlash>(
    op: Op,
    s: &mut LabelStore<F>,
    h: &mut Head,
) -> Result<(), StoreError<F::Error>> {
    match op {
        Op::AddClass(n) => s.add_class(h, n).map(drop),
        Op::AddExample(c, e) => s.add_example(h, c, &e).map(drop),
        Op::ForgetExample(id) => s.forget_example(h, id),
        Op::ForgetClass(c) => s.forget_class(h, c).map(drop),
        Op::Relabel(a, b) => s.relabel(h, a, b).map(drop),
        Op::SetThreshold(t) => s.set_threshold(h, t),
    }
}

/// The model: the state after each prefix of the script (index = number of
/// completed operations).
fn model_history() -> Vec<State> {
    let mut h = Head::new();
    let mut history = vec![state(&h)];
    for i in 0..SCRIPT_LEN {
        let op = choose(i, &h);
        run_on_head(op, &mut h);
        history.push(state(&h));
    }
    history
}

/// Runs the script on a fresh store; returns how many operations completed
/// and the first error.
fn run_script<const W: usize, const E: usize>(
    flash: &mut MockFlash<'_, W, E>,
) -> (usize, Option<StoreError<MockFlashError>>) {
    let mut h = Head::new();
    let mut store = match LabelStore::mount_or_format(&mut *flash, &mut h) {
        Ok((s, _)) => s,
        Err(e) => return (0, Some(e)),
    };
    for i in 0..SCRIPT_LEN {
        let op = choose(i, &h);
        if let Err(e) = run_on_store(op, &mut store, &mut h) {
            return (i, Some(e));
        }
    }
    (SCRIPT_LEN, None)
}

#[test]
fn the_script_survives_a_reboot_and_compacts() {
    let history = model_history();
    let mut memory = vec![0xFFu8; REGION];
    let mut flash = Flash::new(&mut memory);
    assert_eq!(run_script(&mut flash), (SCRIPT_LEN, None));
    let mut h = Head::new();
    let (store, report) = LabelStore::mount(&mut flash, &mut h).unwrap();
    assert_eq!(state(&h), history[SCRIPT_LEN]);
    assert!(!report.dirty_tail && !report.fell_back);
    // The script must exercise compaction and eviction, or the power-cut
    // test below would not cover them.
    assert!(store.usage().generation >= 3, "{:?}", store.usage());
    assert!(history.iter().any(|s| s.examples.len() == 12));
}

/// The central test: for EVERY unit of the session (each byte
/// written, each page erased) cut power there, reboot, mount, and check the
/// memory is exactly the state after the completed operations (or, if the
/// interrupted operation's record was fully on flash, after it). Then the
/// store must still work: one more operation, remount, same state.
#[test]
fn power_cut_at_every_byte_of_every_write() {
    power_cut_everywhere::<4, PAGE>(REGION);
}

/// The same with 16-byte flash words (records padded to 16 bytes, a cut
/// tears a 16-byte word) and 256-byte pages.
#[test]
fn power_cut_everywhere_with_16_byte_words() {
    power_cut_everywhere::<16, 256>(2 * 3 * 256);
}

fn power_cut_everywhere<const W: usize, const E: usize>(region: usize) {
    let history = model_history();
    let mut memory = vec![0xFFu8; region];
    let total = {
        let mut flash = MockFlash::<W, E>::new(&mut memory);
        assert_eq!(run_script(&mut flash), (SCRIPT_LEN, None));
        let units = flash.consumed();
        // The session must compact several times, or cuts inside
        // compaction would not be covered.
        let mut h = Head::new();
        let (store, _) = LabelStore::mount(&mut flash, &mut h).unwrap();
        assert!(store.usage().generation >= 3, "{:?}", store.usage());
        units
    };
    assert!(total > 2_000, "script too small: {total} units");
    let mut interrupted_op_survived = 0;
    for cut in 0..=total {
        memory.fill(0xFF);
        let mut flash = MockFlash::<W, E>::new(&mut memory);
        flash.cut_power_after(cut, cut as u64 * 0x9E37_79B9 + 1);
        let (completed, error) = run_script(&mut flash);
        match error {
            None => assert_eq!(cut, total),
            Some(e) => assert_eq!(e, StoreError::Flash(MockFlashError::PowerCut), "cut {cut}"),
        }
        flash.restore_power();
        let mut h = Head::new();
        let (mut store, _) = LabelStore::mount_or_format(&mut flash, &mut h)
            .unwrap_or_else(|e| panic!("cut {cut}: mount failed: {e:?}"));
        let got = state(&h);
        if got != history[completed] {
            assert!(
                completed < SCRIPT_LEN && got == history[completed + 1],
                "cut {cut}: after {completed} completed operations the store holds {got:?}"
            );
            interrupted_op_survived += 1;
        }
        // Still usable: an operation after the cut persists.
        let extra = h.classes().next().map_or(Op::AddClass("late"), |c| {
            Op::AddExample(c, embedding(cut, c))
        });
        run_on_store(extra, &mut store, &mut h)
            .unwrap_or_else(|e| panic!("cut {cut}: write after reboot failed: {e:?}"));
        let expected = state(&h);
        let mut h2 = Head::new();
        LabelStore::mount(&mut flash, &mut h2).unwrap();
        assert_eq!(state(&h2), expected, "cut {cut}: second remount");
    }
    // A torn record surviving needs the undefined word to come out right:
    // possible, but rare.
    assert!(
        interrupted_op_survived * 100 < total,
        "{interrupted_op_survived}"
    );
}

fn finished_session() -> (Vec<u8>, u8, usize) {
    let mut memory = vec![0xFFu8; REGION];
    let mut flash = Flash::new(&mut memory);
    assert_eq!(run_script(&mut flash).0, SCRIPT_LEN);
    let mut h = Head::new();
    let (store, report) = LabelStore::mount(&mut flash, &mut h).unwrap();
    let used = store.usage().used;
    (memory, report.half, used)
}

/// Every single-bit flip anywhere in the region: mount never trusts it. The
/// memory is always a state that existed, and a flip in the live half is
/// always reported.
#[test]
fn every_single_bit_flip_is_detected() {
    let history = model_history();
    let (clean, live_half, _) = finished_session();
    let live = live_half as usize * REGION / 2..(live_half as usize + 1) * REGION / 2;
    let mut memory = clean.clone();
    for bit in 0..REGION * 8 {
        memory.copy_from_slice(&clean);
        let mut flash = Flash::new(&mut memory);
        flash.flip_bit(bit);
        let mut h = Head::new();
        let (_, report) = LabelStore::mount(&mut flash, &mut h)
            .unwrap_or_else(|e| panic!("bit {bit}: {e:?} (the older half should remain)"));
        let got = state(&h);
        assert!(
            history.contains(&got),
            "bit {bit}: a state that never existed"
        );
        if live.contains(&(bit / 8)) {
            assert!(
                report.dirty_tail || report.fell_back,
                "bit {bit} undetected"
            );
        }
    }
}

#[test]
fn random_multi_bit_flips_never_yield_an_invented_state() {
    let history = model_history();
    let (clean, _, _) = finished_session();
    let mut rng = seaclr_shared::testing::XorShift64(0x1234_5678_9ABC_DEF1);
    let mut next = || rng.next_u64();
    let mut memory = clean.clone();
    for trial in 0..400 {
        memory.copy_from_slice(&clean);
        let mut flash = Flash::new(&mut memory);
        let flips = 2 + (next() % 7) as usize;
        for _ in 0..flips {
            flash.flip_bit((next() % (REGION as u64 * 8)) as usize);
        }
        let mut h = Head::new();
        match LabelStore::mount(&mut flash, &mut h) {
            Ok(_) => assert!(history.contains(&state(&h)), "trial {trial}"),
            Err(StoreError::NotFormatted) => {}
            Err(e) => panic!("trial {trial}: {e:?}"),
        }
    }
}

#[test]
fn blank_flash_is_not_formatted_until_asked() {
    let mut memory = vec![0xFFu8; REGION];
    let mut flash = Flash::new(&mut memory);
    let mut h = Head::new();
    assert!(matches!(
        LabelStore::mount(&mut flash, &mut h),
        Err(StoreError::NotFormatted)
    ));
    let (_, report) = LabelStore::mount_or_format(&mut flash, &mut h).unwrap();
    assert!(report.formatted);
    let (_, report) = LabelStore::mount(&mut flash, &mut h).unwrap();
    assert!(!report.formatted && !report.dirty_tail);
    assert!(h.is_empty());
}

#[test]
fn a_full_store_says_so_and_keeps_its_contents() {
    // Two halves of one 512-byte page: a snapshot of ~16 examples fills it.
    let mut memory = vec![0xFFu8; 1024];
    let mut flash = MockFlash::<4, 512>::new(&mut memory);
    let mut h = Knn::<64, 8, 4>::new();
    let (mut store, _) = LabelStore::mount_or_format(&mut flash, &mut h).unwrap();
    let c = store.add_class(&mut h, "a").unwrap();
    let mut stored = 0;
    let err = loop {
        match store.add_example(&mut h, c, &embedding(stored, ClassId(stored as u8 % 4))) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err, StoreError::Full);
    assert_eq!(h.len(), stored, "the refused example is not in the head");
    let expected = state(&h);
    let mut h2 = Knn::<64, 8, 4>::new();
    LabelStore::mount(&mut flash, &mut h2).unwrap();
    assert_eq!(state(&h2), expected);
    assert!(stored >= 5);
}

#[test]
fn an_image_with_another_alignment_is_refused() {
    let mut memory = vec![0xFFu8; 2048];
    let mut h = Head::new();
    {
        let mut flash = MockFlash::<4, 256>::new(&mut memory);
        let (mut store, _) = LabelStore::mount_or_format(&mut flash, &mut h).unwrap();
        store.add_class(&mut h, "a").unwrap();
    }
    let mut flash = MockFlash::<16, 256>::new(&mut memory);
    assert!(matches!(
        LabelStore::mount(&mut flash, &mut h),
        Err(StoreError::Geometry)
    ));
}

#[test]
fn refused_operations_write_nothing() {
    let mut memory = vec![0xFFu8; REGION];
    let mut flash = Flash::new(&mut memory);
    let mut h = Head::new();
    let (mut store, _) = LabelStore::mount_or_format(&mut flash, &mut h).unwrap();
    let used = store.usage().used;
    assert_eq!(
        store.add_example(&mut h, ClassId(0), &[1; 8]),
        Err(StoreError::Label(KnnError::NoSuchClass))
    );
    assert_eq!(
        store.forget_example(&mut h, ExampleId(3)),
        Err(StoreError::Label(KnnError::NoSuchExample))
    );
    assert_eq!(
        store.commit(&mut h, &LabelRecord::SnapshotEnd { next_example_id: 9 }),
        Err(StoreError::Label(KnnError::NotAnOperation))
    );
    assert_eq!(store.usage().used, used);
}
