//! The QEMU firmware's self-check fixtures, regenerated with the host engine.
//!
//! `firmware-qemu/fixtures/frames.bin` is a frame stream
//! (`seaclr_shared::frame_stream`) of 12 FlowCam-demo ROIs (3 classes x 4,
//! gray, unprocessed), and `firmware-qemu/fixtures/expected.rs` holds what the
//! host gets for them: each frame's centred int8 embedding
//! (`preprocess_gray`, `Engine::encode`, `knn::centre_embedding`, as the
//! buoy does) and the answers of a `KnnHead` taught the first two frames of
//! each class. The firmware runs the same code on ARM instructions under
//! QEMU and must reproduce every byte.
//!
//! This test rebuilds both files and fails if the committed ones differ;
//! with `SEACLR_UPDATE_FIXTURES=1` it rewrites them instead. Without the
//! data folder (`../shared/data/flowcam-demo`) the stream cannot be rebuilt;
//! the expectations are then checked against the committed stream alone.

use seaclr_edge::engine::Engine;
use seaclr_edge::knn::{KnnHead, centre_embedding};
use seaclr_shared::frame_stream::{Decoder, MAX_HEIGHT, MAX_RECORD_LEN, MAX_WIDTH, encode_stream};
use seaclr_shared::labels::{ClassId, EMBEDDING_DIM};
use seaclr_shared::preprocess::preprocess_gray;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The classes (FlowCam-demo folders) and frames per class.
const CLASSES: [&str; 3] = ["Actinoptychus", "Ciliophora", "Tripos"];
const PER_CLASS: usize = 4;
/// Frames per class taught to the head (the first ones); the rest are asked.
const TAUGHT_PER_CLASS: usize = 2;
/// The head's open-set threshold in the check (0.85 in Q15), so both
/// "known" and "unknown" answers can occur.
const THRESHOLD_Q15: i32 = 27853;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn update() -> bool {
    std::env::var_os("SEACLR_UPDATE_FIXTURES").is_some_and(|v| v == "1")
}

