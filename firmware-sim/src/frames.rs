//! Frame sources: what the buoy's camera delivers, one region of interest
//! (ROI) at a time, as 8-bit gray pixels.
//!
//! - [`FolderSource`]: image files in a folder (recursively). When the
//!   folder has class subfolders, a frame's `truth` is its folder name, so a
//!   run can score itself; the buoy itself never looks at it.
//! - [`IfcbSource`]: one Imaging FlowCytobot bin (`.hdr`/`.adc`/`.roi`),
//!   ROIs in trigger order. A small reader of its own: the simulator must
//!   not depend on the host tools.
//! - [`WatchedFolder`]: a folder polled for new files, as when an
//!   instrument drops images into a directory.

use seaclr_shared::decode::decode_gray;
use seaclr_shared::ifcb::{AdcColumns, parse_adc_row};
use seaclr_shared::walk::{
    IMAGE_EXTENSIONS, MAX_FILE_BYTES, WalkOptions, check_image_size, is_image_path,
    read_regular_file, walk,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One camera frame (a single ROI), gray.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Where it came from: a file path or `<stem>.roi#<n>` (n = trigger number, 1-based).
    pub id: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row-major gray pixels, `width * height`.
    pub gray: Vec<u8>,
    /// Ground truth for scoring (class folder name), if known.
    pub truth: Option<String>,
}

/// A frame that could not be read, with the reason; the stream goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The file or ROI.
    pub id: String,
    /// What was wrong.
    pub reason: String,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.id, self.reason)
    }
}

/// What a source has right now.
#[derive(Debug)]
pub enum Next {
    /// A frame, or why the next one could not be read.
    Frame(Result<Frame, FrameError>),
    /// Nothing yet; ask again after this long (meanwhile serve the console).
    Wait(Duration),
    /// The stream has ended.
    End,
}

/// A stream of frames. `None` = the stream has ended.
pub trait FrameSource {
    /// The next frame, or why it could not be read (may block while the
    /// source waits for one).
    fn next_frame(&mut self) -> Option<Result<Frame, FrameError>>;

    /// Like [`FrameSource::next_frame`], but never blocks.
    fn poll(&mut self) -> Next {
        match self.next_frame() {
            Some(f) => Next::Frame(f),
            None => Next::End,
        }
    }
}

/// Decodes an image file to gray, with the limits and rules every source
/// shares (`seaclr_shared::walk`, `seaclr_shared::decode`): only a regular
/// file of bounded size is read, a huge header is refused before decoding.
pub fn decode_image(path: &Path, truth: Option<String>) -> Result<Frame, FrameError> {
    let id = path.display().to_string();
    let fail = |reason: String| FrameError {
        id: id.clone(),
        reason,
    };
    let bytes = read_regular_file(path, MAX_FILE_BYTES).map_err(|e| fail(e.to_string()))?;
    let gray = decode_gray(&bytes).map_err(fail)?;
    let (width, height) = gray.dimensions();
    Ok(Frame {
        id,
        width,
        height,
        gray: gray.into_raw(),
        truth,
    })
}

/// The image files under `root` by the shared walking rules; entries left
/// out (symlink loops, FIFOs, unreadable folders) become error frames.
fn list_images(root: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<FrameError>)> {
    let found = walk(root, &is_image_path, &WalkOptions::default())?;
    let skipped = found
        .skipped
        .iter()
        .map(|s| FrameError {
            id: s.path.display().to_string(),
            reason: s.reason.to_string(),
        })
        .collect();
    Ok((found.files, skipped))
}

/// Image files of a folder, in a fixed order.
pub struct FolderSource {
    root: PathBuf,
    files: Vec<PathBuf>,
    /// Entries the walk left out, reported first.
    skipped: Vec<FrameError>,
    next: usize,
}

/// Order in which a folder's images are streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Sorted by path (class folders one after another).
    ByPath,
    /// Interleaved round-robin over subfolders (by path within each), like a
    /// mixed sample passing the camera; the default.
    Interleaved,
}

