//! Batch-1, single-thread encode latency of the int8 engine.
//!
//! `cargo run --release -p seaclr-edge --example encode_bench -- [BLOB] [--iters N] [--warmup N] [--write-blob PATH] [--embedding-out PATH]`
//!
//! Without BLOB it builds a seaclr-s-shaped blob (64 x 64, stage channels 16,
//! 32, 64, 128 with stage 4's stride-2 entry conv narrowed to 96, as in
//! `configs/seaclr-s.toml`; random int8 weights, plausible multipliers): timing does not
//! depend on the weight values (no data-dependent branches besides clamps).
//! Prints one JSON line: median / mean / min nanoseconds per encode, MACs,
//! and GMAC/s. With `--iters 0` it only sets up (a baseline for callgrind).

use seaclr_edge::engine::Engine;
use seaclr_shared::blob::PREPROCESS_ID;
use seaclr_shared::blob::write::{ModelInfo, OwnedLayer, OwnedRequant, write_owned};
use std::time::Instant;

use seaclr_shared::testing::XorShift64 as Rng;

fn synthetic_seaclr_s() -> Vec<u8> {
    let mut rng = Rng(0x5eac_1e55);
    let mut layers = Vec::new();
    let mut cin = 1usize;
    let mut zp = -128i8;
    // (stride-2 entry width, stage width) per stage.
    for (entry, stage) in [(16usize, 16usize), (32, 32), (64, 64), (96, 128)] {
        for (stride, cout) in [(2u8, entry), (1, stage)] {
            let w: Vec<i8> = (0..cout * cin * 9)
                .map(|_| ((rng.next_u64() % 255) as i32 - 127) as i8)
                .collect();
            let b: Vec<i32> = (0..cout)
                .map(|_| (rng.next_u64() % 2001) as i32 - 1000)
                .collect();
            let rq = OwnedRequant {
                input_zero_point: zp,
                output_zero_point: -128,
                activation_min: -128,
                activation_max: 127,
                multipliers: vec![1_500_000_000; cout],
                shifts: vec![-12; cout],
                output_scale: 0.05,
            };
            layers.push(OwnedLayer::conv3x3(
                cin as u16,
                cout as u16,
                stride,
                &w,
                &b,
                rq,
            ));
            cin = cout;
            zp = -128;
        }
    }
    let rq = OwnedRequant {
        input_zero_point: -128,
        output_zero_point: 0,
        activation_min: -128,
        activation_max: 127,
        multipliers: vec![1 << 30],
        shifts: vec![-4],
        output_scale: 0.02,
    };
    layers.push(OwnedLayer::global_avg_pool(128, rq));
    write_owned(
        ModelInfo {
            input_size: 64,
            preprocess_id: PREPROCESS_ID,
        },
        &layers,
    )
    .expect("valid model")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut blob_path, mut iters, mut warmup, mut write) = (None, 200usize, 20usize, None);
    let mut embedding_out = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--iters" => iters = args.next().and_then(|v| v.parse().ok()).expect("--iters N"),
            "--warmup" => {
                warmup = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--warmup N")
            }
            "--write-blob" => write = Some(args.next().expect("--write-blob PATH")),
            "--embedding-out" => embedding_out = Some(args.next().expect("--embedding-out PATH")),
            _ => blob_path = Some(a),
        }
    }
    let blob = match &blob_path {
        Some(p) => std::fs::read(p).unwrap_or_else(|e| panic!("reading {p}: {e}")),
        None => synthetic_seaclr_s(),
    };
    if let Some(path) = write {
        std::fs::write(&path, &blob).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }
    let engine = Engine::new(&blob).unwrap_or_else(|e| panic!("blob: {e}"));
    let n = engine.input_size();
    let mut rng = Rng(42);
    // A dark blob on white, like a plankton image.
    let image: Vec<u8> = (0..n * n)
        .map(|i| {
            let (y, x) = ((i / n) as i64 - n as i64 / 2, (i % n) as i64 - n as i64 / 2);
            if y * y + 2 * x * x < (n * n / 8) as i64 {
                (rng.next_u64() % 120) as u8
            } else {
                255
            }
        })
        .collect();
    let mut arena = vec![0u8; engine.arena_bytes()];
    let mut out = vec![0i8; engine.embedding_dim()];
    if let Some(path) = embedding_out {
        engine.encode(&image, &mut arena, &mut out).expect("encode");
        let text: Vec<String> = out.iter().map(|v| v.to_string()).collect();
        std::fs::write(&path, text.join(" ")).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }
    if iters == 0 {
        println!("{{\"iters\":0}}");
        return;
    }
    for _ in 0..warmup {
        engine.encode(&image, &mut arena, &mut out).expect("encode");
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let r = engine
            .encode(std::hint::black_box(&image), &mut arena, &mut out)
            .expect("encode");
        std::hint::black_box((&out, r));
        times.push(t.elapsed().as_nanos() as u64);
    }
    times.sort_unstable();
    let median = times[iters / 2];
    let mean = times.iter().sum::<u64>() / iters as u64;
    println!(
        "{{\"blob\":\"{}\",\"iters\":{iters},\"median_ns\":{median},\"mean_ns\":{mean},\"min_ns\":{},\"macs\":{},\"gmacs_per_s\":{:.3},\"arena_bytes\":{},\"blob_bytes\":{}}}",
        blob_path.as_deref().unwrap_or("synthetic seaclr-s"),
        times[0],
        engine.macs(),
        engine.macs() as f64 / median as f64,
        engine.arena_bytes(),
        blob.len()
    );
}
