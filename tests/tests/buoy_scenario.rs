//! The buoy scenario: boot with the default model and an empty label store,
//! stream FlowCam images (another instrument, taxa the model never saw),
//! label a few frames per class through the console, see the classification
//! of the remaining frames improve, cut the power in the middle of further
//! label updates, reboot, and find every acknowledged label intact.
//!
//! Model: the committed default `models/seaclr-s.seaclr` when it exists;
//! otherwise a random-weights int8 blob built here through the blob writer
//! and run by the same edge engine (the test says so on stderr).

use seaclr_device::buoy::{Config, FrameResult};
use seaclr_firmware_sim::display::{Framebuffer, HEIGHT, WIDTH};
use seaclr_firmware_sim::flash_file::{FlashFile, Layout};
use seaclr_firmware_sim::frames::{FolderSource, Frame, FrameSource, Order};
use seaclr_firmware_sim::host::{self, HostBuoy, HostMemory};
use seaclr_firmware_sim::power::PowerSupply;
use std::path::{Path, PathBuf};

const LABELS_PER_CLASS: usize = 3;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn stream() -> Vec<Frame> {
    let dir = root().join("../shared/data/flowcam-demo");
    let mut src = FolderSource::new(&dir, Order::Interleaved).unwrap();
    let mut out = Vec::new();
    while let Some(f) = src.next_frame() {
        out.push(f.unwrap());
    }
    out
}

fn model(frames: &[Frame]) -> Vec<u8> {
    let committed = root().join("models/seaclr-s.seaclr");
    if let Ok(blob) = std::fs::read(&committed) {
        return blob;
    }
    eprintln!(
        "note: {} not found; using a random-weights int8 model built by seaclr_firmware_sim::dev_model",
        committed.display()
    );
    let calibration: Vec<Vec<u8>> = frames
        .iter()
        .take(48)
        .map(|f| {
            let mut out = vec![0u8; 64 * 64];
            seaclr_shared::preprocess::preprocess_gray(
                &f.gray,
                f.width as usize,
                f.height as usize,
                64,
                &mut out,
            )
            .unwrap();
            out
        })
        .collect();
    seaclr_firmware_sim::dev_model::random_blob(0x5EAC1, 64, &calibration).unwrap()
}

fn boot<'m>(
    memory: &'m mut HostMemory,
    path: &Path,
    power: PowerSupply,
) -> (FlashFile, HostBuoy<'m>) {
    let flash = FlashFile::open(path, power).unwrap();
    let buoy = memory.boot(Config::default(), flash.clone()).unwrap();
    (flash, buoy)
}

fn reply(buoy: &mut HostBuoy<'_>, line: &str) -> Vec<String> {
    host::console_lines(buoy, line.as_bytes())
}

fn process(buoy: &mut HostBuoy<'_>, frame: &Frame) -> FrameResult {
    let mut screen = Framebuffer::new(WIDTH, HEIGHT);
    host::present(buoy, frame, 320, 0, &mut screen).0
}

fn examples_per_class(buoy: &HostBuoy<'_>, classes: usize) -> Vec<usize> {
    (0..classes).map(|c| buoy.examples_of(c)).collect()
}

fn accuracy(results: &[(FrameResult, String)]) -> f64 {
    let correct = results
        .iter()
        .filter(|(r, truth)| {
            r.classification().is_some_and(|c| !c.unknown) && r.class_name.as_deref() == Some(truth)
        })
        .count();
    correct as f64 / results.len().max(1) as f64
}

fn classify_all(buoy: &mut HostBuoy<'_>, frames: &[Frame]) -> Vec<(FrameResult, String)> {
    frames
        .iter()
        .map(|f| (process(buoy, f), f.truth.clone().unwrap()))
        .collect()
}

