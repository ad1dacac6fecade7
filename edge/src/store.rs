//! The label store: the kNN head's classes, examples and threshold on NOR
//! flash, surviving power loss at any instant.
//!
//! # Why an append-only log and not `sequential-storage`
//! `sequential-storage` is power-fail safe, but it offers a key-value map
//! and a queue with an async API. Our operations are not key updates:
//! `forget_class` and `relabel` change many examples at once, and an
//! insertion into a full memory removes another example in the same step.
//! As map items those would be several writes and not atomic; as queue
//! items we would still need our own replay and compaction. A log of
//! operation records is the natural shape: **one record = one operation**,
//! so atomicity is the atomicity of one record, and replaying the log
//! through [`Knn::apply`] rebuilds the head with the same code that runs
//! live. It is synchronous (the device loop has no executor), has no
//! dependency beyond `embedded-storage`, and its power-cut behaviour is
//! tested exhaustively here.
//!
//! # Layout
//! The flash region is split into two halves of whole erase pages. A half
//! holds frames of [`seaclr_shared::labels`] (CRC-32 each), every frame
//! padded to the record alignment (`max(WRITE_SIZE, READ_SIZE, 4)`):
//!
//! ```text
//! HalfHeader{generation} | snapshot: SetThreshold, AddClass*, AddExample* |
//! SnapshotEnd{next_example_id} | log: one record per operation ... | FF FF ..
//! ```
//!
//! # Why it is atomic
//! - **An operation** is committed when its frame is completely written:
//!   the CRC covers the whole frame, so a torn frame (cut inside the
//!   write) fails the CRC and replay stops before it. Replay stops at the
//!   first frame that is erased, torn, corrupt or does not apply, so the
//!   mounted memory is always a state that existed: every operation
//!   completed before the cut, and no part of the interrupted one.
//! - **A dirty tail** (anything but `FF` after the last good frame) is never
//!   written over: the next operation first compacts.
//! - **Compaction** (the half is full, or its tail is dirty) erases the
//!   other half, writes a snapshot of the memory into it, and ends with
//!   `SnapshotEnd`. Mount takes the complete half (header + `SnapshotEnd`)
//!   with the highest generation, so until `SnapshotEnd` is on flash the
//!   old half stays the live one; after it, the new one. A cut during the
//!   erase or the snapshot leaves the old half intact.
//! - **Bit flips** are caught by the CRCs: a corrupt frame ends the replay
//!   there (the state is then the one before that frame), a corrupt header
//!   or snapshot makes mount fall back to the older half. The mount report
//!   says so.
//!
//! Sizes: one stored 128-value example costs a 145-byte frame, 148 bytes
//! at 4-byte alignment. A full default head (1,000 examples, 64 classes)
//! snapshots to about 151 KB, so each half needs at least that plus room
//! for the log; see `DEFAULT_HALF_SIZE`.

pub mod mock_flash;

use embedded_storage::nor_flash::NorFlash;
use seaclr_shared::labels::{
    ClassId, DecodeError, EncodeError, ExampleId, LabelRecord, MAX_EMBEDDING_DIM, MAX_FRAME_LEN,
    padded_len,
};

use crate::knn::{Added, Applied, Knn, KnnError, embedding_bytes};

/// Largest record alignment the store supports (write sizes up to 64 bytes).
pub const MAX_ALIGN: usize = 64;
/// Size of each half of the default device region: 48 pages of 4 KiB,
/// enough for a full default head (about 151 KB) plus about 230 more
/// example records before a compaction.
pub const DEFAULT_HALF_SIZE: usize = 48 * 4096;
/// The default label region: two halves.
pub const DEFAULT_REGION_SIZE: usize = 2 * DEFAULT_HALF_SIZE;

const BUF_LEN: usize = MAX_FRAME_LEN + MAX_ALIGN;

/// Why a store operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError<E> {
    /// The flash failed (for the mock: a scripted power cut). The head is
    /// unchanged; remount to learn what reached the flash.
    Flash(E),
    /// No complete half: the region is blank or holds something else.
    NotFormatted,
    /// The flash geometry does not suit the store (region too small, not
    /// two halves of whole pages, alignment too large), or the image was
    /// written with another record alignment.
    Geometry,
    /// Even after compaction the memory does not fit in one half.
    Full,
    /// The head refused the operation (nothing was written).
    Label(KnnError),
    /// The operation cannot be encoded (nothing was written).
    Encode(EncodeError),
}

