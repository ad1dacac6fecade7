//! How every frame source on the host and on the buoy finds image files and
//! which ones it refuses: one set of rules, so a folder that the host tools
//! read is read the same way by the simulated instrument. Needs the `std`
//! feature (it uses the file system).
//!
//! Rules:
//! - [`walk`] lists the files under a folder whose name passes a filter
//!   (usually [`is_image_path`]), sorted by name within each folder,
//!   depth-first. Hidden entries (`.name`) are left out unless asked for.
//! - Symbolic links are followed, but every folder is listed at most once:
//!   folders are identified by (device, inode), so a link back to an
//!   ancestor ([`SkipReason::SymlinkLoop`]) or a second path to a folder
//!   already listed ([`SkipReason::SameFolder`]) is skipped with a reason
//!   instead of looping or multiplying frames.
//! - A matching name that is not a regular file (a FIFO, a socket, a device)
//!   is skipped ([`SkipReason::NotRegularFile`]) and never opened: opening a
//!   FIFO blocks until someone writes to it.
//! - A subfolder that cannot be listed is skipped
//!   ([`SkipReason::UnreadableFolder`]); the walk goes on. Only the root
//!   itself failing is an error.
//! - [`read_regular_file`] reads a file only if it is still a regular file
//!   no larger than a limit ([`MAX_FILE_BYTES`]).
//! - Decoded images must satisfy [`check_image_size`]: at least
//!   [`MIN_IMAGE_SIDE`] and at most [`MAX_IMAGE_SIDE`] pixels a side and at
//!   most [`MAX_IMAGE_PIXELS`] pixels. Decoders should be given these limits
//!   (and [`MAX_DECODE_ALLOC`]) before they allocate, so a small file with a
//!   huge header (a decompression bomb) is refused cheaply.
//!
//! Paths keep their bytes: nothing here converts a name to UTF-8. Where a
//! path must become text (an id, a CSV cell), [`escape_path`] writes it
//! losslessly and [`unescape`] reads it back:
//! - valid UTF-8 is written as is, except `\` (written `\\`) and ASCII
//!   control characters (written `\xHH`);
//! - every byte that is not part of valid UTF-8 is written `\xHH` (two
//!   lowercase hex digits);
//! - reading turns `\\` into `\` and `\xHH` into the byte `HH`; any other
//!   backslash is kept as it is, so hand-written paths read as before.
//!
//! ```no_run
//! use seaclr_shared::walk::{WalkOptions, is_image_path, walk};
//! let found = walk("images".as_ref(), &is_image_path, &WalkOptions::default())?;
//! for file in &found.files { /* decode it */ }
//! for skip in &found.skipped { eprintln!("skipped {skip}"); }
//! # Ok::<(), std::io::Error>(())
//! ```

use core::fmt;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;

/// File extensions treated as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "tif", "tiff", "bmp"];

/// Smallest accepted image width or height: a 1-pixel-wide image carries no
/// shape.
pub const MIN_IMAGE_SIDE: u32 = 2;
/// Largest accepted image width or height. Plankton images are tens to
/// hundreds of pixels; a header claiming more is refused.
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// Largest accepted image area in pixels (16 Mpx, 16 MiB as 8-bit gray).
pub const MAX_IMAGE_PIXELS: u64 = 1 << 24;
/// Largest allocation a decoder may make for one image (64 MiB).
pub const MAX_DECODE_ALLOC: u64 = 64 * 1024 * 1024;
/// Largest image file read into memory (64 MiB).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Default folder depth of [`WalkOptions`]: deep enough for any real
/// layout, and a bound on the work a hostile tree can cause.
pub const DEFAULT_MAX_DEPTH: usize = 32;

/// True when the path's extension is one of [`IMAGE_EXTENSIONS`]
/// (case-insensitive; the rest of the name may be any bytes).
pub fn is_image_path(path: &Path) -> bool {
    path.extension().is_some_and(|e| {
        IMAGE_EXTENSIONS
            .iter()
            .any(|x| e.as_encoded_bytes().eq_ignore_ascii_case(x.as_bytes()))
    })
}

