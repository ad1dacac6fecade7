//! Any bytes given to the telemetry decoder must end in a message or a
//! `TelemetryError`, never a panic; and whatever decodes must be sane: its
//! counts consistent (at most `MAX_COUNT` each, class counts plus unknown at
//! most the frame count) and re-encodable into one SBD message that decodes
//! to the same value. Every input is tried twice: as it is, and framed with
//! the magic byte and a valid CRC so the body decoder and the range checks
//! after the checksum are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seaclr_shared::telemetry::{
    CLASS_TABLE_MAGIC, ClassTablePart, MAGIC, MAX_COUNT, SBD_MAX_BYTES, Telemetry,
};

const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

fn check(bytes: &[u8]) {
    let Ok(msg) = Telemetry::decode(bytes) else {
        return;
    };
    msg.check_counts()
        .expect("a decoded message passes its own checks");
    assert!(msg.counts.as_slice().iter().all(|&c| c <= MAX_COUNT));
    assert!(msg.unknown <= msg.frames);
    let mut buf = [0u8; SBD_MAX_BYTES];
    let encoded = msg.encode(&mut buf).expect("a decoded message re-encodes");
    assert_eq!(Telemetry::decode(encoded).as_ref(), Ok(&msg));
}

/// A class-table part decodes or is refused; what decodes lists exactly
/// `count` names of at most 32 bytes within `total`.
fn check_table(bytes: &[u8]) {
    if let Ok(part) = ClassTablePart::decode(bytes) {
        assert_eq!(part.names().count(), usize::from(part.count));
        assert!(part.names().all(|n| n.len() <= 32));
        assert!(usize::from(part.first) + usize::from(part.count) <= usize::from(part.total));
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    check_table(data);
    let mut table = Vec::with_capacity(data.len() + 3);
    table.push(CLASS_TABLE_MAGIC);
    table.push(1);
    table.extend_from_slice(data);
    let crc = CRC16.checksum(&table);
    table.extend_from_slice(&crc.to_le_bytes());
    check_table(&table);
    let mut framed = Vec::with_capacity(data.len() + 3);
    framed.push(MAGIC);
    framed.extend_from_slice(data);
    let crc = CRC16.checksum(&framed);
    framed.extend_from_slice(&crc.to_le_bytes());
    check(&framed);
});