#[test]
fn buoy_learns_from_console_labels_and_keeps_them_through_a_power_cut() {
    let frames = stream();
    assert_eq!(frames.len(), 105);
    let dir = std::env::temp_dir().join(format!("seaclr-buoy-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("flash.img");
    let mut chip = FlashFile::create(&path, Layout::default()).unwrap();
    seaclr_device::flash::install_model(&mut chip, &model(&frames)).unwrap();
    drop(chip);

    // Boot with an empty store.
    let mut memory = HostMemory::new();
    let (_flash, mut buoy) = boot(&mut memory, &path, PowerSupply::steady());
    assert!(buoy.model_problem().is_none());
    assert_eq!(buoy.labelled_examples(), 0);

    // The first frames of the stream: LABELS_PER_CLASS of each class (interleaved order).
    let classes: Vec<String> = {
        let mut c: Vec<String> = frames.iter().map(|f| f.truth.clone().unwrap()).collect();
        c.sort();
        c.dedup();
        c
    };
    let n_label = LABELS_PER_CLASS * classes.len();
    let (to_label, rest) = frames.split_at(n_label);
    let first = classify_all(&mut buoy, to_label);
    let before = accuracy(&classify_all(&mut buoy, rest));

    // Label them through the console.
    for c in &classes {
        let reply = reply(&mut buoy, &format!("addclass {c}"));
        assert!(reply[0].starts_with("ok"), "{reply:?}");
    }
    for (r, truth) in &first {
        let reply = reply(&mut buoy, &format!("label {} {truth}", r.number));
        assert!(
            reply[0].starts_with("ok") && !reply[0].contains("not stored"),
            "{reply:?}"
        );
    }
    assert_eq!(buoy.labelled_examples(), n_label);
    let after_results = classify_all(&mut buoy, rest);
    let after = accuracy(&after_results);
    let chance = 1.0 / classes.len() as f64;
    eprintln!(
        "accuracy on the {} unlabelled frames: {:.1}% before labels, {:.1}% after {LABELS_PER_CLASS} labels per class (chance {:.1}%)",
        rest.len(),
        100.0 * before,
        100.0 * after,
        100.0 * chance
    );
    assert!(
        after >= before + 0.15,
        "labels did not help: {before:.3} -> {after:.3}"
    );
    assert!(
        after >= chance + 0.05,
        "after labelling {after:.3} is not clearly above chance {chance:.3}"
    );
    drop(buoy);

    // More label updates with the power failing during the 4th flash write.
    let mut memory = HostMemory::new();
    let (flash, mut buoy) = boot(&mut memory, &path, PowerSupply::cut_after(3));
    let mut acked = examples_per_class(&buoy, classes.len());
    let mut acked_frames = Vec::new();
    let mut refused = 0;
    for f in &rest[..12] {
        let r = process(&mut buoy, f);
        let truth = f.truth.clone().unwrap();
        let reply = reply(&mut buoy, &format!("label {} {truth}", r.number));
        if reply[0].starts_with("ok") {
            acked[classes.iter().position(|c| *c == truth).unwrap()] += 1;
            acked_frames.push((f.clone(), truth));
        } else {
            assert!(flash.power_cut(), "refused without a power cut: {reply:?}");
            refused += 1;
        }
        if flash.power_cut() {
            break;
        }
    }
    assert!(
        flash.power_cut() && refused == 1,
        "the power cut never hit a label update"
    );
    assert_eq!(acked_frames.len(), 3);
    drop((flash, buoy));

    // Reboot: every acknowledged label is there, nothing else.
    let mut memory = HostMemory::new();
    let (_flash, mut buoy) = boot(&mut memory, &path, PowerSupply::steady());
    assert_eq!(
        buoy.class_names()
            .flatten()
            .map(String::from)
            .collect::<Vec<_>>(),
        classes
    );
    assert_eq!(examples_per_class(&buoy, classes.len()), acked);
    for (f, truth) in &acked_frames {
        let r = process(&mut buoy, f);
        let c = r.classification().unwrap();
        assert!(
            c.similarity > 0.999,
            "{truth} frame's stored embedding is missing: best similarity {}",
            c.similarity
        );
    }
    drop(buoy);

    // A corrupted model region: the buoy refuses to classify and leaves the store untouched.
    let mut image = std::fs::read(&path).unwrap();
    let store = Layout::default().store_offset() as usize;
    let store_before = image[store..].to_vec();
    image[Layout::default().model_offset() as usize + 100] ^= 0x10;
    std::fs::write(&path, &image).unwrap();
    let mut memory = HostMemory::new();
    let (_flash, mut buoy) = boot(&mut memory, &path, PowerSupply::steady());
    let why = buoy.model_problem().unwrap().to_string();
    assert!(
        why.contains("refusing to classify") && why.contains("corrupt"),
        "{why}"
    );
    let r = process(&mut buoy, &frames[0]);
    assert!(r.classification().is_none());
    assert!(reply(&mut buoy, "label 1 Tripos")[0].starts_with("error:"));
    drop(buoy);
    assert_eq!(std::fs::read(&path).unwrap()[store..], store_before[..]);
}
