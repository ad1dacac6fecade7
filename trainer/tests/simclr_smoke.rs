//! End-to-end smoke test of `seaclr train` on the FlowCam demo images:
//! 20 steps of batch 16 through the real CLI, then the run is read back
//! through the public loaders (float export, embedder).

use std::path::{Path, PathBuf};
use std::process::Command;

use seaclr_trainer::embedder::Embedder;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"))
}

#[test]
fn twenty_step_training_on_flowcam_demo() {
    let demo = data_dir().join("flowcam-demo");
    assert!(
        demo.is_dir(),
        "{}: test data missing (see shared/data/README.md)",
        demo.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("smoke");
    let output = Command::new(env!("CARGO_BIN_EXE_seaclr"))
        .args(["train", "--no-progress", "--data"])
        .arg(&demo)
        .arg("--config")
        .arg(workspace().join("configs/smoke.toml"))
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "seaclr train failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let steps = std::fs::read_to_string(run.join("steps.csv")).unwrap();
    let rows: Vec<&str> = steps.lines().collect();
    assert_eq!(rows[0], "step,epoch,lr,loss,views_per_s");
    assert_eq!(rows.len(), 21, "{steps}");
    for row in &rows[1..] {
        let loss: f64 = row.split(',').nth(3).unwrap().parse().unwrap();
        assert!(loss.is_finite() && loss > 0.0 && loss < 10.0, "{row}");
    }
    // 105 images / 16 = 6 steps per epoch: 3 epochs ended within 20 steps.
    let epochs = std::fs::read_to_string(run.join("epochs.csv")).unwrap();
    assert_eq!(epochs.lines().count(), 4, "{epochs}");
    assert!(run.join("checkpoints/step-0000020/optimizer.bpk").is_file());
    assert!(run.join("checkpoints/best/model.bpk").is_file());

    // The run folder loads as a float encoder and as an embedder, and both agree.
    let encoder = seaclr_trainer::simclr::load_float_encoder(&run).unwrap();
    assert_eq!(encoder.input_size, 64);
    assert_eq!(encoder.embedding_dim(), 128);
    let embedder = seaclr_trainer::simclr::FloatModelEmbedder::load(&run).unwrap();
    let images: Vec<Vec<u8>> = (0..3usize)
        .map(|k| {
            (0..64 * 64)
                .map(|i| ((i * 7 + k * 31) % 256) as u8)
                .collect()
        })
        .collect();
    let refs: Vec<&[u8]> = images.iter().map(|v| v.as_slice()).collect();
    let embedded = embedder.embed(&refs).unwrap();
    for (im, e) in images.iter().zip(&embedded) {
        let r = encoder.forward(im);
        let diff = r
            .iter()
            .zip(e)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            diff < 1e-3,
            "float export and burn embedder differ by {diff}"
        );
    }

    // Resuming a finished run is accepted and does nothing more.
    let again = Command::new(env!("CARGO_BIN_EXE_seaclr"))
        .args(["train", "--no-progress", "--resume", "--data"])
        .arg(&demo)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(run.join("steps.csv"))
            .unwrap()
            .lines()
            .count(),
        21
    );
}

#[test]
fn bad_paths_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let err = seaclr_trainer::simclr::load_float_encoder(&tmp.path().join("missing")).unwrap_err();
    assert!(format!("{err:#}").contains("no such file"), "{err:#}");
    let err = seaclr_trainer::simclr::load_float_encoder(tmp.path()).unwrap_err();
    assert!(
        format!("{err:#}").contains("not a SeaCLR checkpoint"),
        "{err:#}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_seaclr"))
        .args(["train", "--data", "/nonexistent/data", "--out"])
        .arg(tmp.path().join("run"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/data"));
}
