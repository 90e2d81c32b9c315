//! Codec tests: golden bytes pin the encoding; random and truncated frames never panic.
use mlt_protocol::codec::{self, FrameBuffer, DEFAULT_MAX_FRAME};
use mlt_protocol::handshake::{Hello, Role};
use mlt_protocol::ids::{NodeId, SlotId, StudyId, TrialId, TrialKey};
use mlt_protocol::messages::*;
use mlt_protocol::records::ParamValue;
use proptest::prelude::*;

fn key() -> TrialKey {
    TrialKey {
        study: StudyId(1),
        trial: TrialId(2),
        attempt: 3,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn golden_hello() {
    let hello = Hello {
        protocol_version: 1,
        role: Role::Node,
        secret: "ab".into(),
        name: "n1".into(),
        node: Some(NodeId(300)),
    };
    let bytes = codec::encode(&hello, DEFAULT_MAX_FRAME).unwrap();
    // len=11 | version 1 | role Node=0 | len 2 "ab" | len 2 "n1" | Some, 300 as varint ac 02
    assert_eq!(
        hex(&bytes),
        "0b000000".to_string() + "01" + "00" + "026162" + "026e31" + "01ac02"
    );
    let back: Hello = codec::decode(&bytes[4..]).unwrap();
    assert_eq!(back, hello);
}

#[test]
fn golden_messages() {
    let report = FromNode::Report(ReportMsg {
        key: key(),
        step: 4,
        values: vec![0.5],
    });
    assert_eq!(
        hex(&codec::encode(&report, 1024).unwrap()),
        "0e000000".to_string() + "02" + "010203" + "04" + "01" + "000000000000e03f"
    );
    let work = FromNode::RequestWork(RequestWorkMsg { slot: SlotId(1) });
    assert_eq!(hex(&codec::encode(&work, 1024).unwrap()), "020000000101");
    let verdict = ToNode::Verdict(VerdictMsg {
        key: key(),
        step: 2,
        verdict: Verdict::Prune,
    });
    assert_eq!(
        hex(&codec::encode(&verdict, 1024).unwrap()),
        "06000000".to_string() + "01" + "010203" + "02" + "01"
    );
    let finish = FromNode::Finish(FinishMsg {
        key: key(),
        outcome: Outcome::Failed("x".into()),
        run: None,
    });
    assert_eq!(
        hex(&codec::encode(&finish, 1024).unwrap()),
        "080000000301020301017800"
    );
    let status = FromClient::Status;
    assert_eq!(hex(&codec::encode(&status, 1024).unwrap()), "0100000001");
    // Appended variants keep the earlier ones' indices: Annotate is FromClient's 15th.
    let tag = FromClient::Annotate(mlt_protocol::catalog::AnnotateMsg {
        study: "s".into(),
        trial: Some(3),
        set: vec![("k".into(), "v".into())],
        remove: vec![],
        note: None,
    });
    assert_eq!(
        hex(&codec::encode(&tag, 1024).unwrap()),
        "0c000000".to_string() + "0e" + "0173" + "0103" + "01016b0176" + "00" + "00"
    );
}

#[test]
fn param_values_are_tagged_on_the_wire_and_bare_in_json() {
    let v = ParamValue::Float(0.25);
    assert_eq!(
        hex(&codec::encode(&v, 64).unwrap()),
        "0900000002000000000000d03f"
    );
    assert_eq!(serde_json::to_string(&v).unwrap(), "0.25");
    assert_eq!(
        serde_json::to_string(&ParamValue::Str("gbdt".into())).unwrap(),
        "\"gbdt\""
    );
    let back: ParamValue = serde_json::from_str("3").unwrap();
    assert_eq!(back, ParamValue::Int(3));
}

#[test]
fn oversized_frames_are_refused_before_reading() {
    let mut buf = FrameBuffer::new(16);
    buf.push(&1000u32.to_le_bytes());
    assert!(matches!(
        buf.next_payload(),
        Err(codec::CodecError::TooLarge { len: 1000, max: 16 })
    ));
    let big = FromNode::Report(ReportMsg {
        key: key(),
        step: 1,
        values: vec![1.0; 100],
    });
    assert!(matches!(
        codec::encode(&big, 64),
        Err(codec::CodecError::TooLarge { .. })
    ));
}

#[test]
fn frame_buffer_reassembles_split_frames() {
    let msgs = [
        FromNode::Draining,
        FromNode::RequestWork(RequestWorkMsg { slot: SlotId(7) }),
    ];
    let mut bytes = Vec::new();
    for m in &msgs {
        codec::encode_into(m, 1024, &mut bytes).unwrap();
    }
    let mut buf = FrameBuffer::new(1024);
    let mut got = Vec::new();
    for b in bytes {
        buf.push(&[b]);
        while let Some(m) = buf.next_msg::<FromNode>().unwrap() {
            got.push(m);
        }
    }
    assert_eq!(got, msgs);
}

#[test]
fn trailing_bytes_are_malformed() {
    let mut bytes = codec::encode(&FromNode::Draining, 64).unwrap();
    bytes.push(0);
    assert!(codec::decode::<FromNode>(&bytes[4..]).is_err());
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::decode::<FromNode>(&bytes);
        let _ = codec::decode::<FromClient>(&bytes);
        let _ = codec::decode::<ToNode>(&bytes);
        let _ = codec::decode::<ToClient>(&bytes);
        let _ = codec::decode::<Hello>(&bytes);
        let mut buf = FrameBuffer::new(256);
        buf.push(&bytes);
        while let Ok(Some(_)) = buf.next_msg::<FromNode>() {}
    }

    #[test]
    fn truncated_frames_never_decode_or_panic(step in 0u64..1_000_000, v in any::<f64>(), cut in 0usize..40) {
        let msg = FromNode::Report(ReportMsg { key: key(), step, values: vec![v, v] });
        let bytes = codec::encode(&msg, 1024).unwrap();
        let payload = &bytes[4..];
        let cut = cut.min(payload.len().saturating_sub(1));
        prop_assert!(codec::decode::<FromNode>(&payload[..cut]).is_err());
        let back: FromNode = codec::decode(payload).unwrap();
        if v.is_nan() { prop_assert!(matches!(back, FromNode::Report(_))); } else { prop_assert_eq!(back, msg); }
    }
}
