//! `seaclr-buoy` as a user runs it: the console answers while the buoy
//! waits for frames, and a bad model never replaces a good one.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn buoy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seaclr-buoy"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("seaclr-buoy-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn model() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/seaclr-s.seaclr"
    ))
}

#[test]
fn the_console_answers_while_no_frames_arrive() {
    let dir = tmp("idle");
    let watched = dir.join("watched");
    std::fs::create_dir_all(&watched).unwrap();
    let mut child = buoy()
        .args([
            "run",
            "--watch",
            "--idle-s",
            "20",
            "--console",
            "tcp:0",
            "--data",
        ])
        .arg(&watched)
        .arg("--out")
        .arg(dir.join("out"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut port = None;
    let mut line = String::new();
    while port.is_none() && out.read_line(&mut line).unwrap() > 0 {
        port = line
            .trim()
            .strip_prefix("console: listening on 127.0.0.1:")
            .map(|p| p.parse::<u16>().unwrap());
        line.clear();
    }
    let port = port.expect("no console port printed");
    let started = Instant::now();
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    writeln!(conn, "status").unwrap();
    let mut reply = String::new();
    BufReader::new(conn.try_clone().unwrap())
        .read_line(&mut reply)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(reply.starts_with("ok model"), "reply: {reply:?}");
    // Answered while idle, long before the 20 s idle end.
    assert!(started.elapsed() < Duration::from_secs(15));
}

fn flash_with_good_model(dir: &Path) -> PathBuf {
    let image = dir.join("flash.img");
    let status = buoy()
        .args(["flash", "--model"])
        .arg(model())
        .arg("--out")
        .arg(&image)
        .status()
        .unwrap();
    assert!(status.success());
    image
}

#[test]
fn a_bad_model_is_refused_and_the_installed_one_kept() {
    let dir = tmp("bad-model");
    let image = flash_with_good_model(&dir);
    let before = std::fs::read(&image).unwrap();
    let good = std::fs::read(model()).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 1;
    for (name, bytes) in [
        ("empty.seaclr", &good[..0]),
        ("truncated.seaclr", &good[..good.len() / 3]),
        ("flipped.seaclr", &flipped[..]),
    ] {
        let bad = dir.join(name);
        std::fs::write(&bad, bytes).unwrap();
        let out = buoy()
            .args(["flash", "--model"])
            .arg(&bad)
            .arg("--out")
            .arg(&image)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: flash exited 0");
        assert!(
            err.contains("model rejected") && err.contains("kept"),
            "{name}: {err}"
        );
        let run = buoy()
            .args(["run", "--console", "none", "--flash"])
            .arg(&image)
            .arg("--model")
            .arg(&bad)
            .arg("--data")
            .arg(&dir)
            .arg("--out")
            .arg(dir.join("out"))
            .output()
            .unwrap();
        assert!(!run.status.success(), "{name}: run exited 0");
        assert_eq!(
            std::fs::read(&image).unwrap(),
            before,
            "{name}: the image changed"
        );
    }
}

#[test]
fn a_label_store_built_on_the_host_boots_on_the_buoy() {
    use seaclr_edge::knn::KnnHead;
    use seaclr_edge::store::{DEFAULT_REGION_SIZE, LabelStore, mock_flash::MockFlash};
    let dir = tmp("labels");
    // What `seaclr fewshot build` writes: a store region with classes and examples.
    let mut image = vec![0xFFu8; DEFAULT_REGION_SIZE];
    {
        let mut head = Box::new(KnnHead::new());
        let flash = MockFlash::<4, 4096>::new(&mut image);
        let (mut store, _) = LabelStore::mount_or_format(flash, &mut *head).unwrap();
        for (name, seed) in [("copepod", 1i8), ("diatom", -1i8)] {
            let class = store.add_class(&mut *head, name).unwrap();
            let embedding: Vec<i8> = (0..128).map(|i| seed * (i % 7) as i8 + 1).collect();
            store.add_example(&mut *head, class, &embedding).unwrap();
        }
    }
    let labels = dir.join("labels.bin");
    std::fs::write(&labels, &image).unwrap();
    let flash = flash_with_good_model(&dir);
    let install = || {
        buoy()
            .args(["flash", "--keep-model", "--labels"])
            .arg(&labels)
            .arg("--out")
            .arg(&flash)
            .output()
            .unwrap()
    };
    let out = install();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 classes, 2 examples"));
    // A truncated image is refused and the store is kept.
    let before = std::fs::read(&flash).unwrap();
    std::fs::write(&labels, &image[..4096]).unwrap();
    assert!(!install().status.success());
    assert_eq!(std::fs::read(&flash).unwrap(), before);
    // The buoy boots with them.
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    image::GrayImage::from_pixel(30, 20, image::Luma([40]))
        .save(frames.join("a.png"))
        .unwrap();
    let run = buoy()
        .args(["run", "--console", "none", "--auto-label", "0", "--flash"])
        .arg(&flash)
        .arg("--data")
        .arg(&frames)
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{text}");
    assert!(
        text.contains("2 classes, 2 labelled examples in the store"),
        "{text}"
    );
}

#[test]
fn the_summary_is_one_json_object_on_stdout_with_json() {
    let dir = tmp("json");
    let data = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/flowcam-demo"
    ));
    let run = buoy()
        .args([
            "run",
            "--json",
            "--console",
            "none",
            "--limit",
            "24",
            "--data",
        ])
        .arg(&data)
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["frames"], 24);
    assert_eq!(summary["operator"]["classes"], 6);
    assert!(
        summary["operator"]["accuracy_after"]["total"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(summary["labelled_examples_in_store"], 18);
    // The progress lines went to stderr.
    assert!(String::from_utf8_lossy(&run.stderr).contains("== summary =="));
}

#[test]
fn a_watch_with_stdin_at_its_end_still_waits_its_idle_time() {
    let dir = tmp("watch-stdin");
    let watched = dir.join("watched");
    std::fs::create_dir_all(&watched).unwrap();
    let started = Instant::now();
    let out = buoy()
        .args([
            "run",
            "--watch",
            "--idle-s",
            "2",
            "--console",
            "stdin",
            "--data",
        ])
        .arg(&watched)
        .arg("--out")
        .arg(dir.join("out"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1800),
        "ended after {:?}",
        started.elapsed()
    );
}