impl FolderSource {
    /// Lists the images under `root`. Errors name the folder.
    pub fn new(root: &Path, order: Order) -> anyhow::Result<Self> {
        let (mut files, skipped) = list_images(root)
            .map_err(|e| anyhow::anyhow!("{}: cannot list images: {e}", root.display()))?;
        files.sort();
        if files.is_empty() {
            anyhow::bail!(
                "{}: no image files (looked for {})",
                root.display(),
                IMAGE_EXTENSIONS.join(", ")
            );
        }
        if order == Order::Interleaved {
            let mut groups: Vec<Vec<PathBuf>> = Vec::new();
            for f in files.drain(..) {
                match groups.last_mut() {
                    Some(g) if g[0].parent() == f.parent() => g.push(f),
                    _ => groups.push(vec![f]),
                }
            }
            let longest = groups.iter().map(Vec::len).max().unwrap_or(0);
            for i in 0..longest {
                files.extend(groups.iter().filter_map(|g| g.get(i).cloned()));
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            files,
            skipped,
            next: 0,
        })
    }

    /// How many frames the folder holds.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the folder holds no frames (never true after `new`).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn truth_of(&self, path: &Path) -> Option<String> {
        let parent = path.parent()?;
        if parent == self.root {
            return None;
        }
        parent.file_name().map(|n| n.to_string_lossy().into_owned())
    }
}

impl FrameSource for FolderSource {
    fn next_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        if let Some(skipped) = self.skipped.pop() {
            return Some(Err(skipped));
        }
        let path = self.files.get(self.next)?.clone();
        self.next += 1;
        let truth = self.truth_of(&path);
        Some(decode_image(&path, truth))
    }
}

/// One IFCB bin's ROIs, in trigger order.
pub struct IfcbSource {
    stem: String,
    roi: Vec<u8>,
    /// (trigger number, width, height, start byte) for image rows, or why
    /// a row is unusable (reported in its place; the rows after it stream).
    rows: Vec<Result<(usize, usize, usize, usize), FrameError>>,
    next: usize,
}

impl IfcbSource {
    /// Opens `<stem>.adc`/`.roi` (and `.hdr` for the column names); `path`
    /// may be any of the three files or the stem.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let base = match path.extension().and_then(|e| e.to_str()) {
            Some("adc" | "roi" | "hdr") => path.with_extension(""),
            _ => path.to_path_buf(),
        };
        let with = |ext: &str| PathBuf::from(format!("{}.{ext}", base.display()));
        let (adc_path, roi_path, hdr_path) = (with("adc"), with("roi"), with("hdr"));
        // Regular files only (a FIFO is never opened), of bounded size.
        let read = |p: &Path, what: &str| {
            read_regular_file(p, MAX_FILE_BYTES)
                .map_err(|e| anyhow::anyhow!("{}: cannot read IFCB {what} file: {e}", p.display()))
        };
        let adc = String::from_utf8_lossy(&read(&adc_path, "ADC")?).into_owned();
        let roi = read(&roi_path, "ROI")?;
        // The header is optional: without it the column count decides.
        let columns = match std::fs::read_to_string(&hdr_path) {
            Ok(hdr) => AdcColumns::from_header(&hdr)
                .transpose()
                .map_err(|e| anyhow::anyhow!("{}: {e}", hdr_path.display()))?,
            Err(_) => None,
        };
        let mut rows = Vec::new();
        for (line_no, line) in adc.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            // One bad row (a garbage line, or a ROI the .roi file does not
            // hold yet, as in a bin still being written) is skipped with its
            // reason, as the host tools do; the other rows still stream.
            let bad = |reason: String| FrameError {
                id: format!("{}: line {}", adc_path.display(), line_no + 1),
                reason,
            };
            let row = match parse_adc_row(line, columns) {
                Ok(Some(row)) => row,
                Ok(None) => continue, // A trigger without an image.
                Err(e) => {
                    rows.push(Err(bad(e.to_string())));
                    continue;
                }
            };
            if let Err(e) = check_image_size(row.width, row.height) {
                rows.push(Err(bad(e.to_string())));
                continue;
            }
            if row.end_byte() > roi.len() as u64 {
                rows.push(Err(bad(format!(
                    "ROI of {}x{} at byte {} runs past the end of {} ({} bytes)",
                    row.width,
                    row.height,
                    row.start_byte,
                    roi_path.display(),
                    roi.len()
                ))));
                continue;
            }
            rows.push(Ok((
                line_no + 1,
                row.width as usize,
                row.height as usize,
                row.start_byte as usize,
            )));
        }
        let stem = base
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            stem,
            roi,
            rows,
            next: 0,
        })
    }

    /// ROIs with pixels in the bin.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the bin has no ROI with pixels.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl FrameSource for IfcbSource {
    fn next_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        let row = self.rows.get(self.next)?.clone();
        self.next += 1;
        let (trigger, w, h, start) = match row {
            Ok(row) => row,
            Err(e) => return Some(Err(e)),
        };
        // ADC width is the fast (row) axis: h rows of w bytes.
        Some(Ok(Frame {
            id: format!("{}.roi#{trigger}", self.stem),
            width: w as u32,
            height: h as u32,
            gray: self.roi[start..start + w * h].to_vec(),
            truth: None,
        }))
    }
}

