//! The few-shot kNN head: a bounded memory of labelled int8 embeddings that
//! classifies new embeddings by cosine similarity, says "unknown" for taxa
//! nobody labelled, and learns new classes without retraining.
//!
//! - **No heap, no float.** Capacity is fixed at compile time: `N` examples
//!   of `D` int8 values, `C` classes (`C <= 64`, names up to 32 bytes).
//!   The default `KnnHead` (1,000 x 128) keeps 125 KiB of embeddings and
//!   is 139,336 bytes in all (ids, norms, classes); `new` is `const`, so it
//!   can be a `static`.
//! - **Similarity.** Cosine in integers: `i32` dot products, squared norms
//!   precomputed at insertion. Neighbours are *ranked exactly* by
//!   cross-multiplication (`d_a^2 * n_b` vs `d_b^2 * n_a` in `u64` with the
//!   signs handled apart), ties broken by the older example id, so the
//!   ranking does not depend on where an example sits in memory. The
//!   similarity *values* (threshold, votes, confidence) are Q15 fixed point
//!   (`32768` = 1.0) from an integer square root.
//! - **Vote.** The `k` nearest (default 10, at most `MAX_K`) vote with
//!   weight `max(similarity, 0)`; confidence = winner's weight / all weight
//!   (Q15). If the best similarity is below the threshold the answer is
//!   `Unknown` (open set); the vote winner is still reported.
//! - **Eviction** (never silent; the evicted example is returned).
//!   An example is added to class `c`; when `c` already holds the per-class
//!   cap (if one is set) the victim class is `c`; otherwise, when all `N`
//!   slots are used, the victim class is the largest class (a tie prefers
//!   `c`, then the lower class id), so a new taxon with a handful of
//!   examples is never pushed out by a big one. Inside the victim class the
//!   most redundant example goes: the one whose nearest same-class
//!   neighbour is most similar, the incoming example included (if it is the
//!   most redundant it is refused and reported as evicted). Ties drop the
//!   incoming example first (so a near-duplicate of a stored example is
//!   refused), then the older one. Cost: `O(m^2 * D)` for a victim class of `m` examples,
//!   paid only when the memory is full. `relabel` never evicts: a merged
//!   class may exceed the cap until its next insertion.
//! - **Replayable.** Every change is a [`LabelRecord`]; `plan_*` methods
//!   produce the record (eviction decided and written into it), `apply`
//!   executes it. The flash store logs the record before applying it, and
//!   replays the log through the same `apply` at boot.

use core::cmp::Ordering;

use seaclr_shared::labels::{ClassId, EMBEDDING_DIM, ExampleId, LabelRecord, MAX_CLASS_NAME};

/// Most neighbours a vote can use.
pub const MAX_K: usize = 16;
/// Default number of neighbours in a vote (the host kNN evaluation uses 10).
pub const DEFAULT_K: usize = 10;
/// Q15 fixed point: this integer is a similarity of 1.0.
pub const Q15_ONE: i32 = 32768;
/// The threshold a new head starts with: nothing is ever "unknown" until a
/// calibrated threshold is set.
pub const THRESHOLD_DISABLED: i32 = -Q15_ONE;

/// The default head of the SeaCLR device: 1,000 examples of 128 values, 64 classes.
pub type KnnHead = Knn<1000, EMBEDDING_DIM, 64>;

/// Why a head operation was refused (the head is unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KnnError {
    /// The embedding length is not `D`.
    WrongDimension,
    /// The embedding is all zeros: it has no direction.
    ZeroEmbedding,
    /// A class name is empty or longer than 32 bytes.
    BadName,
    /// A class with this name exists.
    DuplicateName,
    /// All `C` class slots are used.
    ClassTableFull,
    /// No class with this id.
    NoSuchClass,
    /// The class slot is already taken (replaying a record).
    ClassSlotTaken,
    /// No example with this id.
    NoSuchExample,
    /// An example with this id exists (replaying a record).
    DuplicateExample,
    /// A record's eviction does not match the memory (replaying a record).
    BadEviction,
    /// `relabel` from a class into itself.
    SameClass,
    /// `k` or the per-class cap is out of range.
    BadParameter,
    /// The record is log bookkeeping, not a label operation.
    NotAnOperation,
}

