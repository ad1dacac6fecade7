//! Any bytes in the two partition-table copies must give a table or a
//! `NoTable` error, never a panic; whatever is chosen must be a table the
//! checks accept (layout, offsets, model length within its region) and must
//! round-trip. Each input is tried as it is and with both copies' CRCs
//! recomputed, so the checks after the checksum are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seaclr_shared::partition::{TABLE_LEN, Table, choose};

const CRC_AT: usize = 56;

fn check(a: &[u8], b: &[u8]) {
    if let Ok(chosen) = choose(a, b) {
        let t = chosen.table;
        assert!(t.layout.check().is_ok());
        assert!(t.model_len <= t.layout.model_capacity);
        assert_eq!(Table::from_bytes(&t.to_bytes()), Ok(t));
    }
}

fn with_crc(copy: &[u8]) -> [u8; TABLE_LEN] {
    let mut out = [0xFF; TABLE_LEN];
    let n = copy.len().min(TABLE_LEN);
    out[..n].copy_from_slice(&copy[..n]);
    let crc = seaclr_shared::blob::crc32(&out[..CRC_AT]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    let (a, b) = data.split_at(data.len() / 2);
    check(a, b);
    let (fa, fb) = (with_crc(a), with_crc(b));
    check(&fa, &fb);
    check(&fa, b);
});
