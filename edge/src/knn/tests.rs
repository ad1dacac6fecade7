//! kNN head tests: synthetic embeddings whose answers are known exactly, and
//! property tests against a plain `f64` cosine reference.

use super::*;
use proptest::prelude::*;
use std::vec::Vec;

type Small = Knn<8, 4, 4>;

fn head_with_ab() -> (Small, ClassId, ClassId) {
    let mut h = Small::new();
    let a = h.add_class("A").unwrap();
    let b = h.add_class("B").unwrap();
    (h, a, b)
}

#[test]
fn similarities_are_exact_q15() {
    let (mut h, a, _) = head_with_ab();
    h.add_example(a, &[100, 0, 0, 0]).unwrap();
    let r = h.classify(&[50, 0, 0, 0]).unwrap();
    assert_eq!(r.best_similarity_q15, Q15_ONE);
    // cos 45 degrees = 1/sqrt 2 -> floor(32768 / 1.41421356) = 23170.
    let r = h.classify(&[7, 7, 0, 0]).unwrap();
    assert_eq!(r.best_similarity_q15, 23170);
    let r = h.classify(&[-3, 0, 0, 0]).unwrap();
    assert_eq!(r.best_similarity_q15, -Q15_ONE);
    let r = h.classify(&[0, 9, 0, 0]).unwrap();
    assert_eq!(r.best_similarity_q15, 0);
}

#[test]
fn nearest_class_wins_and_neighbours_are_ordered() {
    let (mut h, a, b) = head_with_ab();
    h.set_k(3).unwrap();
    let ea = h.add_example(a, &[100, 0, 0, 0]).unwrap().id;
    let eb1 = h.add_example(b, &[0, 100, 0, 0]).unwrap().id;
    let eb2 = h.add_example(b, &[0, 100, 10, 0]).unwrap().id;
    let r = h.classify(&[90, 10, 0, 0]).unwrap();
    let ids: Vec<_> = r.neighbours().iter().map(|n| n.example).collect();
    assert_eq!(ids, [ea, eb1, eb2]);
    // Weights: A cos = 0.99388 -> 32567; B: 0.11043 -> 3618, 0.10988 -> 3600.
    let sims: Vec<_> = r.neighbours().iter().map(|n| n.similarity_q15).collect();
    assert_eq!(sims, [32567, 3618, 3600]);
    assert_eq!(r.class, Some(a));
    assert_eq!(r.vote_winner, Some(a));
    let total = 32567u64 + 3618 + 3600;
    assert_eq!(r.confidence_q15 as u64, 32567 * 32768 / total);
}

#[test]
fn the_vote_is_weighted_by_similarity() {
    let (mut h, a, b) = head_with_ab();
    h.set_k(3).unwrap();
    // One very close A, two moderately close B: B's summed weight is larger.
    h.add_example(a, &[100, 0, 0, 0]).unwrap();
    h.add_example(b, &[60, 80, 0, 0]).unwrap();
    h.add_example(b, &[60, 0, 80, 0]).unwrap();
    let r = h.classify(&[100, 10, 10, 0]).unwrap();
    assert_eq!(r.neighbours()[0].class, a, "nearest is A");
    assert_eq!(r.vote_winner, Some(b), "but two B neighbours outweigh it");
    // With k = 1 the nearest decides alone, with full confidence.
    h.set_k(1).unwrap();
    let r = h.classify(&[100, 10, 10, 0]).unwrap();
    assert_eq!(r.class, Some(a));
    assert_eq!(r.confidence_q15, Q15_ONE);
}

