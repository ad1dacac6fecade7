//! Manifest CSVs: `path,label[,group,subset]`, one image per row.
//!
//! A header row is optional; when present it names the columns (any order,
//! `path` required). Without a header the columns are positional. An empty
//! label means unlabelled. Paths are relative to a base directory (the
//! manifest's own folder for `load`, the data root for split manifests) or
//! absolute. The split tool writes these files with [`write_manifest`].
//!
//! Paths are text written with [`seaclr_shared::walk::escape_path`], so a
//! file name that is not valid UTF-8 survives the round trip: its
//! undecodable bytes are written `\xHH` (two hex digits), a literal
//! backslash `\\` and control characters `\xHH`; any other text is
//! written as is. Loaders read the path back with
//! [`seaclr_shared::walk::unescape_path`] (a backslash that starts no such
//! escape is kept as it is). Labels are written the same way.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::{Group, Subset};

/// One manifest row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRow {
    /// Image path as written (relative or absolute), escaped (see the module docs).
    pub path: String,
    /// Class label, `None` when empty or absent.
    pub label: Option<String>,
    /// Seen/unseen group, when the manifest has one.
    pub group: Option<Group>,
    /// Train/val/test subset, when the manifest has one.
    pub subset: Option<Subset>,
}

/// Reads a manifest CSV. Malformed rows (bad group/subset names, missing
/// path) are errors naming the file and line: a manifest is written by a
/// tool or a person on purpose, so a typo must not silently drop images.
pub fn read_manifest(csv_path: &Path) -> Result<Vec<ManifestRow>> {
    let bytes = fs::read(csv_path)
        .with_context(|| format!("{}: cannot read manifest", csv_path.display()))?;
    parse_manifest(&bytes).with_context(|| format!("{}: bad manifest", csv_path.display()))
}

/// Parses manifest CSV bytes (see the module docs).
pub fn parse_manifest(bytes: &[u8]) -> Result<Vec<ManifestRow>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let mut rows = Vec::new();
    let mut columns = [Some(0), Some(1), Some(2), Some(3)]; // path, label, group, subset
    for (i, record) in reader.records().enumerate() {
        let line = i + 1;
        let record = record.with_context(|| format!("line {line}: not valid CSV"))?;
        if i == 0 && record.iter().any(|f| f.eq_ignore_ascii_case("path")) {
            let find = |name: &str| record.iter().position(|f| f.eq_ignore_ascii_case(name));
            columns = [find("path"), find("label"), find("group"), find("subset")];
            continue;
        }
        if record.iter().all(|f| f.is_empty()) {
            continue;
        }
        let get = |c: Option<usize>| c.and_then(|c| record.get(c)).filter(|f| !f.is_empty());
        let Some(path) = get(columns[0]) else {
            bail!("line {line}: empty path");
        };
        let group = match get(columns[2]) {
            None => None,
            Some(g) => Some(
                g.parse::<Group>()
                    .map_err(|e| anyhow::anyhow!("line {line}: {e}"))?,
            ),
        };
        let subset = match get(columns[3]) {
            None => None,
            Some(s) => Some(
                s.parse::<Subset>()
                    .map_err(|e| anyhow::anyhow!("line {line}: {e}"))?,
            ),
        };
        rows.push(ManifestRow {
            path: path.to_string(),
            label: get(columns[1]).map(str::to_string),
            group,
            subset,
        });
    }
    Ok(rows)
}

/// Writes a full split manifest (`path,label,group,subset` header, then the
/// rows in the given order, `\n` line ends) to a byte vector.
pub fn write_manifest(rows: &[ManifestRow]) -> Result<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    writer.write_record(["path", "label", "group", "subset"])?;
    for row in rows {
        writer.write_record([
            row.path.as_str(),
            row.label.as_deref().unwrap_or(""),
            row.group.map(Group::as_str).unwrap_or(""),
            row.subset.map(Subset::as_str).unwrap_or(""),
        ])?;
    }
    writer.into_inner().context("cannot finish CSV")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_positional_forms() {
        let with_header = b"label,path\ncopepod,a/1.jpg\n,b/2.jpg\n";
        let rows = parse_manifest(with_header).unwrap();
        assert_eq!(rows[0].path, "a/1.jpg");
        assert_eq!(rows[0].label.as_deref(), Some("copepod"));
        assert_eq!(rows[1].label, None);

        let positional = b"x/1.png,diatom,unseen,test\n";
        let rows = parse_manifest(positional).unwrap();
        assert_eq!(rows[0].group, Some(Group::Unseen));
        assert_eq!(rows[0].subset, Some(Subset::Test));
    }

    #[test]
    fn bad_group_names_the_line() {
        let err = format!(
            "{:#}",
            parse_manifest(b"path,label,group\na.jpg,x,maybe\n").unwrap_err()
        );
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn roundtrip_with_commas_and_quotes() {
        let rows = vec![ManifestRow {
            path: "odd, \"name\"/1.jpg".into(),
            label: Some("a,b".into()),
            group: Some(Group::Seen),
            subset: Some(Subset::Val),
        }];
        let bytes = write_manifest(&rows).unwrap();
        assert_eq!(parse_manifest(&bytes).unwrap(), rows);
    }
}