impl<E: core::fmt::Debug> core::fmt::Display for StoreError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Flash(e) => write!(f, "flash error: {e:?}"),
            Self::NotFormatted => f.write_str("no valid label store on the flash"),
            Self::Geometry => f.write_str("flash geometry does not suit the label store"),
            Self::Full => f.write_str("label store full even after compaction"),
            Self::Label(e) => write!(f, "label operation refused: {e}"),
            Self::Encode(e) => write!(f, "label record not encodable: {e}"),
        }
    }
}

impl<E> From<KnnError> for StoreError<E> {
    fn from(e: KnnError) -> Self {
        Self::Label(e)
    }
}

/// What mount found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountReport {
    /// Generation of the live half.
    pub generation: u32,
    /// Which half is live (0 or 1).
    pub half: u8,
    /// Records replayed (snapshot and log).
    pub records: u32,
    /// Something other than erased flash follows the last good record: a
    /// torn write, flipped bits, or a record that did not apply. Replay
    /// stopped there; the next write compacts.
    pub dirty_tail: bool,
    /// The other half is damaged: a higher generation that is not complete,
    /// or an unreadable header (interrupted compaction, or corruption
    /// that may have hidden a newer state).
    pub fell_back: bool,
    /// The region held no store and was formatted (`mount_or_format`).
    pub formatted: bool,
}

/// Space use of the live half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Bytes used in the live half.
    pub used: usize,
    /// Size of one half.
    pub half_size: usize,
    /// Compactions so far (the generation).
    pub generation: u32,
}

/// The label store over a NOR flash region (see the module doc).
pub struct LabelStore<F> {
    flash: F,
    half_size: u32,
    align: usize,
    active: u8,
    generation: u32,
    write_offset: u32,
    dirty: bool,
}

/// What replaying one half found.
struct HalfScan {
    complete: bool,
    end: u32,
    dirty_tail: bool,
    records: u32,
}

/// One frame read from flash.
enum Frame<'b> {
    Record(LabelRecord<'b>, usize),
    Erased,
    Bad,
}

fn read_frame<'b, F: NorFlash>(
    flash: &mut F,
    base: u32,
    offset: u32,
    limit: u32,
    align: usize,
    buf: &'b mut [u8; BUF_LEN],
    check_padding: bool,
) -> Result<Frame<'b>, F::Error> {
    if offset as usize + align > limit as usize {
        return Ok(Frame::Erased);
    }
    flash.read(base + offset, &mut buf[..align])?;
    let total = match LabelRecord::frame_len_from_header(&buf[..align]) {
        Ok(n) => n,
        Err(DecodeError::Erased) => return Ok(Frame::Erased),
        Err(_) => return Ok(Frame::Bad),
    };
    let padded = padded_len(total, align);
    if offset as usize + padded > limit as usize {
        return Ok(Frame::Bad);
    }
    flash.read(base + offset + align as u32, &mut buf[align..padded])?;
    // Padding is outside the CRC: it must still read as erased, so no
    // flipped bit anywhere in a frame goes unnoticed.
    if check_padding && buf[total..padded].iter().any(|&b| b != 0xFF) {
        return Ok(Frame::Bad);
    }
    match LabelRecord::decode(&buf[..total]) {
        Ok((record, _)) => Ok(Frame::Record(record, padded)),
        Err(_) => Ok(Frame::Bad),
    }
}

impl<F: NorFlash> LabelStore<F> {
    fn geometry(flash: &F) -> Option<(u32, usize)> {
        let align = F::WRITE_SIZE.max(F::READ_SIZE).max(4);
        let page = F::ERASE_SIZE;
        if !align.is_power_of_two() || align > MAX_ALIGN || page == 0 || page % align != 0 {
            return None;
        }
        let half = flash.capacity() / 2 / page * page;
        // A half must hold at least a header, a snapshot end and one record.
        if half < BUF_LEN || half > u32::MAX as usize / 2 {
            return None;
        }
        Some((half as u32, align))
    }

    fn half_base(&self, half: u8) -> u32 {
        half as u32 * self.half_size
    }

    fn unmounted(flash: F) -> Result<Self, StoreError<F::Error>> {
        let (half_size, align) = Self::geometry(&flash).ok_or(StoreError::Geometry)?;
        Ok(Self {
            flash,
            half_size,
            align,
            active: 0,
            generation: 0,
            write_offset: 0,
            dirty: true,
        })
    }

