//! Blob round trips, named corruption cases, and "never panics" properties.

use super::write::*;
use super::*;
use proptest::prelude::*;
use std::vec::Vec;

/// Tiny deterministic generator so one proptest seed describes a whole model.
use crate::testing::XorShift64 as Rng;

fn requant(rng: &mut Rng, channels: usize, input_zero_point: i8) -> OwnedRequant {
    let output_zero_point = rng.range(-128, 127) as i8;
    OwnedRequant {
        input_zero_point,
        output_zero_point,
        activation_min: output_zero_point.min(rng.range(-128, 0) as i8),
        activation_max: 127,
        multipliers: (0..channels)
            .map(|_| rng.range(1 << 30, i32::MAX as i64) as i32)
            .collect(),
        shifts: (0..channels).map(|_| rng.range(-31, 30) as i8).collect(),
        output_scale: rng.range(1, 1000) as f32 / 997.0,
    }
}

/// A random valid model: convs, then optionally a pool and a linear.
fn random_model(seed: u64) -> (ModelInfo, Vec<OwnedLayer>) {
    let mut rng = Rng(seed | 1);
    let size = rng.range(1, 9) as usize;
    let mut layers = Vec::new();
    let (mut c, mut h) = (1usize, size);
    let mut zp = INPUT_ZERO_POINT;
    for _ in 0..rng.range(1, 3) {
        let cout = rng.range(1, 5) as usize;
        let stride = rng.range(1, 2) as u8;
        let w: Vec<i8> = (0..cout * c * 9)
            .map(|_| rng.range(-127, 127) as i8)
            .collect();
        let b: Vec<i32> = (0..cout)
            .map(|_| rng.range(-100_000, 100_000) as i32)
            .collect();
        let rq = requant(&mut rng, cout, zp);
        zp = rq.output_zero_point;
        layers.push(OwnedLayer::conv3x3(
            c as u16,
            cout as u16,
            stride,
            &w,
            &b,
            rq,
        ));
        c = cout;
        h = (h - 1) / stride as usize + 1;
    }
    let mut features = h * h * c;
    if rng.range(0, 1) == 1 {
        let rq = requant(&mut rng, 1, zp);
        zp = rq.output_zero_point;
        layers.push(OwnedLayer::global_avg_pool(c as u16, rq));
        features = c;
    }
    if rng.range(0, 1) == 1 {
        let out = rng.range(1, 6) as usize;
        let w: Vec<i8> = (0..out * features)
            .map(|_| rng.range(-127, 127) as i8)
            .collect();
        let b: Vec<i32> = (0..out).map(|_| rng.range(-1000, 1000) as i32).collect();
        layers.push(OwnedLayer::linear(
            features as u16,
            out as u16,
            &w,
            &b,
            requant(&mut rng, out, zp),
        ));
    }
    (
        ModelInfo {
            input_size: size as u16,
            preprocess_id: PREPROCESS_ID,
        },
        layers,
    )
}

fn sample_blob() -> Vec<u8> {
    let (info, layers) = random_model(0x5eac1);
    write_owned(info, &layers).unwrap()
}

