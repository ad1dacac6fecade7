//! Where every number of a report comes from: per model its kind, a CRC
//! (the blob's payload CRC-32 for an int8 model, the CRC-32 of `model.bpk`
//! for a float checkpoint), its training steps (this run's and cumulative,
//! from `state.json` and the run's `steps.csv`) and the `--init-from`
//! lineage found in the folder's `train.log`; per report the tool version,
//! the git commit when known, the date and the command line.

use std::path::Path;

use serde::Serialize;

use crate::simclr::checkpoint;

/// Where one evaluated model came from.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ModelProvenance {
    /// The name shown in the report.
    pub name: String,
    /// As given on the command line (`raw`, `random` or a path).
    pub spec: String,
    /// "float checkpoint", "int8 blob" or "baseline".
    pub kind: String,
    /// The checkpoint folder a float model was read from.
    pub checkpoint: Option<String>,
    /// Hex CRC-32: the blob's payload CRC (int8) or of `model.bpk` (float).
    pub crc32: Option<String>,
    /// What `crc32` covers.
    pub crc32_of: Option<String>,
    /// Bytes of the blob or of `model.bpk`.
    pub bytes: Option<u64>,
    /// Steps of the run that wrote the checkpoint (`state.json`).
    pub run_steps: Option<usize>,
    /// Steps since training started from scratch: the last step of the
    /// folder's `steps.csv` when it records the earlier phases too.
    pub cumulative_steps: Option<usize>,
    /// The `--init-from` lineage as recorded in the folder's `train.log`.
    pub lineage: Vec<String>,
}

/// Where the whole report came from.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunProvenance {
    /// `seaclr` version.
    pub tool_version: String,
    /// `git rev-parse HEAD` of the working folder, when git answers.
    pub git_commit: Option<String>,
    /// UTC time the report was written (`YYYY-MM-DD HH:MM:SS UTC`).
    pub date: String,
    /// The command line, shell-quoted.
    pub command_line: String,
}

fn crc_hex(bytes: &[u8]) -> String {
    format!("{:08x}", seaclr_shared::blob::crc32(bytes))
}

/// The provenance of the model named `spec` on the command line.
pub fn model_provenance(spec: &str, fallback_name: &str) -> ModelProvenance {
    let mut p = ModelProvenance {
        name: fallback_name.to_string(),
        spec: spec.to_string(),
        ..Default::default()
    };
    if spec == "raw" || spec == "random" {
        p.kind = "baseline".into();
        return p;
    }
    let path = Path::new(spec);
    if path.extension().is_some_and(|e| e == "seaclr") {
        p.kind = "int8 blob".into();
        if let Ok(bytes) = std::fs::read(path) {
            p.bytes = Some(bytes.len() as u64);
            if let Ok(h) = seaclr_shared::blob::Header::parse(&bytes) {
                p.crc32 = Some(format!("{:08x}", h.payload_crc32));
                p.crc32_of = Some("blob payload (header field, checked on load)".into());
            }
        }
        p.name = match &p.crc32 {
            Some(crc) => format!("int8 {spec} (CRC {crc})"),
            None => format!("int8 {spec}"),
        };
        return p;
    }
    p.kind = "float checkpoint".into();
    let Ok(dir) = checkpoint::resolve(path) else {
        return p;
    };
    p.checkpoint = Some(dir.display().to_string());
    if let Ok(bytes) = std::fs::read(dir.join(checkpoint::MODEL_FILE)) {
        p.bytes = Some(bytes.len() as u64);
        p.crc32 = Some(crc_hex(&bytes));
        p.crc32_of = Some(checkpoint::MODEL_FILE.into());
    }
    if let Ok((state, _)) = checkpoint::read_meta(&dir) {
        p.run_steps = Some(state.step);
    }
    // The run's CSV sits in the checkpoint folder (a published model) or two
    // levels up (runs/NAME/checkpoints/step-N).
    let run_dirs = [
        Some(dir.clone()),
        dir.parent().and_then(Path::parent).map(Path::to_path_buf),
    ];
    for run in run_dirs.iter().flatten() {
        if let Some(last) = last_step(&run.join("steps.csv"))
            && p.run_steps.is_none_or(|s| last >= s)
        {
            p.cumulative_steps = Some(last);
            break;
        }
    }
    if p.cumulative_steps.is_none() {
        p.cumulative_steps = p.run_steps;
    }
    for run in run_dirs.iter().flatten() {
        if let Ok(log) = std::fs::read_to_string(run.join("train.log")) {
            p.lineage = lineage_lines(&log);
            break;
        }
    }
    p.name = match p.cumulative_steps {
        Some(s) => format!("float {spec} ({} steps)", thousands(s)),
        None => format!("float {spec}"),
    };
    p
}