/// A folder polled for new image files; ends after `idle_polls` polls in a
/// row found nothing new.
pub struct WatchedFolder {
    root: PathBuf,
    seen: BTreeSet<PathBuf>,
    /// Candidates with their size at the previous poll (taken once stable).
    pending: Vec<(PathBuf, u64)>,
    /// Stable files not yet streamed, in path order.
    ready: std::collections::VecDeque<PathBuf>,
    /// Entries the walk left out, reported once each.
    reported: std::collections::VecDeque<FrameError>,
    poll: Duration,
    idle_polls: Option<u32>,
    idle: u32,
}

impl WatchedFolder {
    /// Watches `root` (which must exist), polling every `poll`; files present
    /// at start are streamed too. `idle_polls`: end after that many polls in
    /// a row without a new file (`None`: watch forever).
    pub fn new(root: &Path, poll: Duration, idle_polls: Option<u32>) -> anyhow::Result<Self> {
        if !root.is_dir() {
            anyhow::bail!("{}: not a folder to watch", root.display());
        }
        Ok(Self {
            root: root.to_path_buf(),
            seen: BTreeSet::new(),
            pending: Vec::new(),
            ready: Default::default(),
            reported: Default::default(),
            poll,
            idle_polls,
            idle: 0,
        })
    }

    /// One poll: files whose size did not change since the last poll (so a
    /// half-written file is not read) join the ready queue in path order.
    fn poll_once(&mut self) {
        let (mut now, skipped) = list_images(&self.root).unwrap_or_default();
        for s in skipped {
            if self.seen.insert(PathBuf::from(&s.id)) {
                self.reported.push_back(s);
            }
        }
        now.retain(|p| !self.seen.contains(p));
        now.sort();
        let mut next_pending = Vec::new();
        for p in now {
            let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            let before = self.pending.iter().find(|(q, _)| *q == p).map(|(_, s)| *s);
            // Stable for one poll interval, empty or not: an empty file is
            // then streamed (and reported unreadable), never waited on forever.
            if before == Some(size) {
                self.seen.insert(p.clone());
                self.ready.push_back(p);
            } else {
                next_pending.push((p, size));
            }
        }
        self.pending = next_pending;
    }
}

