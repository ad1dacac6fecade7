//! The interop commands through the `seaclr` binary: `model export`,
//! `ecotaxa import|export` and `embed --format npy`, with `--json`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seaclr"))
        .args(args)
        .output()
        .unwrap()
}

/// stdout is exactly one JSON object.
fn json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
    assert!(value.is_object(), "{stdout}");
    value
}

#[test]
fn interop_commands_run_with_json() {
    let (blob, ckpt) = (
        root().join("models/seaclr-s.seaclr"),
        root().join("models/seaclr-s"),
    );
    let flowcam = root().join("../shared/data/flowcam-demo");
    if !blob.is_file() || !flowcam.is_dir() {
        eprintln!("skipped: committed model or FlowCam demo data missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (blob, ckpt, flowcam) = (
        blob.to_string_lossy().into_owned(),
        ckpt.to_string_lossy().into_owned(),
        flowcam.to_string_lossy().into_owned(),
    );

    let v = json(&run(&[
        "model",
        "export",
        "--model",
        &blob,
        "--out",
        &p("m.onnx"),
        "--float",
        &ckpt,
        "--json",
    ]));
    assert_eq!(v["files"][0]["kind"], "int8-qdq");
    assert_eq!(v["files"][1]["kind"], "float");
    assert!(Path::new(&p("m.float.onnx")).is_file());

    let v = json(&run(&[
        "embed",
        "--model",
        &blob,
        "--data",
        &flowcam,
        "--out",
        &p("e.npy"),
        "--format",
        "npy",
        "--dtype",
        "i8",
        "--json",
    ]));
    assert_eq!(v["dtype"], "|i1");
    assert_eq!(v["shape"][1], 128);
    assert!(Path::new(&p("e.ids.csv")).is_file());
    let out = run(&[
        "embed",
        "--model",
        &blob,
        "--data",
        &flowcam,
        "--out",
        &p("e.csv"),
        "--dtype",
        "i8",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "--dtype without --format npy is refused"
    );

    // A folder -> EcoTaxa TSV with the evaluation's kNN, then that TSV's
    // predictions back in as labels (any status) -> a manifest.
    let tsv = p("ecotaxa_flowcam.tsv");
    let v = json(&run(&[
        "ecotaxa",
        "export",
        "--model",
        &blob,
        "--data",
        &flowcam,
        "--train",
        &flowcam,
        "--classifier",
        "knn",
        "--out",
        &tsv,
        "--embeddings",
        "--json",
    ]));
    let n = v["objects"].as_u64().unwrap();
    assert_eq!(v["predicted"].as_u64(), Some(n));
    assert_eq!(v["features"], 128);
    let v = json(&run(&[
        "ecotaxa",
        "import",
        "--tsv",
        &tsv,
        "--status",
        "any",
        "--manifest",
        &p("m.csv"),
        "--json",
    ]));
    assert_eq!(v["labelled"].as_u64(), Some(n));
    // By default only validated rows are labels; predictions are not.
    let out = run(&[
        "ecotaxa",
        "import",
        "--tsv",
        &tsv,
        "--manifest",
        &p("m2.csv"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused by the status filter"), "{err}");
}