    /// Opens the store and replays it into `head` (which is cleared first).
    pub fn mount<const N: usize, const D: usize, const C: usize>(
        flash: F,
        head: &mut Knn<N, D, C>,
    ) -> Result<(Self, MountReport), StoreError<F::Error>> {
        let mut store = Self::unmounted(flash)?;
        let report = store.load(head)?;
        Ok((store, report))
    }

    /// Mounts, or formats an empty store when there is none (blank flash or
    /// unrecognisable contents, which are erased).
    pub fn mount_or_format<const N: usize, const D: usize, const C: usize>(
        flash: F,
        head: &mut Knn<N, D, C>,
    ) -> Result<(Self, MountReport), StoreError<F::Error>> {
        let mut store = Self::unmounted(flash)?;
        match store.load(head) {
            Ok(report) => Ok((store, report)),
            Err(StoreError::NotFormatted) => {
                head.clear();
                // Erase half 1, then snapshot the empty memory into half 0.
                let base = store.half_base(1);
                store
                    .flash
                    .erase(base, base + store.half_size)
                    .map_err(StoreError::Flash)?;
                store.active = 1;
                store.generation = 0;
                store.compact(head)?;
                let report = MountReport {
                    generation: store.generation,
                    half: store.active,
                    formatted: true,
                    ..MountReport::default()
                };
                Ok((store, report))
            }
            Err(e) => Err(e),
        }
    }

    fn load<const N: usize, const D: usize, const C: usize>(
        &mut self,
        head: &mut Knn<N, D, C>,
    ) -> Result<MountReport, StoreError<F::Error>> {
        // Headers of both halves, newest first.
        let mut headers: [Option<u32>; 2] = [None, None];
        let mut bad_header = [false; 2];
        for half in 0..2u8 {
            let mut buf = [0u8; BUF_LEN];
            let base = self.half_base(half);
            // Padding unchecked: a half written with another alignment must
            // still be recognised (and refused), not taken for garbage.
            let frame = read_frame(
                &mut self.flash,
                base,
                0,
                self.half_size,
                self.align,
                &mut buf,
                false,
            )
            .map_err(StoreError::Flash)?;
            if let Frame::Record(
                LabelRecord::HalfHeader {
                    generation,
                    align_log2,
                },
                _,
            ) = frame
            {
                if 1usize.checked_shl(align_log2 as u32) != Some(self.align) {
                    return Err(StoreError::Geometry);
                }
                headers[half as usize] = Some(generation);
            } else {
                bad_header[half as usize] = !matches!(frame, Frame::Erased);
            }
        }
        let order: [u8; 2] = match headers {
            [Some(a), Some(b)] if b > a => [1, 0],
            _ => [0, 1],
        };
        let mut fell_back = false;
        for half in order {
            let Some(generation) = headers[half as usize] else {
                continue;
            };
            head.clear();
            let scan = self.replay_half(half, head).map_err(StoreError::Flash)?;
            if !scan.complete {
                fell_back = true;
                continue;
            }
            fell_back |= bad_header[1 - half as usize];
            self.active = half;
            self.generation = generation;
            self.write_offset = scan.end;
            self.dirty = scan.dirty_tail;
            return Ok(MountReport {
                generation,
                half,
                records: scan.records,
                dirty_tail: scan.dirty_tail,
                fell_back,
                formatted: false,
            });
        }
        head.clear();
        Err(StoreError::NotFormatted)
    }

    /// Replays one half into `head`, stopping at the first frame that is
    /// erased, bad, or refused by the head.
    fn replay_half<const N: usize, const D: usize, const C: usize>(
        &mut self,
        half: u8,
        head: &mut Knn<N, D, C>,
    ) -> Result<HalfScan, F::Error> {
        let base = self.half_base(half);
        let mut buf = [0u8; BUF_LEN];
        let mut scan = HalfScan {
            complete: false,
            end: 0,
            dirty_tail: false,
            records: 0,
        };
        let mut offset = 0u32;
        let mut first = true;
        loop {
            let frame = read_frame(
                &mut self.flash,
                base,
                offset,
                self.half_size,
                self.align,
                &mut buf,
                true,
            )?;
            let (record, len) = match frame {
                Frame::Record(r, len) => (r, len),
                Frame::Erased => break,
                Frame::Bad => {
                    scan.dirty_tail = true;
                    break;
                }
            };
            let accepted = match record {
                LabelRecord::HalfHeader { .. } => first,
                LabelRecord::SnapshotEnd { .. } if scan.complete => false,
                LabelRecord::SnapshotEnd { .. } => {
                    scan.complete = true;
                    head.apply(&record).is_ok()
                }
                _ if first => false,
                _ => head.apply(&record).is_ok(),
            };
            if !accepted {
                scan.dirty_tail = true;
                break;
            }
            first = false;
            offset += len as u32;
            scan.records += 1;
        }
        scan.end = offset;
        if !scan.dirty_tail {
            scan.dirty_tail = !self.is_erased(base + offset, base + self.half_size)?;
        }
        Ok(scan)
    }

