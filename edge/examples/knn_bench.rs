//! Benchmark of the default kNN head: classify latency with 1,000 stored
//! examples, the head's RAM, and flash bytes per stored example.
//!
//! `cargo run --release -p seaclr-edge --example knn_bench` prints host
//! timings. For an instruction count, run one classification under
//! callgrind, counting only inside `classify`:
//! `valgrind --tool=callgrind --toggle-collect='*Knn*classify*' target/release/examples/knn_bench once`

use std::hint::black_box;
use std::time::Instant;

use seaclr_edge::knn::KnnHead;
use seaclr_shared::labels::{EMBEDDING_DIM, add_example_frame_len, padded_len};
use seaclr_shared::testing::XorShift64;

/// Deterministic pseudo-random int8 embeddings clustered around 64 class
/// centres (xorshift).
struct Gen(XorShift64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn around(&mut self, centre: &[i8]) -> Vec<i8> {
        centre
            .iter()
            .map(|&c| (c as i32 + (self.next() % 41) as i32 - 20).clamp(-128, 127) as i8)
            .collect()
    }
}

fn main() {
    let once = std::env::args().nth(1).as_deref() == Some("once");
    let mut rng = Gen(XorShift64(0x5EAC_1A55_0000_0001));
    let mut head = Box::new(KnnHead::new());
    let centres: Vec<Vec<i8>> = (0..64)
        .map(|_| {
            (0..EMBEDDING_DIM)
                .map(|_| (rng.next() % 161) as i8 - 80)
                .collect()
        })
        .collect();
    let classes: Vec<_> = (0..64)
        .map(|i| head.add_class(&format!("class-{i:02}")).unwrap())
        .collect();
    let mut evicted = 0;
    while head.len() < head.capacity() {
        let c = (rng.next() % 64) as usize;
        let e = rng.around(&centres[c]);
        if head.add_example(classes[c], &e).unwrap().evicted.is_some() {
            evicted += 1;
        }
    }
    let queries: Vec<Vec<i8>> = (0..256).map(|i| rng.around(&centres[i % 64])).collect();
    if once {
        let r = head.classify(black_box(&queries[0])).unwrap();
        black_box(r);
        return;
    }
    // Warm up, then time.
    let mut correct = 0;
    for (i, q) in queries.iter().enumerate() {
        if head.classify(q).unwrap().class == Some(classes[i % 64]) {
            correct += 1;
        }
    }
    let rounds = 20;
    let start = Instant::now();
    for _ in 0..rounds {
        for q in &queries {
            black_box(head.classify(black_box(q)).unwrap());
        }
    }
    let per = start.elapsed().as_secs_f64() / (rounds * queries.len()) as f64;
    println!(
        "examples stored: {} (evictions while filling: {evicted})",
        head.len()
    );
    println!(
        "classify, 1,000 x 128 int8, k = {}: {:.1} us per query (host)",
        head.k(),
        per * 1e6
    );
    println!(
        "sanity: {correct}/{} synthetic queries classified to their centre",
        queries.len()
    );
    println!(
        "RAM of KnnHead (size_of): {} bytes",
        std::mem::size_of::<KnnHead>()
    );
    let frame = add_example_frame_len(EMBEDDING_DIM);
    println!(
        "flash per stored example: {} bytes frame, {} bytes at 4-byte alignment",
        frame,
        padded_len(frame, 4)
    );
    // Eviction cost when full: one insertion into the largest class.
    let e = rng.around(&centres[0]);
    let start = Instant::now();
    let added = head.add_example(classes[0], &e).unwrap();
    println!(
        "add_example into a full head (eviction {:?}): {:.1} us",
        added.evicted.is_some(),
        start.elapsed().as_secs_f64() * 1e6
    );
}
