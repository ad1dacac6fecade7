//! IFCB (Imaging FlowCytobot) ADC rows: where each ROI's pixels lie in the
//! bin's `.roi` file. The host's data loader and the buoy's frame source
//! read bins through this one parser, so they agree on every row.
//!
//! A raw bin is `<stem>.hdr` (text header), `<stem>.adc` (CSV, one row per
//! trigger) and `<stem>.roi` (8-bit gray pixels end to end). Two ADC layouts
//! exist. The new one (24 columns) is named by the header's `ADCFileFormat:`
//! line, and the `ROIwidth`, `ROIheight` and `start_byte` columns are read by
//! name. Without that line the column count decides: the old 15-column layout
//! (width, height, start byte in columns 11, 12, 13, 0-based; a trailing
//! comma makes 16 fields) or the new 24-column one (15, 16, 17). The start
//! byte is a plain offset into the `.roi` in both; image pixels are
//! `roi[start .. start + width * height]`, `height` rows of `width` bytes.
//!
//! ```
//! use seaclr_shared::ifcb::{AdcRow, parse_adc_row};
//!
//! let old_layout = "1,0,0,0,0,0,0,0,0,0,0,96,45,1,0,";
//! let row = parse_adc_row(old_layout, None).unwrap();
//! assert_eq!(row, Some(AdcRow { width: 96, height: 45, start_byte: 1 }));
//! assert_eq!(row.unwrap().end_byte(), 1 + 96 * 45);
//! ```

use core::fmt;

/// Column positions (0-based) of ROI width, height and start byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdcColumns {
    /// `ROIwidth`.
    pub width: usize,
    /// `ROIheight`.
    pub height: usize,
    /// `start_byte`.
    pub start_byte: usize,
}

/// The old 15-column layout (IFCB1 to IFCB6 era).
pub const OLD_LAYOUT: AdcColumns = AdcColumns {
    width: 11,
    height: 12,
    start_byte: 13,
};

/// The new 24-column layout.
pub const NEW_LAYOUT: AdcColumns = AdcColumns {
    width: 15,
    height: 16,
    start_byte: 17,
};

/// Largest ROI side accepted; real ROIs are at most a few thousand pixels.
pub const MAX_ROI_SIDE: u64 = 1 << 16;

impl AdcColumns {
    /// The columns named by a header's `ADCFileFormat:` line: `None` when the
    /// header has no such line, an error when the line lacks a column.
    pub fn from_header(header: &str) -> Option<Result<AdcColumns, AdcError>> {
        let line = header
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("ADCFileFormat:"))?;
        let find = |name: &str| {
            line.split(',')
                .position(|n| n.trim().eq_ignore_ascii_case(name))
        };
        Some(
            match (find("roiwidth"), find("roiheight"), find("start_byte")) {
                (Some(width), Some(height), Some(start_byte)) => Ok(AdcColumns {
                    width,
                    height,
                    start_byte,
                }),
                _ => Err(AdcError::HeaderLacksColumns),
            },
        )
    }

    /// The layout implied by a row's field count, if it is a known one.
    pub fn from_field_count(fields: usize) -> Option<AdcColumns> {
        match fields {
            15 | 16 => Some(OLD_LAYOUT),
            24 | 25 => Some(NEW_LAYOUT),
            _ => None,
        }
    }
}

/// Where one ROI's pixels lie in the `.roi` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdcRow {
    /// ROI width in pixels (the fast axis of the stored bytes).
    pub width: u32,
    /// ROI height in pixels.
    pub height: u32,
    /// Offset of the first pixel in the `.roi`.
    pub start_byte: u64,
}

impl AdcRow {
    /// Offset just past the last pixel: the `.roi` must be at least this long.
    pub fn end_byte(&self) -> u64 {
        self.start_byte
            .saturating_add(u64::from(self.width) * u64::from(self.height))
    }
}

/// Why an ADC row cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdcError {
    /// No `ADCFileFormat:` columns and a field count of no known layout.
    UnknownLayout {
        /// Fields in the row.
        fields: usize,
    },
    /// The header's `ADCFileFormat:` line names no ROIwidth, ROIheight or
    /// start_byte column.
    HeaderLacksColumns,
    /// A needed column is missing or not a non-negative integer.
    BadField {
        /// Its 0-based position.
        column: usize,
    },
    /// Width or height above [`MAX_ROI_SIDE`].
    AbsurdSize {
        /// Width from the row.
        width: u64,
        /// Height from the row.
        height: u64,
    },
}