/// True when the last component starts with `.`.
pub fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.as_encoded_bytes().first() == Some(&b'.'))
}

/// Why an image's size is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeError {
    /// A side below [`MIN_IMAGE_SIDE`].
    TooSmall {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A side above [`MAX_IMAGE_SIDE`] or an area above [`MAX_IMAGE_PIXELS`].
    TooLarge {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSmall { width, height } => write!(
                f,
                "image too small ({width}x{height}; minimum side is {MIN_IMAGE_SIDE} px)"
            ),
            Self::TooLarge { width, height } => write!(
                f,
                "image too large ({width}x{height}; maximum side is {MAX_IMAGE_SIDE} px and \
                 maximum area {MAX_IMAGE_PIXELS} px)"
            ),
        }
    }
}

impl std::error::Error for SizeError {}

/// Checks an image's dimensions against the limits every frame source
/// applies (call it with the header's dimensions before decoding, and on
/// raw ROIs).
pub fn check_image_size(width: u32, height: u32) -> Result<(), SizeError> {
    if width < MIN_IMAGE_SIDE || height < MIN_IMAGE_SIDE {
        return Err(SizeError::TooSmall { width, height });
    }
    if width > MAX_IMAGE_SIDE
        || height > MAX_IMAGE_SIDE
        || u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS
    {
        return Err(SizeError::TooLarge { width, height });
    }
    Ok(())
}

/// What kind of file system object a non-regular file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A folder where a file was expected.
    Folder,
    /// Anything else.
    Other,
}

impl FileKind {
    fn of(meta: &fs::Metadata) -> FileKind {
        let t = meta.file_type();
        if t.is_dir() {
            return FileKind::Folder;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if t.is_fifo() {
                return FileKind::Fifo;
            }
            if t.is_socket() {
                return FileKind::Socket;
            }
            if t.is_char_device() {
                return FileKind::CharDevice;
            }
            if t.is_block_device() {
                return FileKind::BlockDevice;
            }
        }
        FileKind::Other
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fifo => "a FIFO (named pipe)",
            Self::Socket => "a socket",
            Self::CharDevice => "a character device",
            Self::BlockDevice => "a block device",
            Self::Folder => "a folder",
            Self::Other => "an unknown kind of file",
        })
    }
}

/// Why an entry was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The name matched but it is not a regular file; it was not opened.
    NotRegularFile(FileKind),
    /// A subfolder that cannot be listed (the error text).
    UnreadableFolder(String),
    /// An entry whose type cannot be read (a broken link, no permission).
    Unreadable(String),
    /// A link back to a folder that is being walked (it contains itself).
    SymlinkLoop {
        /// The folder it leads back to.
        target: PathBuf,
    },
    /// A second path to a folder already listed.
    SameFolder {
        /// The path it was listed under.
        first: PathBuf,
    },
    /// A folder deeper than the walk goes (`WalkOptions::max_depth`).
    TooDeep {
        /// The depth limit.
        max_depth: usize,
    },
    /// A file larger than the limit.
    TooLarge {
        /// File size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRegularFile(kind) => write!(f, "{kind}, not a regular file; not opened"),
            Self::UnreadableFolder(e) => write!(f, "cannot list folder: {e}"),
            Self::TooDeep { max_depth } => write!(
                f,
                "folder more than {max_depth} levels below the root; not read"
            ),
            Self::Unreadable(e) => write!(f, "cannot read: {e}"),
            Self::SymlinkLoop { target } => write!(
                f,
                "symbolic link loop: leads back to {}",
                escape_path(target)
            ),
            Self::SameFolder { first } => {
                write!(f, "same folder as {}, listed once", escape_path(first))
            }
            Self::TooLarge { bytes, max } => {
                write!(f, "file too large ({bytes} bytes; maximum {max} bytes)")
            }
        }
    }
}

