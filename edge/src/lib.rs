//! The SeaCLR device runtime: an int8 encoder engine, a few-shot kNN head
//! and a power-loss-safe label store, in bounded memory and without a heap.
#![no_std]
#![deny(missing_docs, unsafe_code)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod engine;
pub mod kernels;
pub mod knn;
pub mod store;
