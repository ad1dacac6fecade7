//! `seaclr embed` and `seaclr eval`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::baselines::{FloatEncoderEmbedder, random_seaclr_s};
use super::dataset::EvalSet;
use super::protocol::Settings;
use super::provenance::{model_provenance, run_provenance};
use super::report::{EvalInputs, write_report};
use crate::data::{Group, Subset};
use crate::embedder::{Embedder, RawPixels, load_embedder};
use crate::ui::{self, load, load_split};

/// Seed of the random-weights baseline encoder.
pub const RANDOM_ENCODER_SEED: u64 = 0x5eac1;

/// Arguments of `seaclr embed`.
#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// Model: a float checkpoint, an int8 `.seaclr` blob, `raw` (pixels) or `random` (random-weight seaclr-s).
    #[arg(long)]
    pub model: String,
    /// Images: class folders, a flat folder, IFCB bins or a manifest CSV.
    #[arg(long)]
    pub data: PathBuf,
    /// Output CSV: `path,label,e0,...` (paths escaped: a byte that is not UTF-8 as `\xHH`, a
    /// backslash as `\\`; the file reads back as a manifest).
    #[arg(long)]
    pub out: PathBuf,
    /// Preprocessed image side.
    #[arg(long, default_value_t = seaclr_shared::preprocess::DEFAULT_SIZE)]
    pub size: usize,
}

/// The transfer protocol's pool and draws, shared by `seaclr eval` and
/// `seaclr fewshot check` so both run over the same images and draws.
#[derive(clap::Args, Debug, Clone)]
pub struct PoolArgs {
    /// Data root (labelled class folders or a manifest).
    #[arg(long)]
    pub data: PathBuf,
    /// Split manifest (`path,label,group,subset`): its unseen classes are the
    /// pool; without it all classes are.
    #[arg(long)]
    pub split: Option<PathBuf>,
    /// Seeded draws per few-shot size (draw `d` uses seed `--seed + d`).
    #[arg(long, default_value_t = 10)]
    pub draws: usize,
    /// kNN neighbours (used as min(k, labelled per class)).
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Base seed of the draws and of the per-class cap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Pool images per class kept (seeded choice), bounding the Gram matrices.
    #[arg(long, default_value_t = 400)]
    pub max_per_class: usize,
}

impl PoolArgs {
    /// The pool on the FlowCam demo images with the defaults (for tests).
    #[cfg(test)]
    pub(crate) fn flowcam_demo() -> Self {
        Self {
            data: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/data/flowcam-demo"
            )),
            split: None,
            draws: 10,
            k: 10,
            seed: 0,
            max_per_class: 400,
        }
    }
}

/// Arguments of `seaclr eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Model: a float checkpoint, an int8 `.seaclr` blob, `raw` or `random`.
    #[arg(long)]
    pub model: String,
    /// More models run beside `--model` through the same protocol (repeatable),
    /// e.g. the int8 blob quantized from the `--model` checkpoint.
    #[arg(long)]
    pub compare: Vec<String>,
    /// The pool and the draws.
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Report folder (gets `report.html` and `metrics.json`).
    #[arg(long)]
    pub out: PathBuf,
    /// Labelled images per class to try (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = super::protocol::DEFAULT_SHOTS)]
    pub shots: Vec<usize>,
    /// Seen-class test images per class kept for distances, maps and images.
    #[arg(long, default_value_t = 40)]
    pub max_seen_per_class: usize,
    /// Training run folder (`steps.csv`, `epochs.csv`) for the curves.
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Preprocessed image side.
    #[arg(long, default_value_t = seaclr_shared::preprocess::DEFAULT_SIZE)]
    pub size: usize,
    /// Labelled images per class of the confusion matrices and per-class
    /// precision/recall/F1 (added to `--shots` if missing).
    #[arg(long, default_value_t = 10)]
    pub confusion_shots: usize,
    /// Print one JSON object on stdout (report folder, files and the
    /// headline few-shot scores per embedding and classifier) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Opens the model named on the command line.
pub fn open_model(spec: &str, size: usize) -> anyhow::Result<Box<dyn Embedder>> {
    Ok(match spec {
        "raw" => Box::new(RawPixels { size }),
        "random" => Box::new(random_embedder(size)),
        path => load_embedder(Path::new(path))?,
    })
}

fn random_embedder(size: usize) -> FloatEncoderEmbedder {
    FloatEncoderEmbedder {
        name: "random weights (seaclr-s)".into(),
        encoder: random_seaclr_s(size, RANDOM_ENCODER_SEED),
    }
}