#[test]
fn below_threshold_is_unknown_but_reports_the_winner() {
    let (mut h, a, _) = head_with_ab();
    h.add_example(a, &[100, 0, 0, 0]).unwrap();
    h.set_threshold_q15(23170).unwrap();
    assert_eq!(
        h.classify(&[7, 7, 0, 0]).unwrap().class,
        Some(a),
        "equal passes"
    );
    h.set_threshold_q15(23171).unwrap();
    let r = h.classify(&[7, 7, 0, 0]).unwrap();
    assert_eq!(r.class, None);
    assert_eq!(r.vote_winner, Some(a));
    assert_eq!(r.neighbours().len(), 1);
    assert_eq!(h.set_threshold_q15(40000), Err(KnnError::BadParameter));
}

#[test]
fn empty_memory_and_zero_query_are_unknown() {
    let (mut h, a, _) = head_with_ab();
    let r = h.classify(&[1, 2, 3, 4]).unwrap();
    assert_eq!((r.class, r.neighbours().len()), (None, 0));
    h.add_example(a, &[1, 2, 3, 4]).unwrap();
    let r = h.classify(&[0, 0, 0, 0]).unwrap();
    assert_eq!((r.class, r.neighbours().len()), (None, 0));
    assert_eq!(h.classify(&[1, 2, 3]), Err(KnnError::WrongDimension));
}

#[test]
fn class_table_rules() {
    let (mut h, a, b) = head_with_ab();
    assert_eq!(h.add_class("A"), Err(KnnError::DuplicateName));
    assert_eq!(h.add_class(""), Err(KnnError::BadName));
    assert_eq!(h.add_class(&"x".repeat(33)), Err(KnnError::BadName));
    assert!(h.add_class(&"x".repeat(32)).is_ok());
    h.add_class("D").unwrap();
    assert_eq!(h.add_class("E"), Err(KnnError::ClassTableFull));
    assert_eq!(h.class_name(a), Some("A"));
    assert_eq!(h.find_class("B"), Some(b));
    // A freed slot is reused by the next class.
    h.forget_class(a).unwrap();
    assert_eq!(h.add_class("E"), Ok(a));
    assert_eq!(
        h.add_example(ClassId(3), &[0, 0, 0, 0]),
        Err(KnnError::ZeroEmbedding)
    );
    assert_eq!(
        h.add_example(ClassId(9), &[1, 0, 0, 0]),
        Err(KnnError::NoSuchClass)
    );
}

#[test]
fn forget_and_relabel() {
    let (mut h, a, b) = head_with_ab();
    let c = h.add_class("C").unwrap();
    let x = h.add_example(a, &[100, 0, 0, 0]).unwrap().id;
    h.add_example(b, &[0, 100, 0, 0]).unwrap();
    h.add_example(c, &[0, 0, 100, 0]).unwrap();
    h.add_example(c, &[0, 0, 90, 10]).unwrap();
    assert_eq!(h.forget_example(x), Ok(a));
    assert_eq!(h.forget_example(x), Err(KnnError::NoSuchExample));
    assert_eq!(h.class_count(a), 0);
    assert_eq!(
        h.classify(&[100, 0, 0, 0]).unwrap().neighbours()[0].class,
        b
    );
    assert_eq!(h.relabel(c, b), Ok(2));
    assert_eq!(h.class_count(b), 3);
    assert_eq!(h.class_name(c), None);
    assert_eq!(h.classify(&[0, 0, 100, 0]).unwrap().class, Some(b));
    assert_eq!(h.relabel(b, b), Err(KnnError::SameClass));
    assert_eq!(h.forget_class(b), Ok(3));
    assert!(h.is_empty());
    // Ids are not reused after forgetting.
    assert_eq!(h.add_example(a, &[1, 0, 0, 0]).unwrap().id, ExampleId(4));
}

