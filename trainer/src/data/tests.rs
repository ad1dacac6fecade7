//! Loader tests: layouts, bad inputs generated in a temp dir, real data.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use super::*;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data");

fn png(width: u32, height: u32, value: u8) -> Vec<u8> {
    encode(
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(
            width,
            height,
            image::Luma([value]),
        )),
        image::ImageFormat::Png,
    )
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = image::GrayImage::from_fn(width, height, |x, y| {
        image::Luma([((x * 7 + y * 3) % 256) as u8])
    });
    encode(
        image::DynamicImage::ImageLuma8(img),
        image::ImageFormat::Jpeg,
    )
}

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

/// Rewrites the frame size in a baseline JPEG's SOF0 marker, so the header
/// claims `width x height` while the data stays tiny.
fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = jpeg(16, 16);
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline JPEG has SOF0");
    // FF C0, length (2), precision (1), height (2), width (2).
    bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    bytes
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    path
}

fn reason_for<'a>(loaded: &'a Loaded, name: &str) -> &'a str {
    &loaded
        .skipped
        .iter()
        .find(|s| s.path.ends_with(name))
        .unwrap_or_else(|| panic!("{name} not skipped: {:?}", loaded.skipped))
        .reason
}

#[test]
fn class_folders_are_labelled_and_sorted() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b_class/2.png", &png(10, 5, 0));
    write(dir.path(), "b_class/1.png", &png(5, 10, 0));
    write(dir.path(), "a_class/x.jpg", &jpeg(20, 20));
    write(dir.path(), "a_class/notes.txt", b"ignored");
    write(dir.path(), "loose.png", &png(4, 4, 0));
    let loaded = load(dir.path(), 8).unwrap();
    let ids: Vec<(&str, &str)> = loaded
        .records
        .iter()
        .map(|r| {
            (
                r.label.as_deref().unwrap(),
                Path::new(&r.id).file_name().unwrap().to_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            ("a_class", "x.jpg"),
            ("b_class", "1.png"),
            ("b_class", "2.png")
        ]
    );
    assert_eq!((loaded.records[1].width, loaded.records[1].height), (5, 10));
    assert!(loaded.records.iter().all(|r| r.pixels.len() == 64));
    assert!(reason_for(&loaded, "loose.png").contains("outside any class folder"));
    assert_eq!(detect(dir.path()).unwrap(), SourceKind::ClassFolders);
}

#[test]
fn flat_folder_is_unlabelled() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.png", &png(3, 3, 9));
    write(
        dir.path(),
        "b.bmp",
        &encode(
            image::DynamicImage::ImageLuma8(image::GrayImage::new(4, 4)),
            image::ImageFormat::Bmp,
        ),
    );
    let loaded = load(dir.path(), 4).unwrap();
    assert_eq!(loaded.records.len(), 2);
    assert!(loaded.records.iter().all(|r| r.label.is_none()));
    assert_eq!(detect(dir.path()).unwrap(), SourceKind::FlatFolder);
}

#[test]
fn every_bad_input_is_skipped_with_path_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let good = jpeg(30, 20);
    write(dir.path(), "c/good.jpg", &good);
    write(dir.path(), "c/empty.jpg", b"");
    write(dir.path(), "c/truncated.jpg", &good[..good.len() / 2]);
    write(dir.path(), "c/text.jpg", b"this is not an image at all\n");
    write(dir.path(), "c/tiny.png", &png(1, 1, 0));
    write(dir.path(), "c/bomb.jpg", &jpeg_claiming(20000, 20000));
    let loaded = load(dir.path(), 16).unwrap();
    assert_eq!(loaded.records.len(), 1, "{:?}", loaded.skipped);
    assert!(loaded.records[0].id.ends_with("good.jpg"));
    assert_eq!(loaded.skipped.len(), 5, "{:?}", loaded.skipped);
    assert!(reason_for(&loaded, "empty.jpg").contains("empty file"));
    assert!(reason_for(&loaded, "text.jpg").contains("not a recognised image format"));
    assert!(reason_for(&loaded, "tiny.png").contains("too small"));
    let bomb = reason_for(&loaded, "bomb.jpg");
    assert!(bomb.contains("limit") || bomb.contains("large"), "{bomb}");
    assert!(!reason_for(&loaded, "truncated.jpg").is_empty());
}

