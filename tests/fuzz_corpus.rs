//! The fuzz targets' seed corpus (fuzz/corpus/TARGET/*), replayed on stable by `make test`
//! through the same entry points the targets call (fuzz/fuzz_targets): each input gives an
//! answer or an error, never a panic. `make fuzz` runs the coverage-guided fuzzers (nightly).
//! `cargo test --test fuzz_corpus -- --ignored` writes the seeds again.
use mlt_protocol::codec;
use mlt_protocol::handshake::{Hello, Role};
use mlt_protocol::messages::{FromClient, FromNode, ToClient, ToNode};
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned>(data: &[u8]) -> bool {
    match codec::decode::<T>(data) {
        Ok(m) => {
            codec::encode(&m, 1 << 26).expect("what decodes encodes");
            true
        }
        Err(_) => false,
    }
}

fn roles(secret: &str) -> Option<Role> {
    match secret {
        "n" => Some(Role::Node),
        "c" => Some(Role::Client),
        _ => None,
    }
}

#[test]
fn the_seed_corpus_replays_without_a_panic() {
    let mut decoded = 0;
    for (_, data) in corpus("messages") {
        let any = roundtrip::<FromNode>(&data)
            | roundtrip::<FromClient>(&data)
            | roundtrip::<ToNode>(&data)
            | roundtrip::<ToClient>(&data);
        decoded += usize::from(any);
    }
    assert!(decoded > 0, "the message seeds decode");
    for (p, data) in corpus("handshake") {
        if let Ok(h) = mlt_scheduler::server::admit(Some(&data), roles) {
            assert!(!h.name.chars().any(char::is_control), "{}", p.display());
        }
    }
    let mut specs = 0;
    for (_, data) in corpus("spec") {
        if let Ok(text) = std::str::from_utf8(&data) {
            specs += usize::from(mlt_spec::parse(text, "fuzz.toml").is_ok());
        }
    }
    assert!(specs > 0, "the example specs parse");
    for (p, data) in corpus("bars") {
        if let Ok(text) = std::str::from_utf8(&data) {
            if let Ok((b, r)) = mlt_eval::data::parse_csv(text, "fuzz.csv", false) {
                assert!(b.days.windows(2).all(|w| w[0] < w[1]), "{}", p.display());
                let _ = r.problems("fuzz.csv");
            }
        }
    }
    let bars = mlt_eval::synthetic::generate(&mlt_eval::synthetic::Synthetic {
        days: 64,
        ..Default::default()
    })
    .unwrap();
    for (_, data) in corpus("features") {
        if let Ok(text) = std::str::from_utf8(&data) {
            if let Ok(e) = mlt_eval::features::parse(text) {
                let _ = mlt_eval::features::eval(&e, &bars);
            }
        }
    }
}

