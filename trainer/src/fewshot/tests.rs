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
    assert!(err.contains("x/labels.bin") && err.contains("100 bytes"), "{err}");
    let mut blank = vec![0xFFu8; REGION_SIZE];
    let err = mount_image(&mut blank, Path::new("blank.bin"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("blank.bin") && err.contains("no valid label store"), "{err}");
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
            .filter(|(_, c, e)| *c == class && e.iter().map(|&b| b as i8).ne(ex.embedding.iter().copied()))
            .map(|(_, _, e)| {
                let v: Vec<i8> = e.iter().map(|&b| b as i8).collect();
                let d: i32 = v.iter().zip(&ex.embedding).map(|(&a, &b)| a as i32 * b as i32).sum();
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
