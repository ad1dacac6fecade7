//! Host store images from synthetic embeddings (no model needed).

use super::*;

fn synthetic(label: &str, axis: usize, i: usize) -> LabelledEmbedding {
    let mut embedding = vec![0i8; 128];
    embedding[axis] = 100;
    embedding[(axis + 1 + i) % 128] = (10 + i % 50) as i8;
    LabelledEmbedding {
        id: format!("{label}/{i}.png"),
        label: label.to_string(),
        embedding,
    }
}

fn dataset() -> Vec<LabelledEmbedding> {
    let mut v = Vec::new();
    for i in 0..12 {
        v.push(synthetic("diatom", 0, i));
        v.push(synthetic("copepod", 40, i));
    }
    v.extend((0..3).map(|i| synthetic("ciliate", 80, i)));
    v
}

#[test]
fn build_then_mount_lists_classes_and_counts() {
    let (mut image, summary) = build_image(&dataset(), 5).unwrap();
    assert_eq!(image.len(), REGION_SIZE);
    assert_eq!(
        summary.classes,
        [
            ("diatom".to_string(), 5),
            ("copepod".to_string(), 5),
            ("ciliate".to_string(), 3)
        ]
    );
    let m = mount_image(&mut image, Path::new("labels.bin")).unwrap();
    assert_eq!(m.head.len(), 13);
    assert!(!m.report.dirty_tail && !m.report.fell_back);
    let listing = describe(&m);
    assert!(listing.contains("3 classes, 13 examples"), "{listing}");
    assert!(listing.contains("copepod"), "{listing}");
    assert!(listing.contains("unknown threshold: disabled"), "{listing}");
    // The device classifies with what the host stored.
    let query = synthetic("copepod", 40, 30).embedding;
    let class = m.head.classify(&query).unwrap().class.unwrap();
    assert_eq!(m.head.class_name(class), Some("copepod"));
}