    fn is_erased(&mut self, from: u32, to: u32) -> Result<bool, F::Error> {
        let mut chunk = [0u8; MAX_ALIGN];
        let mut at = from;
        while at < to {
            let n = ((to - at) as usize).min(MAX_ALIGN);
            self.flash.read(at, &mut chunk[..n])?;
            if chunk[..n].iter().any(|&b| b != 0xFF) {
                return Ok(false);
            }
            at += n as u32;
        }
        Ok(true)
    }

    fn write_frame(
        &mut self,
        half: u8,
        offset: u32,
        record: &LabelRecord<'_>,
    ) -> Result<u32, StoreError<F::Error>> {
        let mut buf = [0xFFu8; BUF_LEN];
        let len = record.encode(&mut buf).map_err(StoreError::Encode)?;
        let padded = padded_len(len, self.align);
        if offset as usize + padded > self.half_size as usize {
            return Err(StoreError::Full);
        }
        let at = self.half_base(half) + offset;
        self.flash
            .write(at, &buf[..padded])
            .map_err(StoreError::Flash)?;
        Ok(padded as u32)
    }

    fn snapshot_len<const N: usize, const D: usize, const C: usize>(
        &self,
        head: &Knn<N, D, C>,
    ) -> usize {
        let a = self.align;
        let mut len = padded_len(self.header_record(0).frame_len(), a)
            + padded_len(
                LabelRecord::SetThreshold { similarity_q15: 0 }.frame_len(),
                a,
            )
            + padded_len(
                LabelRecord::SnapshotEnd { next_example_id: 0 }.frame_len(),
                a,
            );
        for class in head.classes() {
            let name = head.class_name(class).unwrap_or("");
            len += padded_len(LabelRecord::AddClass { class, name }.frame_len(), a);
        }
        len + head.len() * padded_len(seaclr_shared::labels::add_example_frame_len(D), a)
    }