/// Rewrites both CRCs so a mutation reaches the layer decoder.
fn fix_crcs(bytes: &mut [u8]) {
    if bytes.len() < HEADER_LEN {
        return;
    }
    let payload_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let end = (HEADER_LEN + payload_len).min(bytes.len());
    let crc = crc32(&bytes[HEADER_LEN..end]);
    bytes[16..20].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32(&bytes[..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn round_trip_keeps_every_layer_and_header_figure() {
    let (info, layers) = random_model(42);
    let bytes = write_owned(info, &layers).unwrap();
    let blob = Blob::parse(&bytes).unwrap();
    let parsed: Vec<Layer<'_>> = blob.layers().collect();
    let expected: Vec<Layer<'_>> = layers.iter().map(OwnedLayer::layer).collect();
    assert_eq!(parsed, expected);
    assert_eq!(blob.header().format_version, FORMAT_VERSION);
    assert_eq!(blob.header().total_len(), bytes.len());
    assert_eq!(blob.header().arena_bytes as u64, blob.plan().arena_bytes());
}

#[test]
fn weights_are_borrowed_from_the_input_bytes() {
    let bytes = sample_blob();
    let blob = Blob::parse(&bytes).unwrap();
    let Some(Layer::Conv3x3(conv)) = blob.layers().next() else {
        panic!("first layer is a conv")
    };
    let range = bytes.as_ptr_range();
    assert!(
        range.contains(&conv.weights.0.as_ptr()),
        "weights point into the blob bytes"
    );
}

#[test]
fn known_figures_of_a_small_model() {
    // 8x8 input, conv 1->4 stride 2 (4x4x4), conv 4->4 stride 1, pool, linear 4->3.
    let rq = |c: usize| OwnedRequant {
        input_zero_point: INPUT_ZERO_POINT,
        output_zero_point: INPUT_ZERO_POINT,
        activation_min: -128,
        activation_max: 127,
        multipliers: std::vec![1 << 30; c],
        shifts: std::vec![0; c],
        output_scale: 1.0,
    };
    let layers = std::vec![
        OwnedLayer::conv3x3(1, 4, 2, &[1; 36], &[0; 4], rq(4)),
        OwnedLayer::conv3x3(4, 4, 1, &[1; 144], &[0; 4], rq(4)),
        OwnedLayer::global_avg_pool(4, rq(1)),
        OwnedLayer::linear(4, 3, &[1; 12], &[0; 3], rq(3)),
    ];
    let bytes = write_owned(
        ModelInfo {
            input_size: 8,
            preprocess_id: PREPROCESS_ID,
        },
        &layers,
    )
    .unwrap();
    let h = *Blob::parse(&bytes).unwrap().header();
    assert_eq!(h.macs, 16 * 4 * 9 + 16 * 4 * 4 * 9 + 12);
    assert_eq!(
        h.param_bytes,
        (36 + 16 + 16 + 4) + (144 + 16 + 16 + 4) + 5 + (12 + 12 + 12 + 3)
    );
    // scratch: 9 * 4 inputs * 2 bytes = 72; activations: max(64 input, 64 conv) = 64.
    assert_eq!(h.arena_bytes, 3 + 72 + 2 * 64);
    assert_eq!(h.embedding_dim, 3);
    assert_eq!(h.layer_count, 4);
}

#[test]
fn bad_magic_is_reported_first() {
    let mut bytes = sample_blob();
    bytes[0] = b'X';
    assert_eq!(Blob::parse(&bytes).unwrap_err(), BlobError::BadMagic);
    assert_eq!(Blob::parse(b"PK\x03\x04").unwrap_err(), BlobError::BadMagic);
    assert_eq!(
        Blob::parse(&[]).unwrap_err(),
        BlobError::Truncated {
            needed: HEADER_LEN,
            available: 0
        }
    );
}

#[test]
fn unsupported_version_names_found_and_supported() {
    let mut bytes = sample_blob();
    bytes[8..10].copy_from_slice(&7u16.to_le_bytes());
    assert_eq!(
        Blob::parse(&bytes).unwrap_err(),
        BlobError::UnsupportedVersion {
            found: 7,
            supported: FORMAT_VERSION
        }
    );
}

#[test]
fn wrong_header_length_is_rejected() {
    let mut bytes = sample_blob();
    bytes[10..12].copy_from_slice(&80u16.to_le_bytes());
    assert_eq!(
        Blob::parse(&bytes).unwrap_err(),
        BlobError::BadHeaderLength {
            found: 80,
            expected: 64
        }
    );
}

#[test]
fn header_bit_flip_fails_the_header_crc() {
    let mut bytes = sample_blob();
    bytes[28] ^= 0x01; // arena_bytes
    assert!(matches!(
        Blob::parse(&bytes).unwrap_err(),
        BlobError::HeaderChecksumMismatch { .. }
    ));
}

#[test]
fn payload_bit_flip_fails_the_payload_crc() {
    let mut bytes = sample_blob();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    assert!(matches!(
        Blob::parse(&bytes).unwrap_err(),
        BlobError::ChecksumMismatch { .. }
    ));
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample_blob();
    for len in 0..bytes.len() {
        let err = Blob::parse(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, BlobError::Truncated { .. }),
            "len {len}: {err:?}"
        );
    }
}

#[test]
fn bytes_after_the_blob_are_ignored() {
    let mut bytes = sample_blob();
    let len = bytes.len();
    bytes.extend_from_slice(&[0xFF; 100]); // erased flash after the blob
    assert_eq!(Blob::parse(&bytes).unwrap().header().total_len(), len);
}

#[test]
fn trailing_payload_bytes_are_rejected() {
    let mut bytes = sample_blob();
    bytes.push(0);
    let payload_len = (bytes.len() - HEADER_LEN) as u32;
    bytes[12..16].copy_from_slice(&payload_len.to_le_bytes());
    fix_crcs(&mut bytes);
    assert_eq!(
        Blob::parse(&bytes).unwrap_err(),
        BlobError::TrailingPayload { count: 1 }
    );
}

#[test]
fn understated_arena_is_rejected() {
    let mut bytes = sample_blob();
    bytes[28..32].copy_from_slice(&10u32.to_le_bytes());
    fix_crcs(&mut bytes);
    assert!(matches!(
        Blob::parse(&bytes).unwrap_err(),
        BlobError::InvalidHeader { .. }
    ));
}

#[test]
fn invalid_layers_name_index_and_reason() {
    let rq = |c: usize| OwnedRequant {
        input_zero_point: INPUT_ZERO_POINT,
        output_zero_point: INPUT_ZERO_POINT,
        activation_min: 0,
        activation_max: 127,
        multipliers: std::vec![1 << 30; c],
        shifts: std::vec![-1; c],
        output_scale: 1.0,
    };
    let info = ModelInfo {
        input_size: 4,
        preprocess_id: PREPROCESS_ID,
    };
    let conv = |cin, cout, stride, w: i8| {
        OwnedLayer::conv3x3(
            cin,
            cout,
            stride,
            &std::vec![w; (cin * cout * 9) as usize],
            &std::vec![0; cout as usize],
            rq(cout as usize),
        )
    };
    let cases: [(Vec<OwnedLayer>, usize, &str); 4] = [
        (std::vec![conv(1, 2, 3, 1)], 0, "stride must be 1 or 2"),
        (
            std::vec![conv(1, 2, 1, 1), conv(3, 2, 1, 1)],
            1,
            "in_channels differs from the previous layer",
        ),
        (
            std::vec![conv(1, 2, 1, -128)],
            0,
            "weight -128 (weights are symmetric, [-127, 127])",
        ),
        (
            std::vec![conv(1, 2, 2, 1), OwnedLayer::global_avg_pool(2, rq(2))],
            1,
            "multiplier count does not match channels",
        ),
    ];
    for (layers, index, reason) in cases {
        assert_eq!(
            write_owned(info, &layers).unwrap_err(),
            BlobError::InvalidLayer { index, reason }
        );
    }
}

#[test]
fn a_layer_record_that_does_not_decode_is_an_invalid_layer() {
    let mut bytes = sample_blob();
    bytes[HEADER_LEN] = 0x7f; // enum tag 127: no such layer kind
    fix_crcs(&mut bytes);
    assert_eq!(
        Blob::parse(&bytes).unwrap_err(),
        BlobError::InvalidLayer {
            index: 0,
            reason: "record does not decode"
        }
    );
}

/// Sets the header's `output_scale` bits and recomputes both CRCs.
fn with_header_scale(bits: u32) -> Vec<u8> {
    let mut bytes = sample_blob();
    bytes[44..48].copy_from_slice(&bits.to_le_bytes());
    fix_crcs(&mut bytes);
    bytes
}

#[test]
fn checksummed_but_non_finite_or_non_positive_header_scales_are_rejected() {
    for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, -1.5] {
        let err = Blob::parse(&with_header_scale(value.to_bits())).unwrap_err();
        assert_eq!(
            err,
            BlobError::BadScale {
                layer: None,
                bits: value.to_bits()
            }
        );
        let text = std::format!("{err}");
        assert!(text.contains("output_scale"), "{text}");
        assert!(text.contains("not a finite positive number"), "{text}");
        // The header alone already refuses it (the engine parses the header first).
        assert!(Header::parse(&with_header_scale(value.to_bits())).is_err());
    }
    // A finite positive scale that is not the last layer's is inconsistent.
    assert_eq!(
        Blob::parse(&with_header_scale(123.0f32.to_bits())).unwrap_err(),
        BlobError::InvalidHeader {
            reason: "output_scale differs from the last layer's"
        }
    );
}

#[test]
fn non_finite_layer_scales_are_rejected_by_parser_and_writer() {
    let (info, mut layers) = random_model(7);
    let last = layers.len() - 1;
    let mut rq = layers[last].requant_values().clone();
    rq.output_scale = f32::NAN;
    // Rebuild the last layer with the bad scale through the public builders.
    layers[last] = match layers[last].layer() {
        Layer::Conv3x3(conv) => OwnedLayer::conv3x3(
            conv.in_channels,
            conv.out_channels,
            conv.stride,
            &conv.weights.iter().collect::<Vec<i8>>(),
            &conv.bias.iter().collect::<Vec<i32>>(),
            rq,
        ),
        Layer::GlobalAvgPool(pool) => OwnedLayer::global_avg_pool(pool.channels, rq),
        Layer::Linear(lin) => OwnedLayer::linear(
            lin.in_features,
            lin.out_features,
            &lin.weights.iter().collect::<Vec<i8>>(),
            &lin.bias.iter().collect::<Vec<i32>>(),
            rq,
        ),
    };
    assert_eq!(
        write_owned(info, &layers).unwrap_err(),
        BlobError::BadScale {
            layer: Some(last),
            bits: f32::NAN.to_bits()
        }
    );
}

#[test]
fn a_layer_scale_patched_to_nan_with_fresh_crcs_is_rejected() {
    // A one-layer model whose only record ends with the scale's 4 bytes.
    let rq = OwnedRequant {
        input_zero_point: INPUT_ZERO_POINT,
        output_zero_point: 0,
        activation_min: -128,
        activation_max: 127,
        multipliers: std::vec![1 << 30],
        shifts: std::vec![-3],
        output_scale: 0.25,
    };
    let info = ModelInfo {
        input_size: 4,
        preprocess_id: PREPROCESS_ID,
    };
    let mut bytes = write_owned(info, &[OwnedLayer::global_avg_pool(1, rq)]).unwrap();
    let at = bytes.len() - 4;
    assert_eq!(bytes[at..], 0.25f32.to_le_bytes());
    bytes[at..].copy_from_slice(&f32::NAN.to_le_bytes());
    bytes[44..48].copy_from_slice(&f32::NAN.to_le_bytes());
    fix_crcs(&mut bytes);
    // The header's NaN is caught first; with a sane header the layer's is.
    assert_eq!(
        Blob::parse(&bytes).unwrap_err(),
        BlobError::BadScale {
            layer: None,
            bits: f32::NAN.to_bits()
        }
    );
    bytes[44..48].copy_from_slice(&0.25f32.to_le_bytes());
    fix_crcs(&mut bytes);
    assert_eq!(
        Blob::parse(&bytes).unwrap_err(),
        BlobError::BadScale {
            layer: Some(0),
            bits: f32::NAN.to_bits()
        }
    );
}

#[test]
fn checksummed_but_inconsistent_header_fields_are_rejected() {
    let patch = |at: usize, value: &[u8]| {
        let mut bytes = sample_blob();
        bytes[at..at + value.len()].copy_from_slice(value);
        fix_crcs(&mut bytes);
        Blob::parse(&bytes).unwrap_err()
    };
    let h = *Blob::parse(&sample_blob()).unwrap().header();
    let reason = |err: BlobError| match err {
        BlobError::InvalidHeader { reason } => reason,
        other => panic!("expected an invalid header, got {other:?}"),
    };
    assert_eq!(reason(patch(43, &[1])), "reserved bytes are not zero");
    assert_eq!(reason(patch(55, &[9])), "reserved bytes are not zero");
    assert_eq!(
        reason(patch(28, &(h.arena_bytes + 1).to_le_bytes())),
        "arena_bytes differs from what the layers need"
    );
    assert_eq!(
        reason(patch(28, &u32::MAX.to_le_bytes())),
        "arena_bytes differs from what the layers need"
    );
    assert_eq!(
        reason(patch(42, &[h.output_zero_point.wrapping_add(1) as u8])),
        "output_zero_point differs from the last layer's"
    );
    assert_eq!(
        reason(patch(24, &(h.embedding_dim + 1).to_le_bytes())),
        "embedding_dim differs from the last layer's output"
    );
    assert_eq!(
        reason(patch(32, &(h.macs + 1).to_le_bytes())),
        "macs differs from the layers"
    );
    assert_eq!(
        reason(patch(36, &(h.param_bytes - 1).to_le_bytes())),
        "param_bytes differs from the layers"
    );
    // More layers than payload bytes can hold.
    let mut bytes = sample_blob();
    let payload_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap());
    bytes[26..28].copy_from_slice(&(payload_len as u16 + 1).to_le_bytes());
    fix_crcs(&mut bytes);
    assert_eq!(
        reason(Blob::parse(&bytes).unwrap_err()),
        "payload_len is shorter than one byte per layer"
    );
}