#[test]
fn bad_inputs_are_named() {
    let long = LabelledEmbedding {
        label: "x".repeat(40),
        ..synthetic("a", 0, 0)
    };
    let err = build_image(&[long], 1).unwrap_err().to_string();
    assert!(err.contains("40 bytes"), "{err}");
    let mut short = vec![0xFFu8; 100];
    let err = mount_image(&mut short, Path::new("x/labels.bin"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("x/labels.bin") && err.contains("100 bytes"),
        "{err}"
    );
    let mut blank = vec![0xFFu8; REGION_SIZE];
    let err = mount_image(&mut blank, Path::new("blank.bin"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("blank.bin") && err.contains("no valid label store"),
        "{err}"
    );
}

#[test]
fn calibration_hits_the_target_and_is_stored() {
    let data = dataset();
    let (mut image, _) = build_image(&data, 12).unwrap();
    let m = mount_image(&mut image, Path::new("labels.bin")).unwrap();
    let cal = calibrate_threshold(&m.head, &data, 0.25).unwrap();
    // Every stored example is compared with the others of its class.
    assert_eq!((cal.used, cal.skipped), (27, 0));
    assert!(cal.false_unknown <= 0.25);
    // The threshold is one of the observed similarities: raising it by one
    // step would exceed the target.
    let own_best = |ex: &LabelledEmbedding| {
        let class = m.head.find_class(&ex.label).unwrap();
        let n = |v: &[i8]| v.iter().map(|&x| (x as i32).pow(2) as u32).sum::<u32>();
        m.head
            .examples()
            .filter(|(_, c, e)| {
                *c == class && e.iter().map(|&b| b as i8).ne(ex.embedding.iter().copied())
            })
            .map(|(_, _, e)| {
                let v: Vec<i8> = e.iter().map(|&b| b as i8).collect();
                let d: i32 = v
                    .iter()
                    .zip(&ex.embedding)
                    .map(|(&a, &b)| a as i32 * b as i32)
                    .sum();
                cosine_q15(d, n(&ex.embedding), n(&v))
            })
            .max()
            .unwrap()
    };
    let sims: Vec<i32> = data.iter().map(own_best).collect();
    let above = sims.iter().filter(|&&s| s < cal.threshold_q15 + 1).count();
    assert!(above as f64 / sims.len() as f64 > 0.25);
    set_image_threshold(&mut image, Path::new("labels.bin"), cal.threshold_q15).unwrap();
    let m = mount_image(&mut image, Path::new("labels.bin")).unwrap();
    assert_eq!(m.head.threshold_q15(), cal.threshold_q15);
    assert!(describe(&m).contains(&format!("q15 {}", cal.threshold_q15)));
    assert!(calibrate_threshold(&m.head, &data, 1.5).is_err());
}

/// A tiny random int8 model (two strided convs, pool, linear to 128): the
/// pipeline needs a real blob, not a trained one.
fn tiny_blob() -> Vec<u8> {
    use seaclr_shared::blob::write::{ModelInfo, OwnedLayer, OwnedRequant, write_owned};
    let mut rng = seaclr_shared::testing::XorShift64(0x2545_F491_4F6C_DD1D);
    let mut weights =
        |n: usize| -> Vec<i8> { (0..n).map(|_| (rng.next_u64() % 41) as i8 - 20).collect() };
    let requant = |channels: usize, shift: i8, output_zero_point: i8| OwnedRequant {
        input_zero_point: -128,
        output_zero_point,
        activation_min: -128,
        activation_max: 127,
        multipliers: vec![1 << 30; channels],
        shifts: vec![shift; channels],
        output_scale: 0.05,
    };
    let bias: Vec<i32> = (0..128).map(|i| (i - 64) * 40).collect();
    let layers = [
        OwnedLayer::conv3x3(1, 8, 2, &weights(72), &[0; 8], requant(8, -4, -128)),
        OwnedLayer::conv3x3(8, 16, 2, &weights(16 * 72), &[0; 16], requant(16, -6, -128)),
        OwnedLayer::global_avg_pool(16, requant(1, -7, -128)),
        OwnedLayer::linear(16, 128, &weights(16 * 128), &bias, requant(128, -4, 0)),
    ];
    let info = ModelInfo {
        input_size: seaclr_shared::preprocess::DEFAULT_SIZE as u16,
        preprocess_id: seaclr_shared::blob::PREPROCESS_ID,
    };
    write_owned(info, &layers).unwrap()
}

/// End to end on real images: the flowcam-demo fixture (6 classes, 105
/// images) through the int8 engine into an image, inspect, calibrate.
#[test]
fn build_and_calibrate_from_labelled_images() {
    let data = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/flowcam-demo"
    ));
    let dir = std::env::temp_dir().join(format!("seaclr-fewshot-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("tiny.seaclr");
    std::fs::write(&model, tiny_blob()).unwrap();
    let labelled = cli::embed_labelled(&model, data).unwrap();
    assert_eq!(labelled.len(), 105);
    assert!(labelled.iter().all(|e| e.embedding.len() == 128));
    let (mut image, summary) = build_image(&labelled, 5).unwrap();
    assert_eq!(summary.classes.len(), 6);
    assert!(summary.classes.iter().all(|(_, n)| *n <= 5));
    let m = mount_image(&mut image, &dir.join("labels.bin")).unwrap();
    let listing = describe(&m);
    assert!(
        listing.contains("Noctilucales") && listing.contains("6 classes"),
        "{listing}"
    );
    let cal = calibrate_threshold(&m.head, &labelled, 0.05).unwrap();
    assert!(cal.false_unknown <= 0.05);
    assert_eq!(cal.used + cal.skipped, 105);
    let err = cli::embed_labelled(&dir.join("missing.seaclr"), data).unwrap_err();
    assert!(format!("{err:#}").contains("missing.seaclr"));
    std::fs::remove_dir_all(&dir).unwrap();
}
