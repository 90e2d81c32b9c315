//! Every message type a peer can send or receive, decoded from arbitrary bytes: an error,
//! never a panic; what decodes re-encodes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mlt_protocol::codec;
use mlt_protocol::messages::{FromClient, FromNode, ToClient, ToNode};

fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned>(data: &[u8]) {
    if let Ok(m) = codec::decode::<T>(data) {
        codec::encode(&m, 1 << 26).expect("what decodes encodes");
    }
}

fuzz_target!(|data: &[u8]| {
    roundtrip::<FromNode>(data);
    roundtrip::<FromClient>(data);
    roundtrip::<ToNode>(data);
    roundtrip::<ToClient>(data);
    if data.len() >= codec::HEADER_LEN {
        let mut h = [0u8; codec::HEADER_LEN];
        h.copy_from_slice(&data[..codec::HEADER_LEN]);
        let _ = codec::frame_len(h, 1 << 16);
    }
});