#[test]
fn full_memory_evicts_the_most_redundant_of_the_largest_class() {
    let mut h = Knn::<4, 4, 4>::new();
    let a = h.add_class("A").unwrap();
    let b = h.add_class("B").unwrap();
    h.add_example(a, &[100, 0, 0, 0]).unwrap();
    let twin1 = h.add_example(a, &[0, 100, 0, 0]).unwrap().id;
    let twin2 = h.add_example(a, &[0, 100, 1, 0]).unwrap().id;
    h.add_example(b, &[0, 0, 0, 100]).unwrap();
    // B is small: adding to it evicts from A, the older of the two twins.
    let added = h.add_example(b, &[0, 0, 50, 100]).unwrap();
    assert_eq!(
        added.evicted,
        Some(Evicted::Stored {
            id: twin1,
            class: a
        })
    );
    assert_eq!(h.len(), 4);
    assert!(h.example(twin2).is_some());
    // Now A and B hold 2 each; adding a near duplicate to B drops B's most
    // redundant member: the incoming example itself.
    let added = h.add_example(b, &[0, 0, 50, 100]).unwrap();
    assert_eq!(added.evicted, Some(Evicted::Incoming));
    assert!(h.example(added.id).is_none());
    assert_eq!(h.len(), 4);
}

#[test]
fn per_class_cap_evicts_within_the_class() {
    let (mut h, a, b) = head_with_ab();
    h.set_per_class_cap(2).unwrap();
    let first = h.add_example(a, &[100, 0, 0, 0]).unwrap().id;
    let second = h.add_example(a, &[95, 30, 0, 0]).unwrap().id;
    h.add_example(b, &[0, 0, 100, 0]).unwrap();
    // The stored pair is the most similar one; the older of it goes.
    let r = h.add_example(a, &[0, 100, 0, 0]).unwrap();
    assert_eq!(
        r.evicted,
        Some(Evicted::Stored {
            id: first,
            class: a
        })
    );
    assert_eq!(h.class_count(a), 2);
    assert_eq!(h.class_count(b), 1);
    // A near-duplicate of a stored example is refused instead.
    let r = h.add_example(a, &[95, 30, 0, 1]).unwrap();
    assert_eq!(r.evicted, Some(Evicted::Incoming));
    assert!(h.example(second).is_some());
}

#[test]
fn planned_records_replay_to_the_same_memory() {
    let (mut live, a, b) = head_with_ab();
    type Logged = (u8, ClassId, Option<ExampleId>, [u8; 4], u32);
    let mut log: Vec<Logged> = Vec::new();
    let mut replica = Small::new();
    replica
        .apply(&LabelRecord::AddClass {
            class: a,
            name: "A",
        })
        .unwrap();
    replica
        .apply(&LabelRecord::AddClass {
            class: b,
            name: "B",
        })
        .unwrap();
    for i in 0..20i32 {
        let e = [
            (i * 37 % 200 - 100) as i8,
            (i * 11 % 50) as i8,
            3,
            (i % 7) as i8,
        ];
        let class = if i % 3 == 0 { a } else { b };
        let bytes = embedding_bytes::<4>(&e).unwrap();
        let rec = live.plan_add_example(class, &bytes).unwrap();
        live.apply(&rec).unwrap();
        if let LabelRecord::AddExample { id, evicted, .. } = rec {
            log.push((0, class, evicted, bytes, id.0));
        }
    }
    for (_, class, evicted, bytes, id) in &log {
        replica
            .apply(&LabelRecord::AddExample {
                id: ExampleId(*id),
                class: *class,
                evicted: *evicted,
                embedding: bytes,
            })
            .unwrap();
    }
    let mut l: Vec<_> = live.examples().map(|(i, c, e)| (i, c, *e)).collect();
    let mut r: Vec<_> = replica.examples().map(|(i, c, e)| (i, c, *e)).collect();
    l.sort();
    r.sort();
    assert_eq!(l, r);
    assert_eq!(live.len(), 8);
}

#[test]
fn centring_subtracts_the_zero_point_and_saturates() {
    let mut out = [0i8; 4];
    centre_embedding(&[-128, 0, 5, 127], -5, &mut out).unwrap();
    assert_eq!(out, [-123, 5, 10, 127]);
    centre_embedding(&[-128, 0, 5, 127], 10, &mut out).unwrap();
    assert_eq!(out, [-128, -10, -5, 117]);
    assert_eq!(
        centre_embedding(&[1, 2], 0, &mut out),
        Err(KnnError::WrongDimension)
    );
}