/// An entry left out of a walk, with its path (bytes kept) and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file or folder.
    pub path: PathBuf,
    /// Why.
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", escape_path(&self.path), self.reason)
    }
}

/// How far and what to walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkOptions {
    /// Folder levels to descend: 1 lists the root's own files, 2 also the
    /// files of its subfolders, and so on. Deeper entries are not looked at.
    pub max_depth: usize,
    /// Leave out entries whose name starts with `.`.
    pub skip_hidden: bool,
}

impl Default for WalkOptions {
    fn default() -> Self {
        Self {
            max_depth: DEFAULT_MAX_DEPTH,
            skip_hidden: true,
        }
    }
}

/// What a walk found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walk {
    /// Regular files whose names passed the filter, in walk order (sorted by
    /// name within each folder, a folder's entries where its name sorts).
    pub files: Vec<PathBuf>,
    /// Entries left out, with the reason, in walk order.
    pub skipped: Vec<Skipped>,
}

/// Walks `root` (see the module rules) and returns the regular files whose
/// names pass `accept`. Only the root not being a listable folder is an
/// error; everything below it that cannot be used is a [`Skipped`].
pub fn walk(
    root: &Path,
    accept: &dyn Fn(&Path) -> bool,
    options: &WalkOptions,
) -> io::Result<Walk> {
    walk_with(root, accept, options, &mut list_names)
}

/// Entry names of a folder, unsorted.
fn list_names(dir: &Path) -> io::Result<Vec<OsString>> {
    fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect()
}

/// Identity of a folder: (device, inode) on Unix, the canonical path elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DirId {
    #[cfg(unix)]
    Inode(u64, u64),
    #[cfg(not(unix))]
    Path(PathBuf),
}

#[cfg(unix)]
fn dir_id(_path: &Path, meta: &fs::Metadata) -> io::Result<DirId> {
    use std::os::unix::fs::MetadataExt;
    Ok(DirId::Inode(meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn dir_id(path: &Path, _meta: &fs::Metadata) -> io::Result<DirId> {
    Ok(DirId::Path(fs::canonicalize(path)?))
}

struct Walker<'a> {
    accept: &'a dyn Fn(&Path) -> bool,
    options: WalkOptions,
    lister: &'a mut dyn FnMut(&Path) -> io::Result<Vec<OsString>>,
    /// Every folder listed so far, with the path it was listed under.
    visited: HashMap<DirId, PathBuf>,
    /// Folders on the current descent path.
    ancestors: Vec<DirId>,
    out: Walk,
}

impl Walker<'_> {
    fn descend(&mut self, dir: &Path, depth: usize) {
        let mut names = match (self.lister)(dir) {
            Ok(names) => names,
            Err(e) => {
                self.out.skipped.push(Skipped {
                    path: dir.to_path_buf(),
                    reason: SkipReason::UnreadableFolder(e.to_string()),
                });
                return;
            }
        };
        names.sort();
        for name in names {
            let path = dir.join(&name);
            if self.options.skip_hidden && is_hidden(&path) {
                continue;
            }
            let accepted = (self.accept)(&path);
            // Follows symbolic links: linked class folders and files work.
            let meta = match fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) => {
                    if accepted {
                        self.out.skipped.push(Skipped {
                            path,
                            reason: SkipReason::Unreadable(e.to_string()),
                        });
                    }
                    continue;
                }
            };
            if meta.is_dir() {
                self.enter(&path, &meta, depth + 1);
            } else if accepted {
                if meta.is_file() {
                    self.out.files.push(path);
                } else {
                    self.out.skipped.push(Skipped {
                        path,
                        reason: SkipReason::NotRegularFile(FileKind::of(&meta)),
                    });
                }
            }
        }
    }

    fn enter(&mut self, dir: &Path, meta: &fs::Metadata, depth: usize) {
        let id = match dir_id(dir, meta) {
            Ok(id) => id,
            Err(e) => {
                self.out.skipped.push(Skipped {
                    path: dir.to_path_buf(),
                    reason: SkipReason::UnreadableFolder(e.to_string()),
                });
                return;
            }
        };
        if let Some(first) = self.visited.get(&id) {
            let reason = if self.ancestors.contains(&id) {
                SkipReason::SymlinkLoop {
                    target: first.clone(),
                }
            } else {
                SkipReason::SameFolder {
                    first: first.clone(),
                }
            };
            self.out.skipped.push(Skipped {
                path: dir.to_path_buf(),
                reason,
            });
            return;
        }
        if depth > self.options.max_depth {
            // Named, not silently dropped: a folder below the layout may
            // hold images someone expected to be read.
            self.out.skipped.push(Skipped {
                path: dir.to_path_buf(),
                reason: SkipReason::TooDeep {
                    max_depth: self.options.max_depth,
                },
            });
            return;
        }
        self.visited.insert(id.clone(), dir.to_path_buf());
        self.ancestors.push(id);
        self.descend(dir, depth);
        self.ancestors.pop();
    }
}

