//! Reaches the layer decoder: the fuzzer's bytes become a blob whose magic,
//! version, lengths and CRCs are made valid, so every input exercises the
//! header field checks and the postcard layer records (and, when it parses,
//! the engine). Reserved bytes are zeroed and a non-finite or non-positive
//! output scale replaced, so inputs get past the header's range checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seaclr_edge::engine::Engine;
use seaclr_shared::blob::{Blob, FORMAT_VERSION, HEADER_LEN, MAGIC, crc32};

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_LEN {
        return;
    }
    let mut bytes = data.to_vec();
    bytes[..8].copy_from_slice(&MAGIC);
    bytes[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    let payload_len = (bytes.len() - HEADER_LEN) as u32;
    bytes[12..16].copy_from_slice(&payload_len.to_le_bytes());
    let crc = crc32(&bytes[HEADER_LEN..]);
    bytes[16..20].copy_from_slice(&crc.to_le_bytes());
    bytes[40] = 0x80; // input zero point -128
    bytes[41] = 1; // input encoding
    // Reserved bytes zero and a finite positive output scale, or the header
    // checks refuse the input before a layer record is read.
    bytes[43] = 0;
    bytes[48..60].fill(0);
    let scale = f32::from_le_bytes([bytes[44], bytes[45], bytes[46], bytes[47]]);
    if !(scale.is_finite() && scale > 0.0) {
        bytes[44..48].copy_from_slice(&1.0f32.to_le_bytes());
    }
    let crc = crc32(&bytes[..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    if let Ok(blob) = Blob::parse(&bytes) {
        assert_eq!(blob.layers().count(), blob.header().layer_count as usize);
        // Checked after the CRCs: every scale finite and positive.
        let scale = blob.header().output_scale;
        assert!(scale.is_finite() && scale > 0.0);
        for layer in blob.layers() {
            let s = layer.requant().output_scale;
            assert!(s.is_finite() && s > 0.0);
        }
    }
    if let Ok(engine) = Engine::new(&bytes) {
        if engine.arena_bytes() <= 1 << 20 && engine.macs() <= 1 << 22 {
            let image = vec![17u8; engine.input_size() * engine.input_size()];
            let mut arena = vec![0u8; engine.arena_bytes()];
            let mut out = vec![0i8; engine.embedding_dim()];
            engine
                .encode(&image, &mut arena, &mut out)
                .expect("a parsed model encodes");
        }
    }
});