#[test]
fn isqrt_is_the_floor_square_root() {
    for v in (0u64..5000).chain([u64::MAX, 1 << 62, (1 << 42) - 1, 1 << 42]) {
        let r = isqrt(v);
        assert!(r * r <= v, "{v}");
        assert!((r + 1).checked_mul(r + 1).is_none_or(|s| s > v), "{v}");
    }
}

#[test]
fn extreme_int8_vectors_do_not_overflow() {
    let mut h = Knn::<2, 128, 2>::new();
    let a = h.add_class("A").unwrap();
    h.add_example(a, &[-128; 128]).unwrap();
    h.add_example(a, &[127; 128]).unwrap();
    let r = h.classify(&[-128; 128]).unwrap();
    assert_eq!(r.best_similarity_q15, Q15_ONE);
    assert_eq!(r.neighbours()[1].similarity_q15, -Q15_ONE);
}

fn cos_f64(a: &[i8], b: &[i8]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum();
    let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum();
    d / (na * nb).sqrt()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The k neighbours are exactly the top k of the f64 cosine ranking, in
    /// order, and their Q15 values match f64 to within rounding.
    #[test]
    fn neighbours_match_the_f64_ranking(
        stored in proptest::collection::vec(proptest::collection::vec(-128i8..=127, 128), 1..40),
        query in proptest::collection::vec(-128i8..=127, 128),
        k in 1usize..=MAX_K,
    ) {
        let mut h = Knn::<40, 128, 2>::new();
        let a = h.add_class("A").unwrap();
        let mut kept = Vec::new();
        for e in &stored {
            if let Ok(added) = h.add_example(a, e) {
                kept.push((added.id, e.clone()));
            }
        }
        h.set_k(k).unwrap();
        prop_assume!(query.iter().any(|&v| v != 0) && !kept.is_empty());
        let r = h.classify(&query).unwrap();
        let mut reference: Vec<(f64, ExampleId)> =
            kept.iter().map(|(id, e)| (cos_f64(&query, e), *id)).collect();
        reference.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
        let got = r.neighbours();
        prop_assert_eq!(got.len(), k.min(kept.len()));
        for (i, n) in got.iter().enumerate() {
            let exact = reference.iter().find(|(_, id)| *id == n.example).unwrap().0;
            // Same rank as f64, up to f64 rounding on near-ties.
            prop_assert!((exact - reference[i].0).abs() < 1e-12, "rank {} differs", i);
            prop_assert!((n.similarity_q15 as f64 - exact * 32768.0).abs() <= 1.0);
        }
    }

    #[test]
    fn compare_cosine_agrees_with_f64(
        a in proptest::collection::vec(-128i8..=127, 128),
        b in proptest::collection::vec(-128i8..=127, 128),
        q in proptest::collection::vec(-128i8..=127, 128),
    ) {
        let sq = |v: &[i8]| v.iter().map(|&x| (x as i32 * x as i32) as u32).sum::<u32>();
        let dt = |x: &[i8], y: &[i8]| x.iter().zip(y).map(|(&p, &r)| p as i32 * r as i32).sum::<i32>();
        prop_assume!(sq(&a) > 0 && sq(&b) > 0 && sq(&q) > 0);
        let (ca, cb) = (cos_f64(&q, &a), cos_f64(&q, &b));
        let ord = compare_cosine(dt(&q, &a), sq(&a), dt(&q, &b), sq(&b));
        if (ca - cb).abs() > 1e-12 {
            prop_assert_eq!(ord, ca.partial_cmp(&cb).unwrap());
        }
        prop_assert_eq!(compare_cosine(dt(&q, &a), sq(&a), dt(&q, &a), sq(&a)), Ordering::Equal);
    }
}