#[test]
fn ifcb_row_past_end_of_roi_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let row = |w: u32, h: u32, s: u32| format!("1,0,0,0,0,0,0,0,0,0,0,{w},{h},{s},0,\n");
    fs::write(dir.path().join("b.adc"), row(4, 3, 1) + &row(8, 8, 13)).unwrap();
    fs::write(dir.path().join("b.roi"), vec![0u8; 20]).unwrap();
    let loaded = load(dir.path(), 8).unwrap();
    assert_eq!(loaded.records.len(), 1);
    assert_eq!(loaded.records[0].id, "b.roi#1");
    assert_eq!(loaded.skipped.len(), 1);
    assert!(loaded.skipped[0].path.ends_with("b.roi#2"));
    assert!(loaded.skipped[0].reason.contains("past the end"));
}

#[test]
fn a_non_utf8_adc_row_is_skipped_alone() {
    let dir = tempfile::tempdir().unwrap();
    let row = |w: u32, h: u32, s: u32| format!("1,0,0,0,0,0,0,0,0,0,0,{w},{h},{s},0,\n");
    let mut adc = row(4, 3, 1).into_bytes();
    adc.extend_from_slice(b"\xff\xfe garbage\n");
    adc.extend_from_slice(row(2, 2, 13).as_bytes());
    fs::write(dir.path().join("b.adc"), adc).unwrap();
    fs::write(dir.path().join("b.roi"), vec![0u8; 20]).unwrap();
    let loaded = load(dir.path(), 8).unwrap();
    assert_eq!(loaded.records.len(), 2, "{:?}", loaded.skipped);
    assert_eq!(loaded.skipped.len(), 1, "{:?}", loaded.skipped);
    assert!(loaded.skipped[0].path.ends_with("b.roi#2"));
}

#[test]
fn missing_path_is_an_error() {
    let err = format!(
        "{:#}",
        load(Path::new("/definitely/not/here"), 8).unwrap_err()
    );
    assert!(err.contains("/definitely/not/here"), "{err}");
}

#[test]
fn manifest_paths_are_relative_to_the_csv() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "imgs/a.png", &png(6, 6, 1));
    write(dir.path(), "imgs/b.png", &png(6, 6, 2));
    let csv = write(
        dir.path(),
        "list.csv",
        b"path,label\nimgs/b.png,beta\nimgs/a.png,\nimgs/missing.png,x\n",
    );
    let loaded = load(&csv, 4).unwrap();
    assert_eq!(loaded.records.len(), 2);
    assert_eq!(loaded.records[0].label.as_deref(), Some("beta"));
    assert_eq!(loaded.records[1].label, None);
    assert!(reason_for(&loaded, "missing.png").contains("cannot read"));
}

#[test]
fn load_split_selects_group_and_subset() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a/1.png", "a/2.png", "b/1.png"] {
        write(dir.path(), name, &png(5, 5, 0));
    }
    let csv = write(
        dir.path(),
        "split.csv",
        b"path,label,group,subset\na/1.png,a,seen,train\na/2.png,a,seen,test\nb/1.png,b,unseen,train\n",
    );
    let seen_train = load_split(dir.path(), &csv, Group::Seen, Some(Subset::Train), 4).unwrap();
    assert_eq!(seen_train.records.len(), 1);
    assert!(seen_train.records[0].id.ends_with("a/1.png"));
    let seen = load_split(dir.path(), &csv, Group::Seen, None, 4).unwrap();
    assert_eq!(seen.records.len(), 2);
    let unseen = load_split(dir.path(), &csv, Group::Unseen, None, 4).unwrap();
    assert_eq!(unseen.labels(), vec!["b".to_string()]);
}

#[test]
fn chunks_stream_everything_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..7 {
        write(dir.path(), &format!("img{i}.png"), &png(4, 4, i * 10));
    }
    write(dir.path(), "zz_bad.png", b"nope");
    let catalog = scan(dir.path()).unwrap();
    let mut sizes = Vec::new();
    let mut firsts = Vec::new();
    let mut skipped = 0;
    catalog
        .for_each_chunk(4, 3, |chunk| {
            sizes.push(chunk.records.len() + chunk.skipped.len());
            firsts.extend(chunk.records.iter().map(|r| r.pixels[0]));
            skipped += chunk.skipped.len();
            Ok(())
        })
        .unwrap();
    assert_eq!(sizes, vec![3, 3, 2]);
    assert_eq!(firsts, vec![0, 10, 20, 30, 40, 50, 60]);
    assert_eq!(skipped, 1);
}

