//! Any bytes given to the frame-stream decoder must end in frames or a
//! `StreamError`, never a panic; every frame it returns must be within the
//! camera buffer's size with exactly width x height pixels, and the stream
//! must re-encode to the same bytes up to the point it stopped. Each input
//! is tried as it is and behind a valid header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seaclr_shared::frame_stream::{
    Decoder, HEADER_LEN, MAX_HEIGHT, MAX_RECORD_LEN, MAX_WIDTH, encode_record, write_header,
};

fn check(bytes: &[u8]) {
    let Ok(mut decoder) = Decoder::new(bytes) else {
        return;
    };
    let mut buf = vec![0u8; MAX_RECORD_LEN];
    let mut consumed = HEADER_LEN;
    loop {
        let frame = match decoder.next_frame(&mut buf) {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => break,
        };
        assert!((1..=MAX_WIDTH).contains(&frame.width) && (1..=MAX_HEIGHT).contains(&frame.height));
        assert_eq!(frame.pixels.len(), frame.width * frame.height);
        let mut again = vec![0u8; MAX_RECORD_LEN];
        let n = encode_record(frame.width, frame.height, frame.id, frame.pixels, &mut again)
            .expect("a decoded frame re-encodes");
        assert_eq!(&again[..n], &bytes[consumed..consumed + n]);
        consumed += n;
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut framed = vec![0u8; HEADER_LEN];
    write_header(&mut framed).expect("header fits");
    framed.extend_from_slice(data);
    check(&framed);
});
