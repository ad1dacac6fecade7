//! Sets `cfg(seaclr_dsp)` on targets whose cores all have the Armv7E-M DSP
//! extension (`thumbv7em-*`: Cortex-M4, M7), which selects the `smlad`
//! convolution kernel. rustc does not report `target_feature = "dsp"` to
//! `cfg` on stable (Arm target features are unstable there), so the target
//! name decides, as in the `cortex-m` crate.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(seaclr_dsp)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em-") {
        println!("cargo::rustc-cfg=seaclr_dsp");
    }
}