/// Lines of a `train.log` that tell the lineage: phase headers (`# ...`)
/// and the trainer's "starting from the weights of" line.
pub fn lineage_lines(log: &str) -> Vec<String> {
    log.lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("# ")
                || l.contains("starting from the weights of")
                || l.starts_with("finished at step")
        })
        .map(|l| l.trim_start_matches("# ").to_string())
        .collect()
}

fn last_step(steps_csv: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(steps_csv).ok()?;
    text.lines()
        .skip(1)
        .filter_map(|l| l.split(',').next()?.trim().parse::<usize>().ok())
        .max()
}

/// `1300` as "1,300".
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The report-level provenance of this process.
pub fn run_provenance() -> RunProvenance {
    let git_commit = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| s.len() >= 7 && s.chars().all(|c| c.is_ascii_hexdigit()));
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    RunProvenance {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit,
        date: utc_date(secs),
        command_line: std::env::args()
            .map(|a| shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Seconds since 1970 as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian).
pub fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_provenance_dates_and_numbers() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date(1_772_409_600 + 3_661), "2026-03-02 01:01:01 UTC");
        assert_eq!(thousands(1300), "1,300");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("--out"), "--out");
    }

    /// The committed model as its own files tell it: the run's steps from
    /// `config.toml`, the cumulative steps from `steps.csv`, the lineage
    /// from `train.log`, and the blob's payload CRC recomputed from its
    /// bytes (not the header's copy).
    #[test]
    fn eval_provenance_of_the_committed_models() {
        let models = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");
        let dir = format!("{models}/seaclr-s");
        let f = model_provenance(&dir, "x");
        assert_eq!(f.kind, "float checkpoint");
        let config = crate::simclr::config::TrainConfig::from_toml_file(
            &Path::new(&dir).join(checkpoint::CONFIG_FILE),
        )
        .unwrap();
        let max_steps = config.max_steps;
        assert_eq!(f.run_steps, Some(max_steps));
        let csv_last = last_step(Path::new(&format!("{dir}/steps.csv"))).unwrap();
        assert_eq!(f.cumulative_steps, Some(csv_last));
        assert!(csv_last >= max_steps);
        assert!(
            f.name
                .ends_with(&format!("({} steps)", thousands(csv_last))),
            "{}",
            f.name
        );
        let model = std::fs::read(format!("{dir}/model.bpk")).unwrap();
        assert_eq!(f.crc32.as_deref(), Some(crc_hex(&model).as_str()));
        assert!(
            f.lineage
                .iter()
                .any(|l| l.starts_with(&format!("finished at step {max_steps} "))),
            "{:?}",
            f.lineage
        );
        let blob = std::fs::read(format!("{models}/seaclr-s.seaclr")).unwrap();
        let header = seaclr_shared::blob::Header::parse(&blob).unwrap();
        let payload = &blob[seaclr_shared::blob::HEADER_LEN..][..header.payload_len as usize];
        let q = model_provenance(&format!("{models}/seaclr-s.seaclr"), "x");
        assert_eq!(q.kind, "int8 blob");
        assert_eq!(q.crc32.as_deref(), Some(crc_hex(payload).as_str()));
        assert_eq!(model_provenance("raw", "raw pixels").name, "raw pixels");
    }
}
