//! Training curves from a run folder: `steps.csv`
//! (`step,epoch,lr,loss,views_per_s`) and `epochs.csv`
//! (`epoch,train_loss,val_loss`). A missing file is not an error (a run may
//! have no validation); a malformed one is, naming the file and line.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

/// The curves of one run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrainingCurves {
    /// `(step, loss)` per logged step.
    pub step_loss: Vec<(f64, f64)>,
    /// `(step, learning rate)`.
    pub step_lr: Vec<(f64, f64)>,
    /// `(epoch, train loss, val loss)`; val is `None` when empty.
    pub epochs: Vec<(f64, f64, Option<f64>)>,
    /// Files that were not found.
    pub missing: Vec<String>,
}

/// Reads a CSV with a header into rows of named columns.
fn read_columns(path: &Path, wanted: &[&str]) -> anyhow::Result<Option<Vec<Vec<String>>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", path.display())),
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .collect();
    let positions: Vec<usize> = wanted
        .iter()
        .map(|w| {
            header
                .iter()
                .position(|h| h == w)
                .with_context(|| format!("{}: header has no column `{w}`", path.display()))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let row = positions
            .iter()
            .map(|&p| cells.get(p).map(|s| s.to_string()))
            .collect::<Option<Vec<_>>>()
            .with_context(|| format!("{}: line {} has too few columns", path.display(), n + 2))?;
        rows.push(row);
    }
    Ok(Some(rows))
}

fn number(path: &Path, line: usize, s: &str) -> anyhow::Result<f64> {
    s.parse()
        .with_context(|| format!("{}: line {line}: `{s}` is not a number", path.display()))
}

/// Reads the curves of the run folder `dir`.
pub fn read_run(dir: &Path) -> anyhow::Result<TrainingCurves> {
    let mut curves = TrainingCurves::default();
    let steps = dir.join("steps.csv");
    match read_columns(&steps, &["step", "lr", "loss"])? {
        Some(rows) => {
            for (i, r) in rows.iter().enumerate() {
                let step = number(&steps, i + 2, &r[0])?;
                curves.step_lr.push((step, number(&steps, i + 2, &r[1])?));
                curves.step_loss.push((step, number(&steps, i + 2, &r[2])?));
            }
        }
        None => curves.missing.push(steps.display().to_string()),
    }
    let epochs = dir.join("epochs.csv");
    match read_columns(&epochs, &["epoch", "train_loss", "val_loss"])? {
        Some(rows) => {
            for (i, r) in rows.iter().enumerate() {
                let val = if r[2].is_empty() {
                    None
                } else {
                    Some(number(&epochs, i + 2, &r[2])?)
                };
                curves.epochs.push((
                    number(&epochs, i + 2, &r[0])?,
                    number(&epochs, i + 2, &r[1])?,
                    val,
                ));
            }
        }
        None => curves.missing.push(epochs.display().to_string()),
    }
    Ok(curves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_curves_and_names_bad_lines() {
        let dir = std::env::temp_dir().join(format!("seaclr-curves-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("steps.csv"),
            "step,epoch,lr,loss,views_per_s\n1,0,0.1,5.5,100\n2,0,0.2,5.0,110\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("epochs.csv"),
            "epoch,train_loss,val_loss\n0,5.2,\n1,4.0,4.5\n",
        )
        .unwrap();
        let c = read_run(&dir).unwrap();
        assert_eq!(c.step_loss, vec![(1.0, 5.5), (2.0, 5.0)]);
        assert_eq!(c.step_lr[1], (2.0, 0.2));
        assert_eq!(c.epochs, vec![(0.0, 5.2, None), (1.0, 4.0, Some(4.5))]);
        std::fs::write(
            dir.join("epochs.csv"),
            "epoch,train_loss,val_loss\n0,abc,1\n",
        )
        .unwrap();
        let err = format!("{:#}", read_run(&dir).unwrap_err());
        assert!(
            err.contains("epochs.csv: line 2") && err.contains("abc"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let empty = read_run(&dir).unwrap();
        assert_eq!(empty.missing.len(), 2);
    }
}