impl FrameSource for WatchedFolder {
    fn next_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        loop {
            match self.poll() {
                Next::Frame(f) => return Some(f),
                Next::End => return None,
                Next::Wait(d) => std::thread::sleep(d),
            }
        }
    }

    fn poll(&mut self) -> Next {
        if self.ready.is_empty() && self.reported.is_empty() {
            self.poll_once();
        }
        if let Some(skipped) = self.reported.pop_front() {
            return Next::Frame(Err(skipped));
        }
        if let Some(path) = self.ready.pop_front() {
            self.idle = 0;
            return Next::Frame(decode_image(&path, None));
        }
        // A poll that saw files still being written is not idle.
        if self.pending.is_empty() {
            self.idle += 1;
        }
        if self.idle_polls.is_some_and(|n| self.idle > n) {
            return Next::End;
        }
        Next::Wait(self.poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"))
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("seaclr-frames-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn flowcam_folder_streams_all_images_with_truth_interleaved() {
        let mut src = FolderSource::new(&data().join("flowcam-demo"), Order::Interleaved).unwrap();
        assert_eq!(src.len(), 105);
        let mut frames = Vec::new();
        while let Some(f) = src.next_frame() {
            frames.push(f.unwrap());
        }
        assert_eq!(frames.len(), 105);
        // First six frames: one per class.
        let first: BTreeSet<_> = frames[..6]
            .iter()
            .map(|f| f.truth.clone().unwrap())
            .collect();
        assert_eq!(first.len(), 6);
        assert!(
            frames
                .iter()
                .all(|f| f.gray.len() == (f.width * f.height) as usize)
        );
        assert_eq!(
            frames
                .iter()
                .filter(|f| f.truth.as_deref() == Some("Tripos"))
                .count(),
            13
        );
    }

    #[test]
    fn ifcb_bins_give_rois_in_trigger_order() {
        let mut new = IfcbSource::open(&data().join("ifcb/D20130526T095207_IFCB013")).unwrap();
        assert_eq!(new.len(), 19);
        let mut old = IfcbSource::open(&data().join("ifcb/IFCB5_2012_028_081515.adc")).unwrap();
        assert_eq!(old.len(), 6);
        let first = old.next_frame().unwrap().unwrap();
        assert_eq!(first.id, "IFCB5_2012_028_081515.roi#1");
        // Old format: first ROI is 96 x 45 at byte 1.
        assert_eq!((first.width, first.height), (96, 45));
        let mut last_trigger = 0;
        while let Some(f) = new.next_frame() {
            let f = f.unwrap();
            let trigger: usize = f.id.rsplit('#').next().unwrap().parse().unwrap();
            assert!(trigger > last_trigger);
            last_trigger = trigger;
        }
    }

    #[test]
    fn bad_ifcb_rows_are_skipped_one_by_one_with_the_file_named() {
        let d = tmp("ifcb-bad");
        let e = IfcbSource::open(&d.join("missing"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("missing.adc"), "{e}");
        // A good row, a garbage row, a good row, a row past the end of the
        // .roi file (a bin still being written): the good ones stream.
        std::fs::write(
            d.join("y.adc"),
            "1,0,0,0,0,0,0,0,0,0,0,10,10,0,\n1,2,3\n3,0,0,0,0,0,0,0,0,0,0,10,10,100,\n4,0,0,0,0,0,0,0,0,0,0,10,10,250,\n",
        )
        .unwrap();
        std::fs::write(d.join("y.roi"), [9u8; 300]).unwrap();
        let mut src = IfcbSource::open(&d.join("y")).unwrap();
        let got: Vec<_> = std::iter::from_fn(|| src.next_frame()).collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].as_ref().unwrap().id, "y.roi#1");
        let garbage = got[1].as_ref().unwrap_err().to_string();
        assert!(
            garbage.contains("y.adc: line 2") && garbage.contains("3 fields"),
            "{garbage}"
        );
        assert_eq!(got[2].as_ref().unwrap().id, "y.roi#3");
        let past = got[3].as_ref().unwrap_err().to_string();
        assert!(
            past.contains("line 4") && past.contains("past the end"),
            "{past}"
        );
    }

    #[test]
    fn hostile_folders_stream_each_image_once_and_say_what_was_left_out() {
        let d = tmp("hostile");
        for class in ["a", "b"] {
            std::fs::create_dir_all(d.join(class)).unwrap();
            image::GrayImage::from_pixel(6, 5, image::Luma([3]))
                .save(d.join(class).join("1.png"))
                .unwrap();
        }
        // A link back to the root (a loop) and a second path to a folder.
        std::os::unix::fs::symlink("..", d.join("b/dirloop")).unwrap();
        std::os::unix::fs::symlink("../a", d.join("b/again")).unwrap();
        // A FIFO named like an image: never opened (opening would block).
        let fifo = d.join("a/x.jpg");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // A small PNG whose header says 20000 x 20000.
        let mut png = Vec::new();
        image::GrayImage::from_pixel(2, 2, image::Luma([0]))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png[16..20].copy_from_slice(&20000u32.to_be_bytes());
        png[20..24].copy_from_slice(&20000u32.to_be_bytes());
        // The IHDR chunk's CRC (CRC-32/ISO-HDLC over type and data), so
        // only the size is wrong.
        let crc = seaclr_shared::blob::crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(d.join("a/big.png"), png).unwrap();
        let mut src = FolderSource::new(&d, Order::ByPath).unwrap();
        let all: Vec<_> = std::iter::from_fn(|| src.next_frame()).collect();
        let frames: Vec<_> = all.iter().filter_map(|f| f.as_ref().ok()).collect();
        let reasons: Vec<String> = all
            .iter()
            .filter_map(|f| f.as_ref().err().map(|e| e.to_string()))
            .collect();
        assert_eq!(frames.len(), 2, "{reasons:?}");
        assert!(frames.iter().all(|f| f.truth.as_deref() != Some("dirloop")));
        let has = |what: &str| reasons.iter().any(|r| r.contains(what));
        assert!(
            has("loop") && has("FIFO") && has("too large") && has("same folder"),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_watched_empty_file_is_reported_not_waited_on() {
        let d = tmp("watch-empty");
        std::fs::write(d.join("empty.jpg"), b"").unwrap();
        let mut w = WatchedFolder::new(&d, Duration::from_millis(5), Some(3)).unwrap();
        let e = w.next_frame().unwrap().unwrap_err();
        assert!(e.id.ends_with("empty.jpg"), "{e}");
        assert!(w.next_frame().is_none(), "the watch never ended");
    }

    #[test]
    fn undecodable_file_is_an_error_frame_not_a_panic() {
        let d = tmp("broken");
        std::fs::write(d.join("a.png"), b"not a png").unwrap();
        let mut src = FolderSource::new(&d, Order::ByPath).unwrap();
        let err = src.next_frame().unwrap().unwrap_err();
        assert!(
            err.id.ends_with("a.png") && err.reason.contains("not a recognised image format"),
            "{err}"
        );
        assert!(src.next_frame().is_none());
        assert!(FolderSource::new(&tmp("empty"), Order::ByPath).is_err());
    }

    #[test]
    fn watched_folder_picks_up_new_files_and_ends_when_idle() {
        let d = tmp("watch");
        image::GrayImage::from_pixel(5, 4, image::Luma([7]))
            .save(d.join("a.png"))
            .unwrap();
        let mut w = WatchedFolder::new(&d, Duration::from_millis(5), Some(3)).unwrap();
        let a = w.next_frame().unwrap().unwrap();
        assert_eq!((a.width, a.height, a.gray[0]), (5, 4, 7));
        image::GrayImage::from_pixel(3, 3, image::Luma([9]))
            .save(d.join("b.png"))
            .unwrap();
        let b = w.next_frame().unwrap().unwrap();
        assert!(b.id.ends_with("b.png"));
        assert!(w.next_frame().is_none());
    }
}
