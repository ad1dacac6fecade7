//! The lossless path escaping of `seaclr_shared::walk` (ids, CSV cells):
//! any bytes escape to one line of text that reads back to the same bytes,
//! and any text reads back without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seaclr_shared::walk::{escape_bytes, unescape_bytes};

fuzz_target!(|data: &[u8]| {
    let text = escape_bytes(data);
    assert!(!text.bytes().any(|b| b.is_ascii_control()), "{text:?}");
    assert_eq!(unescape_bytes(&text), data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = unescape_bytes(s);
    }
});