#[test]
fn real_ifcb_bins_give_25_images_of_adc_sizes() {
    let loaded = load(&Path::new(DATA).join("ifcb"), 32).unwrap();
    assert_eq!(loaded.records.len(), 25, "{:?}", loaded.skipped);
    assert!(loaded.skipped.is_empty());
    let old: Vec<(u32, u32)> = loaded
        .records
        .iter()
        .filter(|r| r.id.starts_with("IFCB5"))
        .map(|r| (r.width, r.height))
        .collect();
    assert_eq!(
        old,
        vec![
            (96, 45),
            (238, 137),
            (180, 86),
            (113, 45),
            (105, 45),
            (197, 45)
        ]
    );
    assert_eq!(
        loaded
            .records
            .iter()
            .filter(|r| r.id.starts_with("D2013"))
            .count(),
        19
    );
    // Single-bin loading by any of its files.
    let one = load(&Path::new(DATA).join("ifcb/IFCB5_2012_028_081515.roi"), 8).unwrap();
    assert_eq!(one.records.len(), 6);
}

#[test]
fn real_flowcam_demo_loads_six_classes() {
    let loaded = load(&Path::new(DATA).join("flowcam-demo"), 16).unwrap();
    assert_eq!(loaded.records.len(), 105, "{:?}", loaded.skipped);
    assert_eq!(loaded.labels().len(), 6);
}

