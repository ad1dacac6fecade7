//! Evaluation as plankton scientists judge an encoder: few-shot transfer to
//! classes the encoder never saw (kNN, logistic regression, RBF SVC, balanced
//! accuracy over many seeded draws), raw-pixel and random-weight baselines in
//! the same run, cosine distance matrices, a 2-D map, nearest and furthest
//! images, training curves, and one self-contained HTML report plus
//! `metrics.json`.
//!
//! Every encoder is judged through [`crate::embedder::Embedder`], so float,
//! int8 and baseline encoders share one code path. The numeric core works on
//! Gram matrices of a fixed pool of embeddings: each pool is embedded and its
//! Gram matrices computed once, then every draw and classifier reads them.

pub mod baselines;
pub mod classifiers;
pub mod cli;
pub mod curves;
pub mod dataset;
pub mod distances;
pub mod gram;
pub mod images;
pub mod map2d;
pub mod metrics;
pub mod plots;
pub mod protocol;
pub mod provenance;
pub mod report;