#[test]
fn a_zero_point_that_does_not_chain_is_rejected() {
    let rq = |input_zero_point: i8, output_zero_point: i8| OwnedRequant {
        input_zero_point,
        output_zero_point,
        activation_min: -128,
        activation_max: 127,
        multipliers: std::vec![1 << 30],
        shifts: std::vec![-3],
        output_scale: 0.5,
    };
    let info = ModelInfo {
        input_size: 4,
        preprocess_id: PREPROCESS_ID,
    };
    let conv = |zp_in, zp_out| OwnedLayer::conv3x3(1, 1, 1, &[1; 9], &[0], rq(zp_in, zp_out));
    let expect = |index| BlobError::InvalidLayer {
        index,
        reason: "input_zero_point differs from the previous layer's output_zero_point",
    };
    assert_eq!(
        write_owned(info, &[conv(0, 0)]).unwrap_err(),
        expect(0),
        "the first layer reads the input zero point"
    );
    assert_eq!(
        write_owned(info, &[conv(-128, 5), conv(4, 0)]).unwrap_err(),
        expect(1)
    );
    let good = write_owned(info, &[conv(-128, 5), conv(5, 0)]).unwrap();
    Blob::parse(&good).unwrap();
    // The same mismatch with fresh CRCs is refused by the parser. The second
    // record's requantization starts with its zero points (5, 0), the last
    // such pair in the payload.
    let mut bad = good.clone();
    let second = bad[HEADER_LEN..]
        .windows(2)
        .rposition(|w| w == [5u8, 0u8])
        .map(|p| p + HEADER_LEN)
        .unwrap();
    bad[second] = 4;
    fix_crcs(&mut bad);
    assert_eq!(Blob::parse(&bad).unwrap_err(), expect(1));
}