#[test]
fn host_preprocessing_equals_no_std_on_real_images() {
    // Host path: image crate decode -> to_luma8 -> shared preprocess_gray.
    // Device path: the same gray bytes handed to preprocess_gray directly,
    // as a camera would. Must be byte-identical, RGB FlowCam images included.
    let mut files: Vec<PathBuf> = Vec::new();
    for class in [
        "flowcam-demo/Ciliophora",
        "flowcam-demo/Tripos",
        "planktonset/train/copepod_calanoid",
    ] {
        let mut class_files: Vec<PathBuf> = fs::read_dir(Path::new(DATA).join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        class_files.sort();
        files.extend(class_files.into_iter().take(5));
    }
    let mut saw_rgb = false;
    for file in files {
        let bytes = fs::read(&file).unwrap();
        let dynamic = image::load_from_memory(&bytes).unwrap();
        saw_rgb |= dynamic.color().has_color();
        let gray = dynamic.to_luma8();
        for size in [seaclr_shared::preprocess::DEFAULT_SIZE, 28] {
            let mut device = vec![0u8; size * size];
            seaclr_shared::preprocess::preprocess_gray(
                gray.as_raw(),
                gray.width() as usize,
                gray.height() as usize,
                size,
                &mut device,
            )
            .unwrap();
            let host = Item {
                id: String::new(),
                label: None,
                source: ItemSource::File(file.clone()),
            }
            .load(size)
            .unwrap();
            assert_eq!(host.pixels, device, "{}", file.display());
            assert_eq!((host.width, host.height), gray.dimensions());
        }
    }
    assert!(saw_rgb, "the sample should include RGB FlowCam images");
}

/// The acceptance numbers on the full data (decodes ~27k images:
/// run with `cargo test -p seaclr-trainer -- --ignored real_data_counts`).
#[test]
#[ignore]
fn real_data_counts() {
    let start = std::time::Instant::now();
    let plankton = stats::compute(&Path::new(DATA).join("planktonset/train")).unwrap();
    eprintln!("planktonset: {} s", start.elapsed().as_secs_f64());
    assert_eq!(
        (plankton.images, plankton.classes(), plankton.errors.len()),
        (26990, 107, 0)
    );
    let flowcam = stats::compute(&Path::new(DATA).join("flowcam-demo")).unwrap();
    assert_eq!(
        (flowcam.images, flowcam.classes(), flowcam.errors.len()),
        (105, 6, 0)
    );
    let ifcb = stats::compute(&Path::new(DATA).join("ifcb")).unwrap();
    assert_eq!((ifcb.images, ifcb.errors.len()), (25, 0));
    eprintln!("{}", plankton.to_json());
}

/// The committed default split (`splits/planktonset.csv`) is exactly what
/// `seaclr data split` produces with the documented arguments. Run with
/// `cargo test -p seaclr-trainer -- --ignored default_split_is_reproducible`.
#[test]
#[ignore]
fn default_split_is_reproducible() {
    let root = Path::new(DATA).join("planktonset/train");
    let options = split::SplitOptions {
        unseen: split::UnseenChoice::Count(15),
        seed: 42,
        min_unseen_images: 100,
        exclude_unseen: ["*_other", "artifacts*", "detritus*", "unknown*"]
            .map(String::from)
            .to_vec(),
        val: 0.1,
        test: 0.2,
    };
    let made = split::make_split(&scan(&root).unwrap(), &root, &options).unwrap();
    assert_eq!(made.unseen.len(), 15);
    for class in &made.unseen {
        let n = made
            .rows
            .iter()
            .filter(|r| r.label.as_ref() == Some(class))
            .count();
        assert!(n >= 100, "{class}: {n}");
        assert!(!class.ends_with("_other") && !class.starts_with("artifacts"));
        assert!(!class.starts_with("detritus") && !class.starts_with("unknown"));
    }
    let csv = made.to_csv().unwrap();
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../splits/planktonset.csv");
    if std::env::var_os("SEACLR_WRITE_DEFAULT_SPLIT").is_some() {
        fs::create_dir_all(committed.parent().unwrap()).unwrap();
        fs::write(&committed, &csv).unwrap();
    }
    assert_eq!(
        fs::read(&committed).unwrap(),
        csv,
        "splits/planktonset.csv is stale"
    );
    eprintln!("unseen: {}", made.unseen.join(","));
}

/// `mkfifo PATH`; false where the tool is missing.
#[cfg(unix)]
fn mkfifo(path: &Path) -> bool {
    std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `f` on another thread and fails the test if it has not returned
/// within 30 s (a FIFO opened for reading blocks forever).
fn within_30_s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .expect("hung (a FIFO was opened?)")
}

#[cfg(unix)]
#[test]
fn a_fifo_named_like_an_image_is_skipped_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "copepod/a.png", &png(8, 8, 0));
    write(dir.path(), "copepod/b.png", &png(8, 8, 9));
    if !mkfifo(&dir.path().join("copepod/x.jpg")) {
        eprintln!("mkfifo not available; skipping");
        return;
    }
    let root = dir.path().to_path_buf();
    let stats = within_30_s(move || stats::compute(&root).unwrap());
    assert_eq!(stats.images, 2);
    assert_eq!(stats.errors.len(), 1, "{:?}", stats.errors);
    assert!(stats.errors[0].path.ends_with("copepod/x.jpg"));
    assert!(
        stats.errors[0].reason.contains("FIFO"),
        "{:?}",
        stats.errors
    );
    // A FIFO given as the data path is refused without being opened.
    let fifo = dir.path().join("copepod/x.jpg");
    let err = within_30_s(move || format!("{:#}", scan(&fifo).unwrap_err()));
    assert!(err.contains("not a regular file"), "{err}");
    // A manifest naming the FIFO: skipped at load time, not opened.
    write(
        dir.path(),
        "list.csv",
        b"path,label\ncopepod/x.jpg,c\ncopepod/a.png,c\n",
    );
    let csv = dir.path().join("list.csv");
    let loaded = within_30_s(move || load(&csv, 8).unwrap());
    assert_eq!(loaded.records.len(), 1);
    assert!(reason_for(&loaded, "x.jpg").contains("FIFO"));
}

