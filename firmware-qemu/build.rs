//! Puts `memory.x` where the linker (cortex-m-rt's `link.x`) finds it.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    // The fixtures are include_bytes!/include!d: rebuild when they change.
    println!("cargo:rerun-if-changed=fixtures");
    println!("cargo:rerun-if-changed=../models/seaclr-s.seaclr");
}