/// Writes the seeds: messages of every kind, Hellos, the example specs, data files with and
/// without problems, feature expressions.
#[test]
#[ignore]
fn write_the_seed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let d = root.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    };
    let payload = |frame: Vec<u8>| frame[codec::HEADER_LEN..].to_vec();
    use mlt_protocol::ids::{SlotId, StudyId, TrialId, TrialKey};
    use mlt_protocol::messages::*;
    let key = TrialKey {
        study: StudyId(1),
        trial: TrialId(2),
        attempt: 1,
    };
    let node_msgs = [
        FromNode::Heartbeat(HeartbeatMsg { running: vec![key] }),
        FromNode::RequestWork(RequestWorkMsg { slot: SlotId(0) }),
        FromNode::Report(ReportMsg {
            key,
            step: 3,
            values: vec![0.5, -1.0],
        }),
        FromNode::Finish(FinishMsg {
            key,
            outcome: Outcome::Complete(vec![1.0], Default::default()),
            run: None,
        }),
        FromNode::Draining,
    ];
    for (i, m) in node_msgs.iter().enumerate() {
        put(
            "messages",
            &format!("from-node-{i}"),
            &payload(codec::encode(m, 1 << 20).unwrap()),
        );
    }
    let client_msgs = [
        FromClient::Status,
        FromClient::Trials(TrialPageMsg {
            study: "s".into(),
            from: 0,
            limit: 100,
        }),
        FromClient::Submit(SubmitMsg {
            spec_toml: "[study]\nname = \"s\"\n".into(),
            source: "s.toml".into(),
            workdir: None,
            notes: vec!["x.csv: 1 repeated date".into()],
        }),
        FromClient::Backup("/tmp/x".into()),
        FromClient::Annotate(mlt_protocol::catalog::AnnotateMsg {
            study: "s".into(),
            trial: Some(3),
            set: vec![("desk".into(), "fx".into())],
            remove: vec!["old".into()],
            note: Some("looks robust".into()),
        }),
        FromClient::Registry(mlt_protocol::models::RegistryRequest::Stage {
            name: "spy".into(),
            version: 2,
            to: mlt_protocol::models::Stage::Production,
            reason: Some("why".into()),
            force: true,
        }),
        FromClient::Serving(mlt_protocol::serving::ServingRequest::Log(vec![
            mlt_protocol::serving::PredictionRecord {
                name: "spy".into(),
                seq: 0,
                at_ms: 1,
                version: 2,
                arm: mlt_protocol::serving::Arm::Candidate,
                served: false,
                endpoint: "bars".into(),
                instrument: "SPY".into(),
                day: 19_000,
                close: 470.5,
                features_hash: 7,
                prediction: 0.001,
                error: None,
                client: Some("c1".into()),
            },
        ])),
        FromClient::Serving(mlt_protocol::serving::ServingRequest::Start(
            mlt_protocol::serving::RolloutPlan {
                name: "spy".into(),
                candidate: 2,
                steps: vec![10.0, 50.0, 100.0],
                every: Some(mlt_protocol::serving::Every::Requests(500)),
                shadow: false,
                sticky: mlt_protocol::serving::Sticky::Instrument,
                max_error_rate: 0.05,
                alpha: 0.01,
                min_pairs: 60,
            },
        )),
    ];
    for (i, m) in client_msgs.iter().enumerate() {
        put(
            "messages",
            &format!("from-client-{i}"),
            &payload(codec::encode(m, 1 << 20).unwrap()),
        );
    }
    for (i, (role, secret, name)) in [
        (Role::Node, "n", "gpu-01"),
        (Role::Client, "c", "alice"),
        (Role::Client, "wrong", "x\ny"),
    ]
    .into_iter()
    .enumerate()
    {
        let h = Hello {
            protocol_version: mlt_protocol::PROTOCOL_VERSION,
            role,
            secret: secret.into(),
            name: name.into(),
            node: (role == Role::Node).then_some(mlt_protocol::NodeId(7)),
        };
        put(
            "handshake",
            &format!("hello-{i}"),
            &payload(codec::encode(&h, 1 << 16).unwrap()),
        );
    }
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for e in std::fs::read_dir(&examples).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            put(
                "spec",
                &p.file_name().unwrap().to_string_lossy(),
                &std::fs::read(&p).unwrap(),
            );
        }
    }
    put(
        "bars",
        "clean.csv",
        b"Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,10,11,9,10.5,10.4,100\n2024-01-03,10.5,11,10,10.8,10.7,120\n",
    );
    put(
        "bars",
        "problems.csv",
        b"date,close\n2024-01-08,10\n2024-01-05,0\n2024-01-04,\n2024-01-04,10.2\n2024-01-03\n",
    );
    for (i, f) in [
        "sum(returns, 5) / std(returns, 20)",
        "rsi(14) / 100 - 0.5",
        "mean((high - low) / close, 10)",
        "vratio(20) - 1",
        "corr(close, volume, 20) * zscore(close, 30)",
        "macd(12, 26) + ema(close, 5) - ref(close, 3)",
        "log(abs(delta(close, 1)) + 1) * sign(ret(close, 5))",
        // Found by the fuzzer (a period outside i64 overflowed the shift).
        "ref(close, -377777777777777777777777777777777777777777777777777777777777777777777777777)",
    ]
    .iter()
    .enumerate()
    {
        put("features", &format!("expr-{i}"), f.as_bytes());
    }
}