#[cfg(unix)]
#[test]
fn symlink_loops_in_class_folders_are_skipped_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "classA/1.png", &png(8, 8, 0));
    write(dir.path(), "classB/2.png", &png(8, 8, 0));
    std::os::unix::fs::symlink(".", dir.path().join("classB/dirloop")).unwrap();
    std::os::unix::fs::symlink("..", dir.path().join("classB/uploop")).unwrap();
    let loaded = load(dir.path(), 8).unwrap();
    assert_eq!(loaded.records.len(), 2);
    assert_eq!(loaded.labels(), ["classA", "classB"]);
    // The links lie at the class-folder layout's depth limit: reported as
    // loops (the issue's `ln -s . DIR/classB/dirloop`), never walked.
    assert_eq!(loaded.skipped.len(), 2, "{:?}", loaded.skipped);
    assert!(reason_for(&loaded, "dirloop").contains("symbolic link loop"));
    assert!(reason_for(&loaded, "uploop").contains("symbolic link loop"));
    // A link at class level back to the root is a loop, reported.
    std::os::unix::fs::symlink(".", dir.path().join("rootloop")).unwrap();
    let loaded = load(dir.path(), 8).unwrap();
    assert_eq!(loaded.records.len(), 2);
    assert!(reason_for(&loaded, "rootloop").contains("symbolic link loop"));
}

#[cfg(unix)]
#[test]
fn an_unreadable_subfolder_is_skipped_and_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a/1.png", &png(8, 8, 0));
    write(dir.path(), "b/2.png", &png(8, 8, 0));
    let locked = dir.path().join("a");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let readable_anyway = fs::read_dir(&locked).is_ok(); // the super-user
    let stats = stats::compute(dir.path());
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    let stats = stats.unwrap(); // never fatal
    if readable_anyway {
        // (The walker's own test injects the failure for the super-user.)
        assert_eq!(stats.images, 2);
    } else {
        assert_eq!(stats.images, 1);
        assert!(stats.errors[0].reason.contains("cannot list folder"));
    }
}

#[cfg(unix)]
#[test]
fn non_utf8_names_keep_their_bytes_through_ids_splits_and_manifests() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let a = root.join("cop\\epod").join(OsStr::from_bytes(b"x\xff.png"));
    let b = root.join("cop\\epod").join(OsStr::from_bytes(b"x\xfe.png"));
    let c = root.join(OsStr::from_bytes(b"diat\xe9")).join("y.png");
    fs::create_dir_all(a.parent().unwrap()).unwrap();
    if fs::write(&a, png(8, 8, 0)).is_err() {
        eprintln!("this file system refuses non-UTF-8 names; skipping");
        return;
    }
    fs::write(&b, png(8, 8, 50)).unwrap();
    fs::create_dir_all(c.parent().unwrap()).unwrap();
    fs::write(&c, png(8, 8, 99)).unwrap();
    let catalog = scan(&root).unwrap();
    let ids: Vec<&str> = catalog.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids.len(), 3);
    // Two names that differ only in an invalid byte stay two ids.
    assert!(ids[0].ends_with("cop\\\\epod/x\\xfe.png"), "{ids:?}");
    assert!(ids[1].ends_with("cop\\\\epod/x\\xff.png"), "{ids:?}");
    assert_eq!(catalog.labels(), ["cop\\\\epod", "diat\\xe9"]);
    // The split's CSV names them losslessly, and loading it reads them all.
    let split = split::make_split(
        &catalog,
        &root,
        &split::SplitOptions {
            unseen: split::UnseenChoice::Named(vec!["diat\\xe9".into()]),
            seed: 1,
            min_unseen_images: 0,
            exclude_unseen: vec![],
            val: 0.0,
            test: 0.0,
        },
    )
    .unwrap();
    let csv = dir.path().join("split.csv");
    fs::write(&csv, split.to_csv().unwrap()).unwrap();
    let text = fs::read_to_string(&csv).unwrap();
    assert!(
        text.contains("cop\\\\epod/x\\xff.png,cop\\\\epod,seen"),
        "{text}"
    );
    let seen = load_split(&root, &csv, Group::Seen, None, 8).unwrap();
    assert!(seen.skipped.is_empty(), "{:?}", seen.skipped);
    assert_eq!(seen.records.len(), 2);
    assert_ne!(seen.records[0].pixels, seen.records[1].pixels);
    let unseen = load_split(&root, &csv, Group::Unseen, None, 8).unwrap();
    assert_eq!(unseen.records.len(), 1);
    assert_eq!(unseen.records[0].label.as_deref(), Some("diat\\xe9"));
    match &scan_split(&root, &csv, Group::Unseen, None).unwrap().items[0].source {
        ItemSource::File(p) => assert_eq!(p, &c),
        other => panic!("{other:?}"),
    }
}
