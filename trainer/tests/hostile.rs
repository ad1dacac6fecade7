//! The `seaclr` binary under hostile conditions: Ctrl-C during training
//! (checkpoint, non-zero exit, exact resume), a config with `nan`, a
//! telemetry file with bad lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn seaclr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seaclr"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// 16 small PNGs (dark rectangles on white) in a flat folder.
fn images(dir: &Path) -> PathBuf {
    let data = dir.join("images");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..16u32 {
        let img = image::GrayImage::from_fn(24, 24, |x, y| {
            let inside = x >= i % 7 && x < 8 + i % 9 && y >= i % 5 && y < 6 + i % 11;
            image::Luma([if inside { (i * 13 % 120) as u8 } else { 255 }])
        });
        img.save(data.join(format!("{i:02}.png"))).unwrap();
    }
    data
}

/// A tiny model so a step takes milliseconds even in a debug build.
fn tiny_config(dir: &Path, max_steps: usize) -> PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(
        &path,
        format!(
            "batch_size = 4\nmax_steps = {max_steps}\nseed = 5\ncheckpoint_every = 1000\n\
             keep_last = 2\nworkers = 1\nprefetch = 2\n\
             [optimizer]\nwarmup_steps = 3\nlearning_rate = 0.01\n\
             [model]\ninput_size = 16\nstage_channels = [4, 8]\nentry_channels = []\n\
             head_hidden = 8\nprojection_dim = 8\n\
             [augment]\nsource_size = 24\n"
        ),
    )
    .unwrap();
    path
}

fn train(data: &Path, config: &Path, out: &Path, resume: bool) -> Command {
    let mut cmd = seaclr();
    cmd.args(["train", "--no-progress", "--data"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out);
    if resume {
        cmd.arg("--resume");
    }
    cmd
}

fn wait_with_timeout(mut child: std::process::Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("seaclr did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn steps_done(run: &Path) -> usize {
    std::fs::read_to_string(run.join("steps.csv"))
        .map(|t| t.lines().count().saturating_sub(1))
        .unwrap_or(0)
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[cfg(unix)]
#[test]
fn ctrl_c_checkpoints_exits_130_and_resumes_to_the_same_bytes() {
    const STEPS: usize = 200;
    let tmp = tempfile::tempdir().unwrap();
    let data = images(tmp.path());
    let config = tiny_config(tmp.path(), STEPS);
    let (straight, stopped) = (tmp.path().join("straight"), tmp.path().join("stopped"));

    // Interrupted run: SIGINT once a few steps are done.
    let child = train(&data, &config, &stopped, false)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while steps_done(&stopped) < 3 {
        assert!(start.elapsed() < Duration::from_secs(120), "no steps");
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: a plain kill(2) to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = wait_with_timeout(child, Duration::from_secs(120));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let at = steps_done(&stopped);
    assert!(
        at < STEPS,
        "the run finished before the interrupt ({at} steps)"
    );
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    let ckpt = stopped.join(format!("checkpoints/step-{at:07}"));
    assert!(ckpt.join("optimizer.bpk").is_file(), "{stderr}");

    // Resumed to the end, and a straight run: the same final checkpoint.
    let out = wait_with_timeout(
        train(&data, &config, &stopped, true).output_child(),
        Duration::from_secs(300),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = wait_with_timeout(
        train(&data, &config, &straight, false).output_child(),
        Duration::from_secs(300),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let last = format!("checkpoints/step-{STEPS:07}");
    let (a, b) = (files(&straight.join(&last)), files(&stopped.join(&last)));
    assert_eq!(a.len(), 4);
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            x == y,
            "{name} differs between the straight and the interrupted run"
        );
    }
}

trait OutputChild {
    fn output_child(&mut self) -> std::process::Child;
}

impl OutputChild for Command {
    fn output_child(&mut self) -> std::process::Child {
        self.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

#[test]
fn a_nan_learning_rate_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("nan.toml");
    std::fs::write(&config, "[optimizer]\nlearning_rate = nan\n").unwrap();
    let out_dir = tmp.path().join("run");
    let out = train(tmp.path(), &config, &out_dir, false)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("optimizer.learning_rate"), "{stderr}");
    assert!(stderr.contains("NaN"), "{stderr}");
    assert!(!out_dir.exists());
}

#[test]
fn train_help_lists_the_exit_codes() {
    let out = seaclr().args(["train", "--help"]).output().unwrap();
    let help = text(&out.stdout);
    assert!(help.contains("Exit codes"), "{help}");
    assert!(help.contains("130"), "{help}");
}

#[test]
fn telemetry_decode_prints_good_lines_and_names_bad_ones() {
    use seaclr_shared::hex::Hex;
    use seaclr_shared::telemetry::{ClassCounts, FORMAT_VERSION, SBD_MAX_BYTES, Telemetry};
    let hex = |sequence: u32| -> String {
        let msg = Telemetry {
            version: FORMAT_VERSION,
            buoy_id: 3,
            sequence,
            interval_start_s: 0,
            interval_len_s: 3600,
            model_id: 1,
            frames: 9,
            unknown: 2,
            counts: ClassCounts::from_slice(&[4, 3]).unwrap(),
        };
        let mut buf = [0u8; SBD_MAX_BYTES];
        Hex(msg.encode(&mut buf).unwrap()).to_string()
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("telemetry.hex");
    let mut corrupt = hex(2);
    corrupt.replace_range(4..6, "ff");
    std::fs::write(&file, format!("{}\n{corrupt}\n{}\nzz\n", hex(1), hex(3))).unwrap();
    let out = seaclr()
        .args(["telemetry", "decode", "--data"])
        .arg(&file)
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("message #1,"), "{stdout}");
    assert!(stdout.contains("message #3,"), "{stdout}");
    assert!(!stdout.contains("message #2,"), "{stdout}");
    assert!(stderr.contains("line 2:"), "{stderr}");
    assert!(stderr.contains("line 4:"), "{stderr}");
    assert!(
        stderr.contains("2 line(s) could not be decoded"),
        "{stderr}"
    );
    // --json: one object on stdout, the same lines and exit code.
    let out = seaclr()
        .args([
            "telemetry",
            "decode",
            "--json",
            "--classes",
            "a,b",
            "--data",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    let messages = v["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{v}");
    assert_eq!(messages[1]["sequence"], 3, "{v}");
    assert_eq!(messages[1]["line"], 3, "{v}");
    assert_eq!(messages[0]["counts"], serde_json::json!([4, 3]), "{v}");
    assert_eq!(
        messages[0]["class_names"],
        serde_json::json!(["a", "b"]),
        "{v}"
    );
    assert_eq!(v["bad_lines"].as_array().unwrap().len(), 2, "{v}");
    assert!(text(&out.stderr).contains("line 4:"));
    // All good: exit 0 (the old positional spelling still works).
    std::fs::write(&file, format!("{}\n{}\n", hex(1), hex(3))).unwrap();
    let out = seaclr()
        .args(["telemetry", "decode"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