fn report_skipped(path: &Path, skipped: &[crate::data::Skipped]) {
    if !skipped.is_empty() {
        tracing::warn!(
            "{}: skipped {} file(s), e.g. {}: {}",
            path.display(),
            skipped.len(),
            skipped[0].path,
            skipped[0].reason
        );
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// What `seaclr embed` wrote (its `--json` object).
#[derive(Clone, Debug, serde::Serialize)]
pub struct EmbedReport {
    /// The output file.
    pub out: String,
    /// `csv` or `npy`.
    pub format: &'static str,
    /// Rows written (one per image).
    pub rows: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// The model that embedded them.
    pub model: String,
    /// Inputs that could not be read.
    pub unreadable: usize,
}

/// Embeds images with `model` in chunks, with a progress bar.
pub fn embed_with_progress(
    model: &dyn Embedder,
    images: &[&[u8]],
    what: &str,
) -> anyhow::Result<Vec<Vec<f32>>> {
    ui::in_chunks(images.len(), ui::EMBED_CHUNK, what, |range| {
        model.embed(&images[range])
    })
}

/// `seaclr embed` (CSV): writes the file and says what it wrote.
pub fn run_embed(args: EmbedArgs) -> anyhow::Result<EmbedReport> {
    let model = open_model(&args.model, args.size)?;
    anyhow::ensure!(
        model.input_size() == args.size,
        "{} expects {}x{} inputs, --size is {}",
        model.name(),
        model.input_size(),
        model.input_size(),
        args.size
    );
    let loaded = load(&args.data, args.size)?;
    report_skipped(&args.data, &loaded.skipped);
    anyhow::ensure!(
        !loaded.records.is_empty(),
        "{}: no images found",
        args.data.display()
    );
    let refs: Vec<&[u8]> = loaded.records.iter().map(|r| r.pixels.as_slice()).collect();
    let embeddings = embed_with_progress(model.as_ref(), &refs, "embedding")?;
    let dim = embeddings.first().map_or(0, Vec::len);
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("{}: cannot create", args.out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let header: Vec<String> = ["path".to_string(), "label".to_string()]
        .into_iter()
        .chain((0..dim).map(|i| format!("e{i}")))
        .collect();
    writeln!(w, "{}", header.join(","))?;
    for (r, e) in loaded.records.iter().zip(&embeddings) {
        let values: Vec<String> = e.iter().map(|v| v.to_string()).collect();
        writeln!(
            w,
            "{},{},{}",
            csv_field(&r.id),
            csv_field(r.label.as_deref().unwrap_or("")),
            values.join(",")
        )?;
    }
    w.flush()
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    Ok(EmbedReport {
        out: args.out.display().to_string(),
        format: "csv",
        rows: embeddings.len(),
        dim,
        model: model.name(),
        unreadable: loaded.skipped.len(),
    })
}

fn to_set(
    source: &Path,
    loaded: crate::data::Loaded,
    cap: usize,
    seed: u64,
) -> anyhow::Result<EvalSet> {
    report_skipped(source, &loaded.skipped);
    let items = loaded
        .records
        .into_iter()
        .map(|r| (r.id, r.label, r.pixels))
        .collect();
    EvalSet::from_labelled(&source.display().to_string(), items, Some(cap), seed)
}

/// The pool of the transfer protocol: the unseen classes of the split (all
/// classes without one), at most `max_per_class` images per class chosen
/// with the seed.
pub fn load_unseen_pool(pool: &PoolArgs, size: usize) -> anyhow::Result<EvalSet> {
    let set = match &pool.split {
        Some(split) => {
            let unseen = load_split(&pool.data, split, Group::Unseen, None, size)?;
            to_set(split, unseen, pool.max_per_class, pool.seed)?
        }
        None => to_set(
            &pool.data,
            load(&pool.data, size)?,
            pool.max_per_class,
            pool.seed,
        )?,
    };
    anyhow::ensure!(
        !set.is_empty(),
        "{}: no labelled images to evaluate",
        pool.data.display()
    );
    Ok(set)
}

/// `seaclr eval`.
pub fn run_eval(args: EvalArgs) -> anyhow::Result<()> {
    let model = open_model(&args.model, args.size)?;
    tracing::info!("model: {}", model.name());
    let unseen = load_unseen_pool(&args.pool, args.size)?;
    let seen = match &args.pool.split {
        Some(split) => {
            let seen = load_split(
                &args.pool.data,
                split,
                Group::Seen,
                Some(Subset::Test),
                args.size,
            )?;
            Some(to_set(
                split,
                seen,
                args.max_seen_per_class,
                args.pool.seed,
            )?)
        }
        None => None,
    };
    let mut embedders: Vec<Box<dyn Embedder>> = vec![model];
    let mut models = vec![model_provenance(&args.model, &embedders[0].name())];
    for spec in &args.compare {
        let e = open_model(spec, args.size)?;
        models.push(model_provenance(spec, &e.name()));
        embedders.push(e);
    }
    let named = |name: &str| args.model == name || args.compare.iter().any(|c| c == name);
    if !named("raw") {
        embedders.push(Box::new(RawPixels { size: args.size }));
        models.push(model_provenance("raw", "raw pixels"));
    }
    if !named("random") {
        let e = random_embedder(args.size);
        models.push(model_provenance("random", &e.name()));
        embedders.push(Box::new(e));
    }
    let mut shots = args.shots.clone();
    if !shots.contains(&args.confusion_shots) && args.confusion_shots > 0 {
        shots.push(args.confusion_shots);
        shots.sort_unstable();
    }
    let inputs = EvalInputs {
        unseen,
        seen,
        embedders,
        settings: Settings {
            shots,
            confusion_shots: args.confusion_shots,
            draws: args.pool.draws.max(1),
            k: args.pool.k.max(1),
            seed: args.pool.seed,
            ..Settings::default()
        },
        run_dir: args.run.clone(),
        data: args.pool.data.display().to_string(),
        split: args.pool.split.as_ref().map(|s| s.display().to_string()),
        max_per_class: Some(args.pool.max_per_class),
        models,
        run: run_provenance(),
    };
    let metrics = write_report(&inputs, &args.out, args.size)?;
    if args.json {
        return ui::print_json(&eval_json(&args.out, &metrics));
    }
    for r in &metrics.headline {
        println!(
            "{:<28} n={:<3} kNN {:.3}  logistic {:.3}  SVC {:.3}",
            r.embedder, r.n_per_class, r.knn.0, r.logistic.0, r.svc.0
        );
    }
    println!("report: {}", args.out.join("report.html").display());
    Ok(())
}

/// `seaclr eval --json`: where the report is and the headline few-shot
/// balanced accuracies (mean and std over the draws) per embedding and
/// classifier; every other number is in `metrics.json`.
fn eval_json(out: &Path, metrics: &super::report::Metrics) -> serde_json::Value {
    let stat = |(mean, std): (f64, f64)| serde_json::json!({"mean": mean, "std": std});
    let headline: Vec<serde_json::Value> = metrics
        .headline
        .iter()
        .map(|r| {
            serde_json::json!({
                "embedder": r.embedder,
                "n_per_class": r.n_per_class,
                "knn": stat(r.knn),
                "logistic": stat(r.logistic),
                "svc": stat(r.svc),
            })
        })
        .collect();
    serde_json::json!({
        "out": out.display().to_string(),
        "report": out.join("report.html").display().to_string(),
        "metrics": out.join("metrics.json").display().to_string(),
        "metric": "balanced accuracy",
        "headline": headline,
    })
}

/// End to end on the FlowCam demo set (105 images, 6 classes): the report's
/// metrics.json holds every section; `embed` writes one row per image.
#[cfg(test)]
mod tests {
    use super::*;

    fn flowcam() -> PathBuf {
        PoolArgs::flowcam_demo().data
    }

    /// `seaclr eval --model MODEL --data flowcam-demo --out OUT` with the defaults.
    fn eval_args(model: &str, out: &Path) -> EvalArgs {
        EvalArgs {
            model: model.into(),
            compare: vec![],
            pool: PoolArgs::flowcam_demo(),
            out: out.to_path_buf(),
            shots: crate::eval::protocol::DEFAULT_SHOTS.to_vec(),
            max_seen_per_class: 40,
            run: None,
            size: 64,
            confusion_shots: 10,
            json: false,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("seaclr-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn eval_report_on_flowcam_demo() {
        let out = temp_dir("eval-report");
        let mut args = eval_args("raw", &out);
        args.pool.draws = 3;
        args.shots = vec![1, 2, 5, 10, 20];
        run_eval(args).unwrap();
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap())
                .unwrap();
        // Model (raw pixels) and the random-weights baseline, both on 6 classes.
        let headline = m["headline"].as_array().unwrap();
        assert_eq!(headline.len(), 2);
        assert_eq!(headline[0]["embedder"], "raw pixels");
        assert_eq!(headline[0]["n_per_class"], 10);
        for row in headline {
            for clf in ["knn", "logistic", "svc"] {
                let mean = row[clf][0].as_f64().unwrap();
                // Well above chance (1/6) for all, and a valid fraction.
                assert!((0.25..=1.0).contains(&mean), "{clf}: {mean}");
            }
        }
        let group = &m["embedders"][0]["groups"][0];
        assert_eq!(group["group"], "unseen");
        assert_eq!(group["images"], 105);
        assert_eq!(
            group["class_counts"],
            serde_json::json!([14, 16, 19, 20, 23, 13])
        );
        let t = &group["transfer"];
        // The smallest class has 13 images: n = 20 cannot leave a test image.
        let ns: Vec<u64> = t["few_shot"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["n_per_class"].as_u64().unwrap())
            .collect();
        assert_eq!(ns, vec![1, 2, 5, 10]);
        assert_eq!(
            t["few_shot"][0]["knn"]["values"].as_array().unwrap().len(),
            3
        );
        // 65 % of 105 = 68 in the curve's train pool: n = 30, 40, 50, 60.
        assert_eq!(t["curve_train_pool"], 68);
        assert_eq!(t["curve"].as_array().unwrap().len(), 4);
        assert_eq!(group["distances"]["mean"].as_array().unwrap().len(), 6);
        assert_eq!(group["map"]["points"].as_array().unwrap().len(), 105);
        assert_eq!(group["picks"][0]["closest"].as_array().unwrap().len(), 5);
        assert!(
            m["notes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n.as_str().unwrap().contains("n = 20"))
        );
        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(
            html.contains("Headline")
                && html.contains("Tripos")
                && html.contains("data:image/png;base64,")
        );
        std::fs::remove_dir_all(&out).unwrap();
    }

    /// The committed float checkpoint with its int8 blob beside it: one
    /// report, four rows (model, compared model, both baselines), and the
    /// int8-against-float line the quantization issue asks for.
    #[test]
    fn eval_compares_the_int8_blob_beside_the_float_model() {
        let out = temp_dir("eval-compare");
        let models = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models"));
        let mut args = eval_args(&models.join("seaclr-s").display().to_string(), &out);
        args.compare = vec![models.join("seaclr-s.seaclr").display().to_string()];
        args.pool.draws = 2;
        args.shots = vec![5];
        run_eval(args).unwrap();
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap())
                .unwrap();
        let names: Vec<&str> = m["headline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["embedder"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(
            names[1].starts_with("int8") && names[2] == "raw pixels",
            "{names:?}"
        );
        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(html.contains("</b> against "), "no comparison line");
        std::fs::remove_dir_all(&out).unwrap();
    }

    /// The browser named by `$SEACLR_CHROMIUM`, or Debian's Chromium.
    fn chromium() -> Option<PathBuf> {
        std::env::var_os("SEACLR_CHROMIUM")
            .map(PathBuf::from)
            .into_iter()
            .chain(["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(PathBuf::from))
            .find(|p| p.is_file())
    }

    /// A quick report (FlowCam demo, 12 images per class, the committed
    /// int8 model, training curves from the committed run) loaded in
    /// headless Chromium: every section and figure is in the rendered DOM,
    /// the page's own check ran, and no script error was caught. Without
    /// Chromium the test is skipped, unless `SEACLR_REQUIRE_BROWSER=1`
    /// (CI sets it) makes that a failure.
    #[test]
    fn eval_report_in_headless_chromium() {
        let Some(browser) = chromium() else {
            assert!(
                std::env::var_os("SEACLR_REQUIRE_BROWSER").is_none(),
                "SEACLR_REQUIRE_BROWSER is set but no Chromium was found (apt-get install chromium)"
            );
            eprintln!("skipped: no Chromium (apt-get install chromium, or set SEACLR_CHROMIUM)");
            return;
        };
        let out = temp_dir("eval-browser");
        let models = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models"));
        let mut args = eval_args(&models.join("seaclr-s.seaclr").display().to_string(), &out);
        args.pool.max_per_class = 12;
        args.pool.draws = 2;
        args.shots = vec![1, 5];
        args.run = Some(models.join("seaclr-s"));
        run_eval(args).unwrap();
        let report = out.join("report.html");
        let html = std::fs::read_to_string(&report).unwrap();
        let profile = out.join("chromium-profile");
        let output = std::process::Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--virtual-time-budget=3000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--dump-dom")
            .arg(format!("file://{}", report.display()))
            .output()
            .expect("starting Chromium");
        let dom = String::from_utf8_lossy(&output.stdout);
        assert!(
            dom.contains("</html>"),
            "Chromium printed no page: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // No script error caught by the page's handler.
        assert!(
            dom.contains("<div id=\"js-errors\" class=\"note\" hidden=\"\"></div>"),
            "script errors: {}",
            dom.split("js-errors")
                .nth(1)
                .unwrap_or("")
                .chars()
                .take(400)
                .collect::<String>()
        );
        // The page's own script ran and counted every figure the file has.
        let attr = |name: &str| -> usize {
            let key = format!("{name}=\"");
            let at = dom
                .find(&key)
                .unwrap_or_else(|| panic!("no {name} in the DOM"));
            dom[at + key.len()..]
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let (svgs, imgs) = (html.matches("<svg").count(), html.matches("<img").count());
        assert_eq!(attr("data-svg"), svgs);
        assert_eq!(attr("data-img"), imgs);
        // Every section, its figures: per-class (3 matrices and a colour
        // bar), few-shot (3 charts), distances (bar + 2 embedders x 1 group
        // + the int8 model), maps (3), training (3).
        for (id, _) in crate::eval::report::SECTIONS {
            assert!(
                dom.contains(&format!("<h2 id=\"{id}\">")),
                "section {id} missing"
            );
        }
        assert!(svgs >= 3 + 1 + 3 + 1 + 3 + 3 + 3, "{svgs} figures");
        assert_eq!(dom.matches("class=\"matrix\"").count(), 3 + 3);
        assert_eq!(dom.matches("class=\"map\"").count(), 3);
        assert!(imgs >= 6 * 3, "{imgs} image grids");
        // The evaluated blob is named by its payload CRC.
        let blob = crate::eval::provenance::model_provenance(
            &models.join("seaclr-s.seaclr").display().to_string(),
            "x",
        );
        let crc = blob.crc32.expect("the committed blob's CRC");
        assert!(dom.contains(&format!("CRC {crc}")), "CRC {crc} not shown");
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn embed_writes_one_row_per_image() {
        let out = temp_dir("embed");
        let csv = out.join("emb.csv");
        run_embed(EmbedArgs {
            model: "random".into(),
            data: flowcam(),
            out: csv.clone(),
            size: 64,
        })
        .unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(&header[..3], &["path", "label", "e0"]);
        assert_eq!(header.len(), 2 + 128);
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), 105);
        assert!(rows.iter().all(|r| r.split(',').count() == 130));
        assert!(rows.iter().any(|r| r.split(',').nth(1) == Some("Tripos")));
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn embed_keeps_non_utf8_names_apart_and_skips_a_fifo() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let out = temp_dir("embed-bytes");
        let data = out.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let png = |v: u8| {
            let mut buf = std::io::Cursor::new(Vec::new());
            image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(9, 7, image::Luma([v])))
                .write_to(&mut buf, image::ImageFormat::Png)
                .unwrap();
            buf.into_inner()
        };
        if std::fs::write(data.join(OsStr::from_bytes(b"x\xff.png")), png(10)).is_err() {
            return; // a file system without non-UTF-8 names
        }
        std::fs::write(data.join(OsStr::from_bytes(b"x\xfe.png")), png(200)).unwrap();
        let fifo_made = std::process::Command::new("mkfifo")
            .arg(data.join("z.jpg"))
            .status()
            .is_ok_and(|s| s.success());
        let csv = out.join("emb.csv");
        let args = EmbedArgs {
            model: "raw".into(),
            data: data.clone(),
            out: csv.clone(),
            size: 8,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(run_embed(args).map_err(|e| format!("{e:#}"))));
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("embed hung on the FIFO")
            .unwrap();
        let _ = fifo_made;
        // The CSV's path column reads back (as a manifest) to the very files.
        let rows = crate::data::manifest::read_manifest(&csv).unwrap();
        let paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths.len(), 2, "{paths:?}");
        assert!(paths[0].ends_with("x\\xfe.png") && paths[1].ends_with("x\\xff.png"));
        for row in &rows {
            let path = seaclr_shared::walk::unescape_path(&row.path);
            assert!(path.is_file(), "{} does not read back", row.path);
        }
        // And loading the CSV as a manifest finds both images.
        let loaded = crate::data::load(&csv, 8).unwrap();
        assert_eq!(loaded.records.len(), 2, "{:?}", loaded.skipped);
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn eval_names_a_missing_data_folder() {
        let out = temp_dir("eval-missing");
        let mut args = eval_args("raw", &out.join("report"));
        args.compare = vec!["random".into()];
        args.pool.data = out.join("nope");
        args.shots = vec![1];
        let err = run_eval(args).unwrap_err();
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
        std::fs::remove_dir_all(&out).unwrap();
    }
}