impl fmt::Display for AdcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdcError::UnknownLayout { fields } => write!(
                f,
                "ADC row has {fields} fields: neither the 15-column nor the 24-column layout, \
                 and the header has no ADCFileFormat line"
            ),
            AdcError::HeaderLacksColumns => {
                f.write_str("ADCFileFormat names no ROIwidth/ROIheight/start_byte columns")
            }
            AdcError::BadField { column } => {
                write!(
                    f,
                    "column {column} is missing or not a non-negative integer"
                )
            }
            AdcError::AbsurdSize { width, height } => {
                write!(f, "ROI size {width}x{height} is absurd")
            }
        }
    }
}

/// Parses an ADC number that must be a non-negative integer (ADC files
/// write them as `96` or `96.0`).
fn parse_count(field: &str) -> Option<u64> {
    let field = field.trim();
    if let Ok(v) = field.parse::<u64>() {
        return Some(v);
    }
    let f: f64 = field.parse().ok()?;
    // `f64::fract` needs std; a round trip through u64 checks integrality.
    ((0.0..1e15).contains(&f) && (f as u64) as f64 == f).then_some(f as u64)
}

/// Parses one ADC row with the header's columns (or, without them, the
/// layout its field count implies). `Ok(None)`: a trigger without an image
/// (width or height 0).
pub fn parse_adc_row(
    line: &str,
    header_columns: Option<AdcColumns>,
) -> Result<Option<AdcRow>, AdcError> {
    let fields = line.split(',').count();
    let columns = header_columns
        .or_else(|| AdcColumns::from_field_count(fields))
        .ok_or(AdcError::UnknownLayout { fields })?;
    let get = |column: usize| {
        line.split(',')
            .nth(column)
            .and_then(parse_count)
            .ok_or(AdcError::BadField { column })
    };
    let (width, height, start_byte) = (
        get(columns.width)?,
        get(columns.height)?,
        get(columns.start_byte)?,
    );
    if width == 0 || height == 0 {
        return Ok(None);
    }
    if width > MAX_ROI_SIDE || height > MAX_ROI_SIDE {
        return Err(AdcError::AbsurdSize { width, height });
    }
    Ok(Some(AdcRow {
        width: width as u32,
        height: height as u32,
        start_byte,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn old_row(w: &str, h: &str, s: &str) -> std::string::String {
        std::format!("1,0,0,0,0,0,0,0,0,0,0,{w},{h},{s},0,")
    }

    #[test]
    fn header_columns_are_read_by_name() {
        let header = "x: 1\nADCFileFormat: trigger#, ADC_time, a, b, c, d, e, f, g, h, i, j, k, \
                      ROIx, ROIy, ROIwidth, ROIheight,start_byte, z\n";
        assert_eq!(AdcColumns::from_header(header), Some(Ok(NEW_LAYOUT)));
        assert_eq!(AdcColumns::from_header("no format line"), None);
        assert_eq!(
            AdcColumns::from_header("ADCFileFormat: a, b"),
            Some(Err(AdcError::HeaderLacksColumns))
        );
    }

    #[test]
    fn rows_of_both_layouts_parse() {
        assert_eq!(
            parse_adc_row(&old_row("2", "3.0", "40"), None),
            Ok(Some(AdcRow {
                width: 2,
                height: 3,
                start_byte: 40
            }))
        );
        let mut new = ["0"; 24];
        new[15] = "88";
        new[16] = "34";
        new[17] = "7";
        let line = new.join(",");
        assert_eq!(
            parse_adc_row(&line, None).unwrap().unwrap().end_byte(),
            7 + 88 * 34
        );
        // The header's columns win over the count.
        assert_eq!(
            parse_adc_row(&line, Some(OLD_LAYOUT)),
            Ok(None),
            "columns 11-13 hold zeros: a trigger without an image"
        );
    }

    #[test]
    fn bad_rows_say_why() {
        assert_eq!(
            parse_adc_row("1,2,3", None),
            Err(AdcError::UnknownLayout { fields: 3 })
        );
        assert_eq!(
            parse_adc_row(&old_row("x", "3", "0"), None),
            Err(AdcError::BadField { column: 11 })
        );
        assert_eq!(
            parse_adc_row(&old_row("-2", "3", "0"), None),
            Err(AdcError::BadField { column: 11 })
        );
        assert_eq!(
            parse_adc_row(&old_row("2", "2.5", "0"), None),
            Err(AdcError::BadField { column: 12 })
        );
        assert_eq!(
            parse_adc_row(&old_row("100000", "3", "0"), None),
            Err(AdcError::AbsurdSize {
                width: 100000,
                height: 3
            })
        );
        assert_eq!(parse_adc_row(&old_row("0", "0", "0"), None), Ok(None));
        let huge = old_row("3", "3", "18446744073709551615");
        assert_eq!(
            parse_adc_row(&huge, None).unwrap().unwrap().end_byte(),
            u64::MAX
        );
        assert!(std::format!("{}", AdcError::BadField { column: 11 }).contains("column 11"));
    }
}
