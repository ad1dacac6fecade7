//! NumPy `.npy` files, format version 1.0: the magic `\x93NUMPY`, version
//! bytes 1 and 0, a little-endian u16 header length, then an ASCII Python
//! dict `{'descr': ..., 'fortran_order': False, 'shape': (...), }` padded
//! with spaces and a final `\n` so the data starts at a multiple of 64
//! bytes, then the elements in C order. Written dtypes: `<f4` (float32,
//! little-endian) and `|i1` (int8). The reader also takes version 2.0/3.0
//! headers (u32 length); other dtypes are refused with their name.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

/// The magic string every `.npy` file starts with.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Element type of an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// `<f4`.
    F32,
    /// `|i1`.
    I8,
}

impl Dtype {
    /// The `descr` string.
    pub fn descr(self) -> &'static str {
        match self {
            Dtype::F32 => "<f4",
            Dtype::I8 => "|i1",
        }
    }
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::I8 => 1,
        }
    }
}

/// An array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// Element type.
    pub dtype: Dtype,
    /// Shape (C order).
    pub shape: Vec<usize>,
    /// Raw little-endian element bytes.
    pub data: Vec<u8>,
}

impl Array {
    /// The elements as f32 (`<f4` only).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        ensure!(
            self.dtype == Dtype::F32,
            "array is {}, not <f4",
            self.dtype.descr()
        );
        Ok(self
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
    /// The elements as i8 (`|i1` only).
    pub fn to_i8(&self) -> Result<Vec<i8>> {
        ensure!(
            self.dtype == Dtype::I8,
            "array is {}, not |i1",
            self.dtype.descr()
        );
        Ok(self.data.iter().map(|&b| b as i8).collect())
    }
}

/// The header bytes (magic to the final `\n`) of an array.
pub fn header(dtype: Dtype, shape: &[usize]) -> Vec<u8> {
    let shape_text = match shape {
        [one] => format!("({one},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
        dtype.descr()
    );
    // 6 magic + 2 version + 2 length + dict + '\n', padded to 64.
    let unpadded = 10 + dict.len() + 1;
    let padded = unpadded.div_ceil(64) * 64;
    dict.extend(std::iter::repeat_n(' ', padded - unpadded));
    dict.push('\n');
    let mut out = Vec::with_capacity(padded);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// A whole `.npy` file of float32 values.
pub fn encode_f32(shape: &[usize], values: &[f32]) -> Result<Vec<u8>> {
    ensure!(
        shape.iter().product::<usize>() == values.len(),
        "shape {shape:?} does not hold {} values",
        values.len()
    );
    let mut out = header(Dtype::F32, shape);
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    Ok(out)
}

/// A whole `.npy` file of int8 values.
pub fn encode_i8(shape: &[usize], values: &[i8]) -> Result<Vec<u8>> {
    ensure!(
        shape.iter().product::<usize>() == values.len(),
        "shape {shape:?} does not hold {} values",
        values.len()
    );
    let mut out = header(Dtype::I8, shape);
    out.extend(values.iter().map(|&v| v as u8));
    Ok(out)
}

/// Parses a `.npy` file (C order, `<f4` or `|i1`).
pub fn decode(bytes: &[u8]) -> Result<Array> {
    ensure!(
        bytes.len() >= 10 && bytes[..6] == MAGIC[..],
        "not a .npy file (no \\x93NUMPY magic)"
    );
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            ensure!(bytes.len() >= 12, "truncated .npy header");
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => bail!(".npy format version {v} is not supported"),
    };
    let end = start + header_len;
    ensure!(bytes.len() >= end, "truncated .npy header");
    let dict = std::str::from_utf8(&bytes[start..end]).context(".npy header is not text")?;
    let value = |key: &str| -> Result<&str> {
        let at = dict
            .find(&format!("'{key}'"))
            .with_context(|| format!(".npy header has no '{key}'"))?;
        let rest = dict[at + key.len() + 2..].trim_start();
        let rest = rest
            .strip_prefix(':')
            .context(".npy header: ':' expected")?;
        Ok(rest.trim_start())
    };
    let descr = value("descr")?;
    let dtype = if descr.starts_with("'<f4'") {
        Dtype::F32
    } else if descr.starts_with("'|i1'") || descr.starts_with("'<i1'") {
        Dtype::I8
    } else {
        bail!(
            ".npy dtype {} is not supported (only <f4 and |i1)",
            descr.split(',').next().unwrap_or(descr)
        );
    };
    ensure!(
        value("fortran_order")?.starts_with("False"),
        "Fortran-order .npy arrays are not supported"
    );
    let shape_text = value("shape")?;
    let close = shape_text.find(')').context(".npy header: bad shape")?;
    let shape = shape_text[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().context(".npy header: bad shape"))
        .collect::<Result<Vec<_>>>()?;
    let len = shape.iter().product::<usize>() * dtype.size();
    ensure!(
        bytes.len() - end == len,
        ".npy data is {} bytes, the shape {shape:?} needs {len}",
        bytes.len() - end
    );
    Ok(Array {
        dtype,
        shape,
        data: bytes[end..].to_vec(),
    })
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    decode(&bytes).with_context(|| path.display().to_string())
}

/// The sidecar of `X.npy`: `X.ids.csv`.
pub fn ids_path(npy: &Path) -> std::path::PathBuf {
    npy.with_extension("ids.csv")
}

/// Writes the ids sidecar: a CSV `path,label` with one row per array row,
/// in order (the ids of `seaclr embed`'s CSV, escaped the same way).
pub fn write_ids(path: &Path, ids: &[(String, Option<String>)]) -> Result<()> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(["path", "label"])?;
    for (p, l) in ids {
        w.write_record([p.as_str(), l.as_deref().unwrap_or("")])?;
    }
    let bytes = w.into_inner().context("cannot finish CSV")?;
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