#[test]
fn the_committed_model_still_parses() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/seaclr-s.seaclr"
    ))
    .unwrap();
    Blob::parse(&bytes).unwrap();
}

proptest! {
    #[test]
    fn random_models_round_trip(seed in any::<u64>()) {
        let (info, layers) = random_model(seed);
        let bytes = write_owned(info, &layers).unwrap();
        let blob = Blob::parse(&bytes).unwrap();
        let parsed: Vec<Layer<'_>> = blob.layers().collect();
        let expected: Vec<Layer<'_>> = layers.iter().map(OwnedLayer::layer).collect();
        prop_assert_eq!(parsed, expected);
        prop_assert_eq!(blob.header().input_size, info.input_size);
    }

    #[test]
    fn mutated_blobs_never_panic(seed in any::<u64>(), edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), fix in any::<bool>(), cut in any::<usize>()) {
        let (info, layers) = random_model(seed);
        let mut bytes = write_owned(info, &layers).unwrap();
        for (at, value) in edits {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        if fix {
            fix_crcs(&mut bytes);
        }
        let len = bytes.len() - cut % 4;
        if let Ok(blob) = Blob::parse(&bytes[..len]) {
            // A mutation that still parses must still be self-consistent.
            let count = blob.layers().count();
            prop_assert_eq!(count, blob.header().layer_count as usize);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), magic in any::<bool>()) {
        let mut bytes = bytes;
        if magic && bytes.len() >= 64 {
            bytes[..8].copy_from_slice(&MAGIC);
            bytes[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
            bytes[10..12].copy_from_slice(&64u16.to_le_bytes());
            fix_crcs(&mut bytes);
        }
        let _ = Blob::parse(&bytes);
    }
}
