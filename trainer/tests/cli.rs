//! The `seaclr` command line: layout, flag conventions, old spellings,
//! `--json`, log levels and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn seaclr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seaclr"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn blob() -> PathBuf {
    root().join("models/seaclr-s.seaclr")
}

fn flowcam() -> PathBuf {
    root().join("../shared/data/flowcam-demo")
}

fn run(args: &[&str]) -> Output {
    seaclr().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// stdout is exactly one JSON object.
fn json(out: &Output) -> serde_json::Value {
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
    assert!(value.is_object(), "{stdout}");
    value
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn help_lists_groups_exit_codes_and_hides_old_spellings() {
    let out = run(&["--help"]);
    let help = text(&out.stdout);
    assert!(out.status.success());
    for word in [
        "model",
        "fewshot",
        "telemetry",
        "data",
        "-v, --verbose",
        "-q, --quiet",
    ] {
        assert!(help.contains(word), "{word}: {help}");
    }
    for code in [
        "Exit codes",
        "0 = success",
        "1 = error",
        "2 = usage error",
        "130",
        "143",
    ] {
        assert!(help.contains(code), "{code}: {help}");
    }
    let commands: Vec<&str> = help
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_whitespace().next())
        .collect();
    assert!(commands.contains(&"model"), "{commands:?}");
    for old in ["quantize", "inspect", "verify", "calibrate-threshold"] {
        assert!(!commands.contains(&old), "{old} listed: {help}");
    }
    let model = text(&run(&["model", "--help"]).stdout);
    for sub in ["quantize", "inspect", "verify"] {
        assert!(model.contains(sub), "{model}");
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["model", "inspect", "--nope"]).status.code(), Some(2));
    assert_eq!(run(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(run(&["data", "stats"]).status.code(), Some(2));
    assert_eq!(
        run(&["-v", "-q", "data", "stats", "--data", "x"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn model_inspect_json_and_the_old_spelling() {
    let new = json(&run(&["model", "inspect", "--model", p(&blob()), "--json"]));
    assert_eq!(new["blob_bytes"], 241_724, "{new}");
    // `seaclr inspect BLOB` still works, with one deprecation line.
    let out = run(&["inspect", p(&blob()), "--json"]);
    let old = json(&out);
    assert_eq!(old, new);
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("deprecated") && stderr.contains("seaclr model inspect"),
        "{stderr}"
    );
    // -q keeps warnings: the note stays.
    let out = run(&["-q", "inspect", "--model", p(&blob())]);
    assert!(text(&out.stderr).contains("deprecated"));
}

/// `--model` is read by content: a float checkpoint where a blob is needed
/// (and the reverse) is refused with a hint, before any work.
#[test]
fn model_kinds_are_checked_by_content() {
    let ckpt = root().join("models/seaclr-s");
    let out = run(&["model", "inspect", "--model", p(&ckpt)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("seaclr model quantize"),
        "{}",
        text(&out.stderr)
    );

    let out = run(&[
        "model",
        "verify",
        "--model",
        p(&ckpt),
        "--float",
        p(&blob()),
        "--data",
        "nowhere",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("swap"), "{}", text(&out.stderr));

    // The old `seaclr quantize --calib` spelling still parses (exit 1 for the
    // blob given as the float model, not 2 for an unknown flag).
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&[
        "quantize",
        "--model",
        p(&blob()),
        "--calib",
        "nowhere",
        "--calib-count",
        "600",
        "--out",
        p(&tmp.path().join("m.seaclr")),
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("an int8 blob"), "{stderr}");
    assert!(stderr.contains("seaclr model quantize"), "{stderr}");

    // A blob renamed without its extension is still a blob.
    let renamed = tmp.path().join("model.bin");
    std::fs::copy(blob(), &renamed).unwrap();
    let v = json(&run(&[
        "model",
        "inspect",
        "--model",
        p(&renamed),
        "--json",
    ]));
    assert_eq!(v["blob_bytes"], 241_724);
}

#[test]
fn data_stats_takes_data_and_the_old_positional() {
    let ifcb = root().join("../shared/data/ifcb");
    let out = run(&["data", "stats", "--data", p(&ifcb), "--json"]);
    let new = json(&out);
    assert_eq!(new["images"], 25);
    // Logs stay off stdout; a non-terminal stderr gets no progress bar.
    assert!(!text(&out.stderr).contains('['), "{}", text(&out.stderr));
    let out = run(&["data", "stats", p(&ifcb), "--json"]);
    assert_eq!(json(&out), new);
    assert!(text(&out.stderr).contains("--data"));
    assert_eq!(
        run(&["data", "stats", "--data", p(&ifcb), p(&ifcb)])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn verbosity_flags_change_the_logs() {
    let ifcb = root().join("../shared/data/ifcb");
    let quiet = run(&["-q", "data", "stats", "--data", p(&ifcb)]);
    assert!(quiet.status.success());
    assert_eq!(text(&quiet.stderr), "");
    let verbose = run(&["-v", "data", "stats", "--data", p(&ifcb)]);
    assert!(
        text(&verbose.stderr).contains("DEBUG"),
        "{}",
        text(&verbose.stderr)
    );
    assert_eq!(quiet.stdout, verbose.stdout);
}

#[test]
fn data_split_and_preview_json() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("split.csv");
    let v = json(&run(&[
        "data",
        "split",
        "--data",
        p(&flowcam()),
        "--unseen",
        "2",
        "--seed",
        "1",
        "--min-unseen-images",
        "5",
        "--out",
        p(&csv),
        "--json",
    ]));
    assert_eq!(v["images"], 105, "{v}");
    assert_eq!(v["unseen_classes"].as_array().unwrap().len(), 2, "{v}");
    assert!(csv.is_file());
    let png = tmp.path().join("grid.png");
    let v = json(&run(&[
        "data",
        "preview",
        "--data",
        p(&flowcam()),
        "--out",
        p(&png),
        "--per-class",
        "2",
        "--json",
    ]));
    assert_eq!(v["rows"].as_array().unwrap().len(), 6, "{v}");
    assert!(png.is_file());
}

/// The few-shot chain on the FlowCam demo: build, inspect, calibrate, all
/// with `--json`, and the old `seaclr calibrate-threshold` spelling.
#[test]
fn fewshot_build_inspect_calibrate_json() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("labels.bin");
    let built = json(&run(&[
        "fewshot",
        "build",
        "--model",
        p(&blob()),
        "--data",
        p(&flowcam()),
        "--per-class",
        "3",
        "--out",
        p(&store),
        "--json",
    ]));
    assert_eq!(built["examples"], 18, "{built}");
    assert_eq!(built["classes"].as_array().unwrap().len(), 6, "{built}");

    let listed = json(&run(&[
        "fewshot",
        "inspect",
        "--store",
        p(&store),
        "--json",
    ]));
    assert_eq!(listed["examples"], 18, "{listed}");
    assert!(listed["threshold"].is_null(), "{listed}");
    let old = run(&["fewshot", "inspect", p(&store), "--json"]);
    assert_eq!(json(&old), listed);

    let cal = json(&run(&[
        "fewshot",
        "calibrate-threshold",
        "--model",
        p(&blob()),
        "--data",
        p(&flowcam()),
        "--store",
        p(&store),
        "--json",
    ]));
    assert!(cal["threshold"].as_f64().unwrap() > 0.0, "{cal}");
    let listed = json(&run(&[
        "fewshot",
        "inspect",
        "--store",
        p(&store),
        "--json",
    ]));
    assert_eq!(listed["threshold_q15"], cal["threshold_q15"]);

    let out = run(&[
        "calibrate-threshold",
        "--model",
        p(&blob()),
        "--data",
        p(&flowcam()),
        "--store",
        p(&store),
        "--json",
    ]);
    assert_eq!(json(&out)["threshold_q15"], cal["threshold_q15"]);
    assert!(text(&out.stderr).contains("seaclr fewshot calibrate-threshold"));

    // The device commands refuse a float model with a hint.
    let out = run(&[
        "fewshot",
        "build",
        "--model",
        p(&root().join("models/seaclr-s")),
        "--data",
        p(&flowcam()),
        "--out",
        p(&store),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("int8 blob"),
        "{}",
        text(&out.stderr)
    );
}

/// `seaclr embed --json` (CSV and npy) and `seaclr eval --json` on a small
/// pool of the FlowCam demo: one JSON object each, with the keys scripts use.
#[test]
fn embed_and_eval_json() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("emb.csv");
    let v = json(&run(&[
        "embed",
        "--model",
        "raw",
        "--data",
        p(&flowcam()),
        "--size",
        "16",
        "--out",
        p(&csv),
        "--json",
    ]));
    assert_eq!(v["format"], "csv", "{v}");
    assert_eq!(v["rows"], 105, "{v}");
    assert_eq!(v["dim"], 256, "{v}");
    assert_eq!(v["out"], p(&csv), "{v}");
    assert_eq!(v["unreadable"], 0, "{v}");
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 106);
    let npy = tmp.path().join("emb.npy");
    let v = json(&run(&[
        "embed",
        "--model",
        "raw",
        "--data",
        p(&flowcam()),
        "--size",
        "16",
        "--out",
        p(&npy),
        "--format",
        "npy",
        "--json",
    ]));
    assert_eq!(
        (&v["format"], &v["rows"]),
        (&"npy".into(), &105.into()),
        "{v}"
    );
    // Without --json: one summary line on stdout, nothing on stderr with -q.
    let out = run(&[
        "-q",
        "embed",
        "--model",
        "raw",
        "--data",
        p(&flowcam()),
        "--size",
        "16",
        "--out",
        p(&csv),
    ]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("105 embeddings"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(text(&out.stderr), "");

    let report = tmp.path().join("report");
    let v = json(&run(&[
        "-q",
        "eval",
        "--model",
        "raw",
        "--data",
        p(&flowcam()),
        "--size",
        "16",
        "--max-per-class",
        "12",
        "--draws",
        "2",
        "--shots",
        "1,5",
        "--confusion-shots",
        "5",
        "--out",
        p(&report),
        "--json",
    ]));
    assert_eq!(v["out"], p(&report), "{v}");
    assert!(report.join("report.html").is_file() && report.join("metrics.json").is_file());
    let headline = v["headline"].as_array().unwrap();
    // The model (raw pixels) and the random-weights baseline.
    assert_eq!(headline.len(), 2, "{v}");
    assert_eq!(headline[0]["embedder"], "raw pixels");
    assert_eq!(headline[0]["n_per_class"], 5);
    for clf in ["knn", "logistic", "svc"] {
        let mean = headline[0][clf]["mean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&mean), "{clf}: {v}");
    }
    assert!(text(&run(&["eval", "--help"]).stdout).contains("--json"));
}