impl core::fmt::Display for KnnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::WrongDimension => "embedding has the wrong length",
            Self::ZeroEmbedding => "embedding is all zeros",
            Self::BadName => "class name empty or longer than 32 bytes",
            Self::DuplicateName => "a class with this name exists",
            Self::ClassTableFull => "class table full",
            Self::NoSuchClass => "no such class",
            Self::ClassSlotTaken => "class slot already used",
            Self::NoSuchExample => "no such example",
            Self::DuplicateExample => "example id already used",
            Self::BadEviction => "eviction does not match the memory",
            Self::SameClass => "cannot relabel a class into itself",
            Self::BadParameter => "parameter out of range",
            Self::NotAnOperation => "record is not a label operation",
        })
    }
}

/// One neighbour used in a vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// The stored example.
    pub example: ExampleId,
    /// Its class.
    pub class: ClassId,
    /// Cosine similarity to the query, Q15.
    pub similarity_q15: i32,
}

const NO_NEIGHBOUR: Neighbour = Neighbour {
    example: ExampleId(0),
    class: ClassId(0),
    similarity_q15: 0,
};

/// The answer of [`Knn::classify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The class, or `None` for "unknown" (best similarity below the
    /// threshold, or nothing stored).
    pub class: Option<ClassId>,
    /// The class the vote chose, even when the answer is "unknown".
    pub vote_winner: Option<ClassId>,
    /// Share of the vote weight that went to the winner, Q15.
    pub confidence_q15: i32,
    /// Similarity of the nearest neighbour, Q15 (0 if none).
    pub best_similarity_q15: i32,
    neighbours: [Neighbour; MAX_K],
    neighbour_count: usize,
}

impl Classification {
    /// The neighbours that voted, nearest first.
    pub fn neighbours(&self) -> &[Neighbour] {
        &self.neighbours[..self.neighbour_count]
    }
}

/// What `add_example` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Added {
    /// Id given to the new example.
    pub id: ExampleId,
    /// What was dropped to make room.
    pub evicted: Option<Evicted>,
}

/// The example an insertion pushed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evicted {
    /// A stored example was removed.
    Stored {
        /// The removed example.
        id: ExampleId,
        /// Its class.
        class: ClassId,
    },
    /// The incoming example was the most redundant one and was not stored.
    Incoming,
}

/// What a successfully applied record changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A class was created.
    ClassAdded(ClassId),
    /// An example was stored (or refused as the most redundant).
    ExampleAdded(Added),
    /// An example was removed.
    ExampleForgotten(ClassId),
    /// A class and this many examples were removed.
    ClassForgotten(usize),
    /// This many examples moved to the other class.
    Relabelled(usize),
    /// The threshold changed.
    ThresholdSet,
    /// Log bookkeeping was applied (next example id).
    Bookkeeping,
}

#[derive(Clone, Copy)]
struct ClassEntry {
    name: [u8; MAX_CLASS_NAME],
    name_len: u8,
    used: bool,
    count: u16,
}

const EMPTY_CLASS: ClassEntry = ClassEntry {
    name: [0; MAX_CLASS_NAME],
    name_len: 0,
    used: false,
    count: 0,
};

/// A bounded kNN memory of `N` examples of `D` int8 values and `C` classes.
/// See the module doc for the similarity, vote and eviction rules.
pub struct Knn<const N: usize, const D: usize, const C: usize> {
    /// Embeddings as two's-complement bytes; slots `0..len` are used.
    embeddings: [[u8; D]; N],
    /// Squared L2 norm of each stored embedding.
    norms: [u32; N],
    ids: [ExampleId; N],
    classes_of: [ClassId; N],
    len: usize,
    classes: [ClassEntry; C],
    next_example_id: u32,
    threshold_q15: i32,
    k: usize,
    per_class_cap: usize,
}

fn dot<const D: usize>(a: &[u8; D], b: &[u8; D]) -> i32 {
    a.iter()
        .zip(b.iter())
        .map(|(&x, &y)| (x as i8 as i32) * (y as i8 as i32))
        .sum()
}

fn squared_norm(a: &[u8]) -> u32 {
    a.iter()
        .map(|&x| (x as i8 as i32 * x as i8 as i32) as u32)
        .sum()
}