/// [`walk`] with the folder listing supplied by the caller (tests use it to
/// make a folder unreadable even for the super-user).
fn walk_with(
    root: &Path,
    accept: &dyn Fn(&Path) -> bool,
    options: &WalkOptions,
    lister: &mut dyn FnMut(&Path) -> io::Result<Vec<OsString>>,
) -> io::Result<Walk> {
    let meta = fs::metadata(root)?;
    if !meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::NotADirectory, "not a folder"));
    }
    // The root must be listable: a source that cannot be read at all is an
    // error, not a skip.
    lister(root)?;
    let id = dir_id(root, &meta)?;
    let mut walker = Walker {
        accept,
        options: *options,
        lister,
        visited: HashMap::new(),
        ancestors: Vec::new(),
        out: Walk::default(),
    };
    if options.max_depth == 0 {
        return Ok(walker.out);
    }
    walker.visited.insert(id.clone(), root.to_path_buf());
    walker.ancestors.push(id);
    walker.descend(root, 1);
    Ok(walker.out)
}

/// Reads a whole file if it is a regular file of at most `max_bytes`
/// (checked before it is opened, so a FIFO is never opened, and again on
/// the open handle). The error is the reason to report.
pub fn read_regular_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, SkipReason> {
    let unreadable = |e: io::Error| SkipReason::Unreadable(e.to_string());
    let check = |meta: &fs::Metadata| -> Result<(), SkipReason> {
        if !meta.is_file() {
            return Err(SkipReason::NotRegularFile(FileKind::of(meta)));
        }
        if meta.len() > max_bytes {
            return Err(SkipReason::TooLarge {
                bytes: meta.len(),
                max: max_bytes,
            });
        }
        Ok(())
    };
    check(&fs::metadata(path).map_err(unreadable)?)?;
    let file = fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    check(&meta)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // One byte more than allowed tells a file that grew after the check.
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > max_bytes {
        return Err(SkipReason::TooLarge {
            bytes: bytes.len() as u64,
            max: max_bytes,
        });
    }
    Ok(bytes)
}

/// Writes raw bytes as text, losslessly (see the module docs).
pub fn escape_bytes(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_ascii_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Reads text written by [`escape_bytes`] back to the bytes.
pub fn unescape_bytes(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'x')
                && let Some(value) = bytes
                    .get(i + 2..i + 4)
                    .and_then(|h| core::str::from_utf8(h).ok())
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// A file name or path as lossless text (see the module docs).
pub fn escape(name: &OsStr) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        escape_bytes(name.as_bytes())
    }
    #[cfg(not(unix))]
    {
        // Elsewhere names are Unicode (WTF-8 at worst): lossy only for
        // unpaired surrogates.
        escape_bytes(name.to_string_lossy().as_bytes())
    }
}

