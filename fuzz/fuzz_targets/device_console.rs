//! Any bytes on the console of a booted buoy (no model installed, so every
//! command runs its refusal path too) must give reply lines, never a panic;
//! every reply line starts with `ok` or `error:`, no reply line is longer
//! than the console accepts plus a fixed margin (a line is never echoed
//! whole), and the label store stays untouched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seaclr_device::buoy::{Buoy, Config};
use seaclr_device::console::MAX_LINE;
use seaclr_device::flash;
use seaclr_device::ram::DeviceRam;
use seaclr_edge::store::mock_flash::MockFlash;
use seaclr_shared::partition::Layout;

const LAYOUT: Layout = Layout {
    model_capacity: 4096,
    store_capacity: 8 * 4096,
};

fuzz_target!(|data: &[u8]| {
    let mut memory = vec![0xFFu8; LAYOUT.total() as usize];
    flash::format(&mut MockFlash::<4, 4096>::new(&mut memory), LAYOUT).expect("format");
    let before = memory.clone();
    {
        let mut ram = Box::new(DeviceRam::new());
        let mut model = [0u8; 4096];
        let chip = MockFlash::<4, 4096>::new(&mut memory);
        let mut buoy = Buoy::boot(Config::default(), chip, &mut model, &mut ram).expect("boot");
        let mut out = String::new();
        buoy.console_input(data, &mut out).expect("writing to a String");
        for line in out.lines() {
            assert!(line.starts_with("ok") || line.starts_with("error:"), "{line}");
            assert!(line.len() <= MAX_LINE + 400, "a {}-byte reply", line.len());
        }
    }
    assert!(memory == before, "the console wrote to flash without a model");
});