/// The frame stream from the image files: per class, the first
/// `PER_CLASS` files by name that fit the stream's size cap. Gray as the
/// buoy decodes it (`image`'s `to_luma8`).
fn build_stream(data: &Path) -> Vec<u8> {
    let mut frames = Vec::new();
    for class in CLASSES {
        let dir = data.join(class);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let mut taken = 0;
        for path in files {
            if taken == PER_CLASS {
                break;
            }
            let gray = image::open(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .to_luma8();
            let (w, h) = (gray.width() as usize, gray.height() as usize);
            if w > MAX_WIDTH || h > MAX_HEIGHT {
                continue;
            }
            let id = format!(
                "flowcam-demo/{class}/{}",
                path.file_name().unwrap().to_str().unwrap()
            );
            frames.push((w, h, id, gray.into_raw()));
            taken += 1;
        }
        assert_eq!(taken, PER_CLASS, "{class}: not enough small images");
    }
    encode_stream(
        frames
            .iter()
            .map(|(w, h, id, px)| (*w, *h, id.as_bytes(), &px[..])),
    )
    .unwrap()
}

struct Decoded {
    id: String,
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

fn decode(stream: &[u8]) -> Vec<Decoded> {
    let mut dec = Decoder::new(stream).unwrap();
    let mut buf = vec![0u8; MAX_RECORD_LEN];
    let mut out = Vec::new();
    while let Some(f) = dec.next_frame(&mut buf).unwrap() {
        out.push(Decoded {
            id: f.id_str().to_string(),
            width: f.width,
            height: f.height,
            pixels: f.pixels.to_vec(),
        });
    }
    out
}

fn opt(c: Option<ClassId>) -> String {
    match c {
        Some(c) => format!("Some({})", c.0),
        None => "None".into(),
    }
}

/// The expectations as the Rust source the firmware `include!`s.
fn expected_source(blob: &[u8], frames: &[Decoded]) -> String {
    let engine = Engine::new(blob).unwrap();
    let mut arena = vec![0u8; engine.arena_bytes()];
    let size = engine.input_size();
    let mut embeddings = Vec::new();
    for f in frames {
        let mut image = vec![0u8; size * size];
        preprocess_gray(&f.pixels, f.width, f.height, size, &mut image).unwrap();
        let mut raw = vec![0i8; engine.embedding_dim()];
        engine.encode(&image, &mut arena, &mut raw).unwrap();
        let mut centred = [0i8; EMBEDDING_DIM];
        centre_embedding(&raw, engine.header().output_zero_point, &mut centred).unwrap();
        embeddings.push(centred);
    }

    let mut head = Box::new(KnnHead::new());
    head.set_threshold_q15(THRESHOLD_Q15).unwrap();
    let mut teach = Vec::new();
    for (c, name) in CLASSES.iter().enumerate() {
        let class = head.add_class(name).unwrap();
        assert_eq!(class, ClassId(c as u8));
        for i in 0..TAUGHT_PER_CLASS {
            let frame = c * PER_CLASS + i;
            head.add_example(class, &embeddings[frame]).unwrap();
            teach.push((frame, c));
        }
    }

    let mut s = String::new();
    s += "// @generated by tests/tests/firmware_fixtures.rs from models/seaclr-s.seaclr\n";
    s += "// and fixtures/frames.bin with the host engine. Do not edit: rerun that test\n";
    s += "// with SEACLR_UPDATE_FIXTURES=1.\n\n";
    s += "/// The model blob's payload CRC-32 (its header), so a new blob is noticed.\n";
    writeln!(
        s,
        "pub const MODEL_PAYLOAD_CRC32: u32 = 0x{:08x};",
        engine.header().payload_crc32
    )
    .unwrap();
    s += "/// The frames' ids, in stream order.\n";
    writeln!(s, "pub const FRAME_IDS: [&str; {}] = [", frames.len()).unwrap();
    for f in frames {
        writeln!(s, "    {:?},", f.id).unwrap();
    }
    s += "];\n";
    s += "/// Each frame's centred int8 embedding (preprocess_gray, Engine::encode,\n";
    s += "/// knn::centre_embedding).\n";
    writeln!(
        s,
        "pub const EMBEDDINGS: [[i8; {EMBEDDING_DIM}]; {}] = [",
        frames.len()
    )
    .unwrap();
    for e in &embeddings {
        s += "    [\n";
        for row in e.chunks(16) {
            let vals: Vec<String> = row.iter().map(|v| v.to_string()).collect();
            writeln!(s, "        {},", vals.join(", ")).unwrap();
        }
        s += "    ],\n";
    }
    s += "];\n";
    s += "/// The head's classes; the index is the ClassId.\n";
    writeln!(
        s,
        "pub const CLASSES: [&str; {}] = {CLASSES:?};",
        CLASSES.len()
    )
    .unwrap();
    s += "/// The head's open-set threshold (Q15).\n";
    writeln!(s, "pub const THRESHOLD_Q15: i32 = {THRESHOLD_Q15};").unwrap();
    s += "/// Frames taught as labelled examples, in order: (frame, class).\n";
    writeln!(s, "pub const TEACH: [(usize, u8); {}] = [", teach.len()).unwrap();
    for (frame, class) in &teach {
        writeln!(s, "    ({frame}, {class}),").unwrap();
    }
    s += "];\n";
    s += "/// The head's answer for every frame not taught.\n";
    let asked: Vec<usize> = (0..frames.len())
        .filter(|f| !teach.iter().any(|(t, _)| t == f))
        .collect();
    writeln!(s, "pub const ANSWERS: [Answer; {}] = [", asked.len()).unwrap();
    for frame in asked {
        let c = head.classify(&embeddings[frame]).unwrap();
        let nearest = c.neighbours().first().map(|n| n.example.0);
        writeln!(
            s,
            "    Answer {{ frame: {frame}, class: {}, vote_winner: {}, confidence_q15: {}, best_similarity_q15: {}, nearest: {nearest:?} }},",
            opt(c.class),
            opt(c.vote_winner),
            c.confidence_q15,
            c.best_similarity_q15,
        )
        .unwrap();
    }
    s += "];\n";
    s
}

/// Compares `want` with the committed file, or rewrites it when updating.
fn check_file(path: &Path, want: &[u8]) -> Option<String> {
    let have = std::fs::read(path).unwrap_or_default();
    if have == want {
        return None;
    }
    if update() {
        std::fs::write(path, want).unwrap();
        eprintln!("rewrote {}", path.display());
        return None;
    }
    Some(format!(
        "{} differs from what the host engine gives ({} vs {} bytes); rerun with SEACLR_UPDATE_FIXTURES=1 and commit it",
        path.display(),
        have.len(),
        want.len()
    ))
}

#[test]
fn firmware_fixtures_match_the_host_engine() {
    let fixtures = root().join("firmware-qemu/fixtures");
    let stream_path = fixtures.join("frames.bin");
    let data = root().join("../shared/data/flowcam-demo");
    let mut problems = Vec::new();
    if data.is_dir() {
        problems.extend(check_file(&stream_path, &build_stream(&data)));
    } else {
        eprintln!(
            "note: {} not found; checking the expectations against the committed stream only",
            data.display()
        );
    }
    let stream = std::fs::read(&stream_path).unwrap();
    let frames = decode(&stream);
    assert_eq!(frames.len(), CLASSES.len() * PER_CLASS);
    let blob = std::fs::read(root().join("models/seaclr-s.seaclr")).unwrap();
    let source = expected_source(&blob, &frames);
    problems.extend(check_file(&fixtures.join("expected.rs"), source.as_bytes()));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