    fn header_record(&self, generation: u32) -> LabelRecord<'static> {
        LabelRecord::HalfHeader {
            generation,
            align_log2: self.align.trailing_zeros() as u8,
        }
    }

    /// Writes the memory into the other half and makes it live (see the
    /// module doc for why a cut at any point is safe).
    pub fn compact<const N: usize, const D: usize, const C: usize>(
        &mut self,
        head: &Knn<N, D, C>,
    ) -> Result<(), StoreError<F::Error>> {
        if self.snapshot_len(head) > self.half_size as usize {
            return Err(StoreError::Full);
        }
        let target = 1 - self.active;
        let generation = self.generation.checked_add(1).ok_or(StoreError::Full)?;
        let base = self.half_base(target);
        self.flash
            .erase(base, base + self.half_size)
            .map_err(StoreError::Flash)?;
        let mut at = self.write_frame(target, 0, &self.header_record(generation))?;
        let threshold = LabelRecord::SetThreshold {
            similarity_q15: head.threshold_q15(),
        };
        at += self.write_frame(target, at, &threshold)?;
        for class in head.classes() {
            let name = head.class_name(class).unwrap_or("");
            at += self.write_frame(target, at, &LabelRecord::AddClass { class, name })?;
        }
        for (id, class, embedding) in head.examples() {
            let record = LabelRecord::AddExample {
                id,
                class,
                evicted: None,
                embedding,
            };
            at += self.write_frame(target, at, &record)?;
        }
        let end = LabelRecord::SnapshotEnd {
            next_example_id: head.next_example_id(),
        };
        at += self.write_frame(target, at, &end)?;
        self.active = target;
        self.generation = generation;
        self.write_offset = at;
        self.dirty = false;
        Ok(())
    }

    /// Logs `record` and applies it to `head`: the atomic step behind every
    /// operation. Nothing is written if the head refuses the record; the
    /// head is changed only after the frame is on flash.
    pub fn commit<const N: usize, const D: usize, const C: usize>(
        &mut self,
        head: &mut Knn<N, D, C>,
        record: &LabelRecord<'_>,
    ) -> Result<Applied, StoreError<F::Error>> {
        if matches!(
            record,
            LabelRecord::HalfHeader { .. } | LabelRecord::SnapshotEnd { .. }
        ) {
            return Err(StoreError::Label(KnnError::NotAnOperation));
        }
        head.validate(record)?;
        let needed = padded_len(record.frame_len(), self.align);
        if self.dirty || self.write_offset as usize + needed > self.half_size as usize {
            self.compact(head)?;
            if self.write_offset as usize + needed > self.half_size as usize {
                return Err(StoreError::Full);
            }
        }
        let written = self.write_frame(self.active, self.write_offset, record);
        match written {
            Ok(len) => self.write_offset += len,
            Err(e) => {
                // The frame may be partly on flash: never append after it.
                self.dirty = true;
                return Err(e);
            }
        }
        Ok(head.apply(record)?)
    }

    /// Creates a class (lowest free slot).
    pub fn add_class<const N: usize, const D: usize, const C: usize>(
        &mut self,
        head: &mut Knn<N, D, C>,
        name: &str,
    ) -> Result<ClassId, StoreError<F::Error>> {
        let record = head.plan_add_class(name)?;
        match self.commit(head, &record)? {
            Applied::ClassAdded(c) => Ok(c),
            _ => Err(StoreError::Label(KnnError::NotAnOperation)),
        }
    }

    /// Stores an example; an eviction (full memory or class cap) is part of
    /// the same atomic record and is returned.
    pub fn add_example<const N: usize, const D: usize, const C: usize>(
        &mut self,
        head: &mut Knn<N, D, C>,
        class: ClassId,
        embedding: &[i8],
    ) -> Result<Added, StoreError<F::Error>> {
        const { assert!(D <= MAX_EMBEDDING_DIM) };
        let bytes = embedding_bytes::<D>(embedding)?;
        let record = head.plan_add_example(class, &bytes)?;
        match self.commit(head, &record)? {
            Applied::ExampleAdded(a) => Ok(a),
            _ => Err(StoreError::Label(KnnError::NotAnOperation)),
        }
    }

    /// Removes an example.
    pub fn forget_example<const N: usize, const D: usize, const C: usize>(
        &mut self,
        head: &mut Knn<N, D, C>,
        id: ExampleId,
    ) -> Result<(), StoreError<F::Error>> {
        self.commit(head, &LabelRecord::ForgetExample { id })
            .map(|_| ())
    }

    /// Removes a class and its examples; returns how many examples went.
    pub fn forget_class<const N: usize, const D: usize, const C: usize>(
        &mut self,
        head: &mut Knn<N, D, C>,
        class: ClassId,
    ) -> Result<usize, StoreError<F::Error>> {
        match self.commit(head, &LabelRecord::ForgetClass { class })? {
            Applied::ClassForgotten(n) => Ok(n),
            _ => Err(StoreError::Label(KnnError::NotAnOperation)),
        }
    }

    /// Merges `from` into `into`; returns how many examples moved.
    pub fn relabel<const N: usize, const D: usize, const C: usize>(
        &mut self,
        head: &mut Knn<N, D, C>,
        from: ClassId,
        into: ClassId,
    ) -> Result<usize, StoreError<F::Error>> {
        match self.commit(head, &LabelRecord::Relabel { from, into })? {
            Applied::Relabelled(n) => Ok(n),
            _ => Err(StoreError::Label(KnnError::NotAnOperation)),
        }
    }

    /// Sets the open-set threshold (Q15).
    pub fn set_threshold<const N: usize, const D: usize, const C: usize>(
        &mut self,
        head: &mut Knn<N, D, C>,
        similarity_q15: i32,
    ) -> Result<(), StoreError<F::Error>> {
        self.commit(head, &LabelRecord::SetThreshold { similarity_q15 })
            .map(|_| ())
    }

    /// Space use of the live half.
    pub fn usage(&self) -> Usage {
        Usage {
            used: self.write_offset as usize,
            half_size: self.half_size as usize,
            generation: self.generation,
        }
    }

    /// The flash, e.g. to save a host-built image.
    pub fn into_flash(self) -> F {
        self.flash
    }

    /// The flash, borrowed.
    pub fn flash(&self) -> &F {
        &self.flash
    }
}

#[cfg(test)]
mod tests;