/// [`escape`] for a path.
pub fn escape_path(path: &Path) -> String {
    escape(path.as_os_str())
}

/// Reads a name written by [`escape`] back, with its original bytes.
pub fn unescape(text: &str) -> OsString {
    let bytes = unescape_bytes(text);
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(bytes)
    }
    #[cfg(not(unix))]
    {
        OsString::from(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// [`unescape`] as a path.
pub fn unescape_path(text: &str) -> PathBuf {
    PathBuf::from(unescape(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::vec;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "seaclr-walk-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(root: &Path, files: &[PathBuf]) -> Vec<String> {
        files
            .iter()
            .map(|p| escape_path(p.strip_prefix(root).unwrap()))
            .collect()
    }

    #[test]
    fn files_are_sorted_hidden_and_other_names_left_out() {
        let root = tmp("sorted");
        fs::create_dir_all(root.join("b")).unwrap();
        fs::create_dir_all(root.join("a/deep")).unwrap();
        fs::create_dir_all(root.join(".hidden")).unwrap();
        for f in [
            "b/2.png",
            "b/1.JPG",
            "a/x.tif",
            "a/deep/y.bmp",
            "a/notes.txt",
            ".hidden/z.png",
            "a/.w.png",
            "top.jpeg",
        ] {
            fs::write(root.join(f), b"x").unwrap();
        }
        let w = walk(&root, &is_image_path, &WalkOptions::default()).unwrap();
        assert_eq!(
            names(&root, &w.files),
            ["a/deep/y.bmp", "a/x.tif", "b/1.JPG", "b/2.png", "top.jpeg"]
        );
        assert!(w.skipped.is_empty(), "{:?}", w.skipped);
        let shallow = WalkOptions {
            max_depth: 2,
            ..WalkOptions::default()
        };
        let w = walk(&root, &is_image_path, &shallow).unwrap();
        assert_eq!(
            names(&root, &w.files),
            ["a/x.tif", "b/1.JPG", "b/2.png", "top.jpeg"]
        );
        // The folder below the depth limit is named, not silently dropped.
        assert_eq!(w.skipped.len(), 1, "{:?}", w.skipped);
        assert_eq!(w.skipped[0].path, root.join("a/deep"));
        assert_eq!(w.skipped[0].reason, SkipReason::TooDeep { max_depth: 2 });
        let with_hidden = WalkOptions {
            skip_hidden: false,
            ..WalkOptions::default()
        };
        assert_eq!(
            walk(&root, &is_image_path, &with_hidden)
                .unwrap()
                .files
                .len(),
            7
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_are_skipped_with_a_reason() {
        use std::os::unix::fs::symlink;
        let root = tmp("loops");
        fs::create_dir_all(root.join("classA")).unwrap();
        fs::create_dir_all(root.join("classB")).unwrap();
        fs::write(root.join("classA/1.png"), b"x").unwrap();
        fs::write(root.join("classB/2.png"), b"x").unwrap();
        // Two loops (the issue's hang) and a second path to a folder.
        symlink(".", root.join("classB/dirloop")).unwrap();
        symlink("..", root.join("classB/uploop")).unwrap();
        symlink("classA", root.join("alias")).unwrap();
        let w = walk(&root, &is_image_path, &WalkOptions::default()).unwrap();
        // `alias` sorts first, so classA's image is listed under it, once.
        assert_eq!(names(&root, &w.files), ["alias/1.png", "classB/2.png"]);
        let reasons: Vec<String> = w.skipped.iter().map(|s| format!("{s}")).collect();
        assert_eq!(w.skipped.len(), 3, "{reasons:?}");
        assert!(
            matches!(w.skipped[0].reason, SkipReason::SameFolder { .. }),
            "{reasons:?}"
        );
        assert!(w.skipped[0].path.ends_with("classA"));
        assert!(matches!(
            w.skipped[1].reason,
            SkipReason::SymlinkLoop { .. }
        ));
        assert!(w.skipped[1].path.ends_with("classB/dirloop"));
        assert!(matches!(
            w.skipped[2].reason,
            SkipReason::SymlinkLoop { .. }
        ));
        assert!(reasons[1].contains("symbolic link loop"), "{reasons:?}");
        // At the host's class-folder depth the loops lie at the depth limit:
        // still reported as loops, not silently dropped.
        let layout = WalkOptions {
            max_depth: 2,
            ..WalkOptions::default()
        };
        let w = walk(&root, &is_image_path, &layout).unwrap();
        let loops = w
            .skipped
            .iter()
            .filter(|s| matches!(s.reason, SkipReason::SymlinkLoop { .. }))
            .count();
        assert_eq!(loops, 2, "{:?}", w.skipped);
        fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_fifo_with_an_image_name_is_skipped_not_opened() {
        let root = tmp("fifo");
        fs::write(root.join("a.png"), b"x").unwrap();
        let fifo = root.join("x.jpg");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !status.is_ok_and(|s| s.success()) {
            std::eprintln!("mkfifo not available; skipping");
            return;
        }
        let w = walk(&root, &is_image_path, &WalkOptions::default()).unwrap();
        assert_eq!(names(&root, &w.files), ["a.png"]);
        assert_eq!(
            w.skipped,
            vec![Skipped {
                path: fifo.clone(),
                reason: SkipReason::NotRegularFile(FileKind::Fifo)
            }]
        );
        // Reading it directly is refused too, without blocking.
        assert_eq!(
            read_regular_file(&fifo, 100),
            Err(SkipReason::NotRegularFile(FileKind::Fifo))
        );
        assert!(format!("{}", w.skipped[0]).contains("FIFO"));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_unreadable_subfolder_is_skipped_and_the_walk_goes_on() {
        let root = tmp("unreadable");
        fs::create_dir_all(root.join("a")).unwrap();
        fs::create_dir_all(root.join("b")).unwrap();
        fs::write(root.join("a/1.png"), b"x").unwrap();
        fs::write(root.join("b/2.png"), b"x").unwrap();
        // The super-user reads any folder, so the failure is injected.
        let blocked = root.join("a");
        let mut lister = |dir: &Path| {
            if dir == blocked {
                Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "Permission denied",
                ))
            } else {
                list_names(dir)
            }
        };
        let w = walk_with(&root, &is_image_path, &WalkOptions::default(), &mut lister).unwrap();
        assert_eq!(names(&root, &w.files), ["b/2.png"]);
        assert_eq!(w.skipped.len(), 1);
        assert_eq!(w.skipped[0].path, blocked);
        assert!(format!("{}", w.skipped[0]).contains("cannot list folder: Permission denied"));
        // The root itself unreadable is an error.
        let mut deny_all = |_: &Path| -> io::Result<Vec<OsString>> {
            Err(io::Error::new(io::ErrorKind::PermissionDenied, "no"))
        };
        assert!(
            walk_with(
                &root,
                &is_image_path,
                &WalkOptions::default(),
                &mut deny_all
            )
            .is_err()
        );
        assert!(
            walk(
                &root.join("missing"),
                &is_image_path,
                &WalkOptions::default()
            )
            .is_err()
        );
        assert!(
            walk(
                &root.join("a/1.png"),
                &is_image_path,
                &WalkOptions::default()
            )
            .is_err()
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_real_unreadable_subfolder_is_skipped() {
        use std::os::unix::fs::PermissionsExt;
        let root = tmp("chmod");
        fs::create_dir_all(root.join("a")).unwrap();
        fs::create_dir_all(root.join("b")).unwrap();
        fs::write(root.join("a/1.png"), b"x").unwrap();
        fs::write(root.join("b/2.png"), b"x").unwrap();
        fs::set_permissions(root.join("a"), fs::Permissions::from_mode(0o000)).unwrap();
        let readable_anyway = fs::read_dir(root.join("a")).is_ok(); // the super-user
        let w = walk(&root, &is_image_path, &WalkOptions::default());
        fs::set_permissions(root.join("a"), fs::Permissions::from_mode(0o755)).unwrap();
        let w = w.unwrap();
        if !readable_anyway {
            assert_eq!(names(&root, &w.files), ["b/2.png"]);
            assert!(matches!(
                w.skipped[0].reason,
                SkipReason::UnreadableFolder(_)
            ));
        }
        fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_keep_their_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let root = tmp("bytes");
        let a = root.join(OsStr::from_bytes(b"x\xff.jpg"));
        let b = root.join(OsStr::from_bytes(b"x\xfe.jpg"));
        if fs::write(&a, b"1").is_err() {
            std::eprintln!("this file system refuses non-UTF-8 names; skipping");
            return;
        }
        fs::write(&b, b"2").unwrap();
        let w = walk(&root, &is_image_path, &WalkOptions::default()).unwrap();
        assert_eq!(w.files, vec![b.clone(), a.clone()]);
        let texts: Vec<String> = w.files.iter().map(|p| escape_path(p)).collect();
        assert!(texts[0].ends_with("x\\xfe.jpg"), "{texts:?}");
        assert_ne!(texts[0], texts[1]);
        for (p, t) in w.files.iter().zip(&texts) {
            assert_eq!(&unescape_path(t), p);
            assert_eq!(read_regular_file(&unescape_path(t), 10).unwrap().len(), 1);
        }
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn escaping_round_trips_any_bytes() {
        let cases: [&[u8]; 7] = [
            b"plain/name.jpg",
            b"back\\slash",
            b"\\x41 is not A",
            b"bad \xff\xfe utf8",
            "caf\u{e9} \u{1F990}".as_bytes(),
            b"new\nline\ttab\x7f",
            b"\xe2\x82",
        ];
        for bytes in cases {
            let text = escape_bytes(bytes);
            assert!(!text.contains('\n'), "{text}");
            assert_eq!(unescape_bytes(&text), bytes, "{text}");
        }
        assert_eq!(escape_bytes(b"a\xffb"), "a\\xffb");
        assert_eq!(escape_bytes(b"a\\b"), "a\\\\b");
        // Hand-written backslashes that are not escapes stay as they are.
        assert_eq!(unescape_bytes("dir\\name\\x4"), b"dir\\name\\x4");
        assert_eq!(unescape_bytes("\\x4A\\xzz"), b"J\\xzz");
        // And every single byte value survives.
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unescape_bytes(&escape_bytes(&all)), all);
    }

    #[test]
    fn size_limits() {
        assert!(check_image_size(2, 2).is_ok());
        assert!(check_image_size(8192, 2048).is_ok());
        assert_eq!(
            check_image_size(1, 1),
            Err(SizeError::TooSmall {
                width: 1,
                height: 1
            })
        );
        assert!(check_image_size(20000, 20000).is_err());
        assert!(check_image_size(8193, 2).is_err());
        // Each side within limits but the area above it.
        assert!(check_image_size(8192, 8192).is_err());
        assert!(format!("{}", check_image_size(20000, 20000).unwrap_err()).contains("too large"));
    }

    #[test]
    fn oversized_files_are_refused() {
        let root = tmp("big");
        let f = root.join("big.png");
        fs::write(&f, [0u8; 100]).unwrap();
        assert_eq!(
            read_regular_file(&f, 99),
            Err(SkipReason::TooLarge {
                bytes: 100,
                max: 99
            })
        );
        assert_eq!(read_regular_file(&f, 100).unwrap().len(), 100);
        assert!(matches!(
            read_regular_file(&root, 100),
            Err(SkipReason::NotRegularFile(FileKind::Folder))
        ));
        assert!(matches!(
            read_regular_file(&root.join("missing.png"), 100),
            Err(SkipReason::Unreadable(_))
        ));
        fs::remove_dir_all(&root).unwrap();
    }
}