/// Exact comparison of `d_a / sqrt(n_a)` with `d_b / sqrt(n_b)` (norms > 0).
/// `|d| <= 2^21` and `n <= 2^21` for int8 vectors of up to 128 values, so
/// `d^2 * n <= 2^63` fits a `u64`; longer vectors fall back to `u128`.
pub fn compare_cosine(d_a: i32, n_a: u32, d_b: i32, n_b: u32) -> Ordering {
    let (neg_a, neg_b) = (d_a < 0, d_b < 0);
    if neg_a != neg_b {
        return if neg_a {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // `u64` covers every 128-value embedding; longer ones may need `u128`.
    let mag64 = |d: i32, n: u32| (d.unsigned_abs() as u64).pow(2).checked_mul(n as u64);
    let by_magnitude = match (mag64(d_a, n_b), mag64(d_b, n_a)) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => {
            let mag = |d: i32, n: u32| (d.unsigned_abs() as u128).pow(2) * n as u128;
            mag(d_a, n_b).cmp(&mag(d_b, n_a))
        }
    };
    if neg_a {
        by_magnitude.reverse()
    } else {
        by_magnitude
    }
}

/// Integer square root (floor).
pub fn isqrt(v: u64) -> u64 {
    if v < 2 {
        return v;
    }
    // Newton's iteration from an upper bound converges monotonically down.
    let mut x = 1u64 << (64 - v.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + v / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// Cosine similarity in Q15 from a dot product and two squared norms:
/// exactly `trunc(cos * 32768)`, computed as `isqrt(d^2 * 2^30 / (n_a n_b))`
/// (`floor(sqrt(floor(x))) = floor(sqrt(x))`). Only the `k` neighbours pay
/// for its 128-bit division.
pub fn cosine_q15(dot: i32, n_a: u32, n_b: u32) -> i32 {
    let denom = n_a as u128 * n_b as u128;
    if denom == 0 {
        return 0;
    }
    let squared = ((dot.unsigned_abs() as u128 * dot.unsigned_abs() as u128) << 30) / denom;
    // cos^2 <= 1 (Cauchy-Schwarz), so `squared <= 2^30` fits a u64.
    let magnitude = isqrt(squared.min(1 << 30) as u64) as i32;
    if dot < 0 { -magnitude } else { magnitude }
}

impl<const N: usize, const D: usize, const C: usize> Default for Knn<N, D, C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const D: usize, const C: usize> Knn<N, D, C> {
    /// An empty head (threshold disabled, `k` = 10). `const` so the head can
    /// live in a `static` on the device.
    pub const fn new() -> Self {
        assert!(C <= seaclr_shared::labels::MAX_CLASSES && C > 0 && N > 0 && D > 0);
        assert!(D <= seaclr_shared::labels::MAX_EMBEDDING_DIM);
        Self {
            embeddings: [[0; D]; N],
            norms: [0; N],
            ids: [ExampleId(0); N],
            classes_of: [ClassId(0); N],
            len: 0,
            classes: [EMPTY_CLASS; C],
            next_example_id: 0,
            threshold_q15: THRESHOLD_DISABLED,
            k: if DEFAULT_K < N { DEFAULT_K } else { N },
            per_class_cap: N,
        }
    }

    /// Forgets everything (classes, examples, threshold, ids); keeps `k`
    /// and the per-class cap.
    pub fn clear(&mut self) {
        self.len = 0;
        self.classes = [EMPTY_CLASS; C];
        self.next_example_id = 0;
        self.threshold_q15 = THRESHOLD_DISABLED;
    }

    /// Number of stored examples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no example is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Examples the memory can hold.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The open-set threshold (Q15).
    pub fn threshold_q15(&self) -> i32 {
        self.threshold_q15
    }

    /// Neighbours per vote.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Sets neighbours per vote (`1..=min(MAX_K, N)`). Not persisted: it is
    /// firmware configuration.
    pub fn set_k(&mut self, k: usize) -> Result<(), KnnError> {
        if k == 0 || k > MAX_K || k > N {
            return Err(KnnError::BadParameter);
        }
        self.k = k;
        Ok(())
    }

    /// Sets the most examples a class keeps (`1..=N`; `N` means no cap).
    /// Firmware configuration, not persisted; it only steers eviction.
    pub fn set_per_class_cap(&mut self, cap: usize) -> Result<(), KnnError> {
        if cap == 0 || cap > N {
            return Err(KnnError::BadParameter);
        }
        self.per_class_cap = cap;
        Ok(())
    }

    /// The id the next new example gets.
    pub fn next_example_id(&self) -> u32 {
        self.next_example_id
    }

    /// Name of a class, if it exists.
    pub fn class_name(&self, class: ClassId) -> Option<&str> {
        let e = self.classes.get(class.0 as usize).filter(|e| e.used)?;
        core::str::from_utf8(&e.name[..e.name_len as usize]).ok()
    }

    /// Number of examples of a class (0 if it does not exist).
    pub fn class_count(&self, class: ClassId) -> usize {
        self.classes
            .get(class.0 as usize)
            .filter(|e| e.used)
            .map_or(0, |e| e.count as usize)
    }

    /// The class with this name.
    pub fn find_class(&self, name: &str) -> Option<ClassId> {
        self.classes
            .iter()
            .position(|e| e.used && &e.name[..e.name_len as usize] == name.as_bytes())
            .map(|i| ClassId(i as u8))
    }

    /// Existing classes, lowest id first.
    pub fn classes(&self) -> impl Iterator<Item = ClassId> + '_ {
        self.classes
            .iter()
            .enumerate()
            .filter(|(_, e)| e.used)
            .map(|(i, _)| ClassId(i as u8))
    }

    /// Stored examples (id, class, embedding bytes) in memory order.
    pub fn examples(&self) -> impl Iterator<Item = (ExampleId, ClassId, &[u8; D])> + '_ {
        (0..self.len).map(|s| (self.ids[s], self.classes_of[s], &self.embeddings[s]))
    }

    /// The embedding of an example (two's-complement bytes).
    pub fn example(&self, id: ExampleId) -> Option<(ClassId, &[u8; D])> {
        self.slot_of(id)
            .map(|s| (self.classes_of[s], &self.embeddings[s]))
    }

    fn slot_of(&self, id: ExampleId) -> Option<usize> {
        self.ids[..self.len].iter().position(|&i| i == id)
    }

    fn class_exists(&self, class: ClassId) -> bool {
        self.classes.get(class.0 as usize).is_some_and(|e| e.used)
    }

    // ----- classification -----

    /// Classifies an embedding; see the module doc for the rules.
    pub fn classify(&self, query: &[i8]) -> Result<Classification, KnnError> {
        if query.len() != D {
            return Err(KnnError::WrongDimension);
        }
        let mut q = [0u8; D];
        for (o, &v) in q.iter_mut().zip(query) {
            *o = v as u8;
        }
        let q_norm = squared_norm(&q);
        let mut result = Classification {
            class: None,
            vote_winner: None,
            confidence_q15: 0,
            best_similarity_q15: 0,
            neighbours: [NO_NEIGHBOUR; MAX_K],
            neighbour_count: 0,
        };
        if q_norm == 0 || self.len == 0 {
            return Ok(result);
        }
        // Top-k by exact cosine order: (slot, dot), best first.
        let k = self.k.min(self.len);
        let mut top = [(0usize, 0i32); MAX_K];
        let mut top_len = 0;
        for slot in 0..self.len {
            let d = dot(&q, &self.embeddings[slot]);
            if top_len == k && !self.ranks_before(d, slot, top[k - 1].1, top[k - 1].0) {
                continue;
            }
            let mut pos = top_len.min(k - 1);
            while pos > 0 && self.ranks_before(d, slot, top[pos - 1].1, top[pos - 1].0) {
                if pos < k {
                    top[pos] = top[pos - 1];
                }
                pos -= 1;
            }
            top[pos] = (slot, d);
            top_len = (top_len + 1).min(k);
        }
        let mut weights = [0u64; C];
        let mut total = 0u64;
        for (i, &(slot, d)) in top[..top_len].iter().enumerate() {
            let sim = cosine_q15(d, q_norm, self.norms[slot]);
            let class = self.classes_of[slot];
            result.neighbours[i] = Neighbour {
                example: self.ids[slot],
                class,
                similarity_q15: sim,
            };
            let w = sim.max(0) as u64;
            weights[class.0 as usize] += w;
            total += w;
        }
        result.neighbour_count = top_len;
        result.best_similarity_q15 = result.neighbours[0].similarity_q15;
        // Winner: most weight; ties go to the class seen first (nearest).
        let mut winner = result.neighbours[0].class;
        for n in result.neighbours() {
            if weights[n.class.0 as usize] > weights[winner.0 as usize] {
                winner = n.class;
            }
        }
        result.vote_winner = Some(winner);
        if let Some(share) = (weights[winner.0 as usize] * Q15_ONE as u64).checked_div(total) {
            result.confidence_q15 = share as i32;
        }
        if result.best_similarity_q15 >= self.threshold_q15 {
            result.class = Some(winner);
        }
        Ok(result)
    }

    /// True when (dot `d_a`, slot `a`) ranks before (dot `d_b`, slot `b`):
    /// more similar, or as similar and older.
    fn ranks_before(&self, d_a: i32, a: usize, d_b: i32, b: usize) -> bool {
        match compare_cosine(d_a, self.norms[a], d_b, self.norms[b]) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => self.ids[a] < self.ids[b],
        }
    }

    // ----- planning: the record for an operation, nothing changed -----

    /// The record that creates a class named `name` in the lowest free slot.
    pub fn plan_add_class<'n>(&self, name: &'n str) -> Result<LabelRecord<'n>, KnnError> {
        if name.is_empty() || name.len() > MAX_CLASS_NAME {
            return Err(KnnError::BadName);
        }
        if self.find_class(name).is_some() {
            return Err(KnnError::DuplicateName);
        }
        let slot = self
            .classes
            .iter()
            .position(|e| !e.used)
            .ok_or(KnnError::ClassTableFull)?;
        Ok(LabelRecord::AddClass {
            class: ClassId(slot as u8),
            name,
        })
    }

    /// The record that stores `embedding` (two's-complement bytes, see
    /// [`embedding_bytes`]) in `class`, with the eviction decided.
    pub fn plan_add_example<'e>(
        &self,
        class: ClassId,
        embedding: &'e [u8],
    ) -> Result<LabelRecord<'e>, KnnError> {
        if embedding.len() != D {
            return Err(KnnError::WrongDimension);
        }
        if !self.class_exists(class) {
            return Err(KnnError::NoSuchClass);
        }
        let norm = squared_norm(embedding);
        if norm == 0 {
            return Err(KnnError::ZeroEmbedding);
        }
        let id = ExampleId(self.next_example_id);
        let evicted = self.choose_eviction(class, embedding, norm, id);
        Ok(LabelRecord::AddExample {
            id,
            class,
            evicted,
            embedding,
        })
    }

    /// The victim for an insertion into `class`, or `None` if there is room.
    /// Returns `Some(incoming_id)` when the incoming example is dropped.
    fn choose_eviction(
        &self,
        class: ClassId,
        embedding: &[u8],
        norm: u32,
        incoming_id: ExampleId,
    ) -> Option<ExampleId> {
        let victim_class = if self.class_count(class) >= self.per_class_cap {
            class
        } else if self.len == N {
            let mut best = class;
            for c in self.classes() {
                let (cc, cb) = (self.class_count(c), self.class_count(best));
                if cc > cb {
                    best = c;
                }
            }
            best
        } else {
            return None;
        };
        let mut incoming = [0u8; D];
        incoming.copy_from_slice(embedding);
        // Members: stored slots of the victim class, plus the incoming one
        // (as `None`) when it joins that class.
        let with_incoming = victim_class == class;
        let member = |s: Option<usize>| match s {
            Some(s) => (&self.embeddings[s], self.norms[s], self.ids[s]),
            None => (&incoming, norm, incoming_id),
        };
        let slots = (0..self.len).filter(|&s| self.classes_of[s] == victim_class);
        let mut victim: Option<(i32, ExampleId)> = None;
        let candidates = slots.clone().map(Some).chain(with_incoming.then_some(None));
        for a in candidates {
            let (ea, na, ida) = member(a);
            // Redundancy of `a`: similarity to its nearest same-class member.
            let others = slots
                .clone()
                .map(Some)
                .chain(with_incoming.then_some(None))
                .filter(|&b| b != a);
            let mut redundancy = i32::MIN;
            for b in others {
                let (eb, nb, _) = member(b);
                redundancy = redundancy.max(cosine_q15(dot(ea, eb), na, nb));
            }
            // Ties: the incoming example goes first (it adds nothing new and
            // costs no flash write), then the older one.
            let better = match victim {
                None => true,
                Some((r, id)) => {
                    redundancy > r
                        || (redundancy == r && id != incoming_id && (a.is_none() || ida < id))
                }
            };
            if better {
                victim = Some((redundancy, ida));
            }
        }
        victim.map(|(_, id)| id)
    }

    /// Checks that `record` would apply, without changing anything.
    pub fn validate(&self, record: &LabelRecord<'_>) -> Result<(), KnnError> {
        match *record {
            LabelRecord::AddClass { class, name } => {
                if name.is_empty() || name.len() > MAX_CLASS_NAME {
                    return Err(KnnError::BadName);
                }
                if class.0 as usize >= C {
                    return Err(KnnError::ClassTableFull);
                }
                if self.class_exists(class) {
                    return Err(KnnError::ClassSlotTaken);
                }
                if self.find_class(name).is_some() {
                    return Err(KnnError::DuplicateName);
                }
            }
            LabelRecord::AddExample {
                id,
                class,
                evicted,
                embedding,
            } => {
                if embedding.len() != D {
                    return Err(KnnError::WrongDimension);
                }
                if squared_norm(embedding) == 0 {
                    return Err(KnnError::ZeroEmbedding);
                }
                if !self.class_exists(class) {
                    return Err(KnnError::NoSuchClass);
                }
                if self.slot_of(id).is_some() {
                    return Err(KnnError::DuplicateExample);
                }
                match evicted {
                    // Refused incoming example: nothing else to check.
                    Some(e) if e == id => {}
                    Some(e) => {
                        if self.slot_of(e).is_none() {
                            return Err(KnnError::BadEviction);
                        }
                    }
                    None => {
                        if self.len == N {
                            return Err(KnnError::BadEviction);
                        }
                    }
                }
            }
            LabelRecord::ForgetExample { id } => {
                self.slot_of(id).ok_or(KnnError::NoSuchExample)?;
            }
            LabelRecord::ForgetClass { class } => {
                if !self.class_exists(class) {
                    return Err(KnnError::NoSuchClass);
                }
            }
            LabelRecord::Relabel { from, into } => {
                if !self.class_exists(from) || !self.class_exists(into) {
                    return Err(KnnError::NoSuchClass);
                }
                if from == into {
                    return Err(KnnError::SameClass);
                }
            }
            LabelRecord::SetThreshold { similarity_q15 } => {
                if !(-Q15_ONE..=Q15_ONE).contains(&similarity_q15) {
                    return Err(KnnError::BadParameter);
                }
            }
            LabelRecord::SnapshotEnd { .. } => {}
            LabelRecord::HalfHeader { .. } => return Err(KnnError::NotAnOperation),
        }
        Ok(())
    }

    /// Executes a record (validated first; on error nothing changes). Used
    /// for live operations and for replaying the flash log.
    pub fn apply(&mut self, record: &LabelRecord<'_>) -> Result<Applied, KnnError> {
        self.validate(record)?;
        Ok(match *record {
            LabelRecord::AddClass { class, name } => {
                let e = &mut self.classes[class.0 as usize];
                *e = EMPTY_CLASS;
                e.name[..name.len()].copy_from_slice(name.as_bytes());
                e.name_len = name.len() as u8;
                e.used = true;
                Applied::ClassAdded(class)
            }
            LabelRecord::AddExample {
                id,
                class,
                evicted,
                embedding,
            } => {
                self.next_example_id = self.next_example_id.max(id.0.saturating_add(1));
                let evicted = match evicted {
                    Some(e) if e == id => {
                        return Ok(Applied::ExampleAdded(Added {
                            id,
                            evicted: Some(Evicted::Incoming),
                        }));
                    }
                    Some(e) => {
                        let class = self.remove_example(e)?;
                        Some(Evicted::Stored { id: e, class })
                    }
                    None => None,
                };
                let s = self.len;
                self.embeddings[s].copy_from_slice(embedding);
                self.norms[s] = squared_norm(embedding);
                self.ids[s] = id;
                self.classes_of[s] = class;
                self.len += 1;
                self.classes[class.0 as usize].count += 1;
                Applied::ExampleAdded(Added { id, evicted })
            }
            LabelRecord::ForgetExample { id } => {
                Applied::ExampleForgotten(self.remove_example(id)?)
            }
            LabelRecord::ForgetClass { class } => {
                let mut removed = 0;
                let mut s = 0;
                while s < self.len {
                    if self.classes_of[s] == class {
                        self.remove_slot(s);
                        removed += 1;
                    } else {
                        s += 1;
                    }
                }
                self.classes[class.0 as usize] = EMPTY_CLASS;
                Applied::ClassForgotten(removed)
            }
            LabelRecord::Relabel { from, into } => {
                let mut moved = 0;
                for c in self.classes_of[..self.len].iter_mut() {
                    if *c == from {
                        *c = into;
                        moved += 1;
                    }
                }
                self.classes[into.0 as usize].count += moved as u16;
                self.classes[from.0 as usize] = EMPTY_CLASS;
                Applied::Relabelled(moved)
            }
            LabelRecord::SetThreshold { similarity_q15 } => {
                self.threshold_q15 = similarity_q15;
                Applied::ThresholdSet
            }
            LabelRecord::SnapshotEnd { next_example_id } => {
                self.next_example_id = self.next_example_id.max(next_example_id);
                Applied::Bookkeeping
            }
            LabelRecord::HalfHeader { .. } => return Err(KnnError::NotAnOperation),
        })
    }

    fn remove_example(&mut self, id: ExampleId) -> Result<ClassId, KnnError> {
        let s = self.slot_of(id).ok_or(KnnError::NoSuchExample)?;
        let class = self.classes_of[s];
        self.remove_slot(s);
        Ok(class)
    }

    /// Removes a slot by moving the last one into it (order is irrelevant:
    /// ranking ties use ids, not slots).
    fn remove_slot(&mut self, s: usize) {
        let last = self.len - 1;
        let class = self.classes_of[s];
        self.classes[class.0 as usize].count -= 1;
        self.embeddings[s] = self.embeddings[last];
        self.norms[s] = self.norms[last];
        self.ids[s] = self.ids[last];
        self.classes_of[s] = self.classes_of[last];
        self.len = last;
    }

    // ----- the direct API (RAM only; the store wraps these with logging) -----

    /// Creates a class.
    pub fn add_class(&mut self, name: &str) -> Result<ClassId, KnnError> {
        let record = self.plan_add_class(name)?;
        self.apply(&record)?;
        match record {
            LabelRecord::AddClass { class, .. } => Ok(class),
            _ => Err(KnnError::NotAnOperation),
        }
    }

    /// Stores an example, evicting per the policy when needed.
    pub fn add_example(&mut self, class: ClassId, embedding: &[i8]) -> Result<Added, KnnError> {
        let bytes = embedding_bytes::<D>(embedding)?;
        let record = self.plan_add_example(class, &bytes)?;
        match self.apply(&record)? {
            Applied::ExampleAdded(a) => Ok(a),
            _ => Err(KnnError::NotAnOperation),
        }
    }

    /// Removes an example; returns its class.
    pub fn forget_example(&mut self, id: ExampleId) -> Result<ClassId, KnnError> {
        self.remove_example(id)
    }

    /// Removes a class and its examples; returns how many examples went.
    pub fn forget_class(&mut self, class: ClassId) -> Result<usize, KnnError> {
        match self.apply(&LabelRecord::ForgetClass { class })? {
            Applied::ClassForgotten(n) => Ok(n),
            _ => Err(KnnError::NotAnOperation),
        }
    }

    /// Merges `from` into `into`; returns how many examples moved.
    pub fn relabel(&mut self, from: ClassId, into: ClassId) -> Result<usize, KnnError> {
        match self.apply(&LabelRecord::Relabel { from, into })? {
            Applied::Relabelled(n) => Ok(n),
            _ => Err(KnnError::NotAnOperation),
        }
    }

    /// Sets the open-set threshold (Q15, in `-32768..=32768`).
    pub fn set_threshold_q15(&mut self, similarity_q15: i32) -> Result<(), KnnError> {
        self.apply(&LabelRecord::SetThreshold { similarity_q15 })
            .map(|_| ())
    }
}

/// Centres an engine output on its zero point (`q - zero_point`, saturated
/// to int8) so cosine similarity sees the real-valued direction. A no-op for
/// a symmetric embedding (zero point 0). Host and device must both use it.
pub fn centre_embedding(raw: &[i8], zero_point: i8, out: &mut [i8]) -> Result<(), KnnError> {
    if raw.len() != out.len() {
        return Err(KnnError::WrongDimension);
    }
    for (o, &q) in out.iter_mut().zip(raw) {
        *o = (q as i16 - zero_point as i16).clamp(-128, 127) as i8;
    }
    Ok(())
}

/// An int8 embedding as the two's-complement bytes records carry.
pub fn embedding_bytes<const D: usize>(embedding: &[i8]) -> Result<[u8; D], KnnError> {
    if embedding.len() != D {
        return Err(KnnError::WrongDimension);
    }
    let mut out = [0u8; D];
    for (o, &v) in out.iter_mut().zip(embedding) {
        *o = v as u8;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
