//! Any bytes given to the blob parser (and, when they parse, to the engine)
//! must end in `Ok` or a `BlobError`/`EngineError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seaclr_edge::engine::Engine;
use seaclr_shared::blob::Blob;

fuzz_target!(|data: &[u8]| {
    if let Ok(blob) = Blob::parse(data) {
        assert_eq!(blob.layers().count(), blob.header().layer_count as usize);
    }
    if let Ok(engine) = Engine::new(data) {
        // Small models only: keep each run fast.
        if engine.arena_bytes() <= 1 << 20 && engine.macs() <= 1 << 22 {
            let image = vec![200u8; engine.input_size() * engine.input_size()];
            let mut arena = vec![0u8; engine.arena_bytes()];
            let mut out = vec![0i8; engine.embedding_dim()];
            engine
                .encode(&image, &mut arena, &mut out)
                .expect("a parsed model encodes");
        }
    }
});
