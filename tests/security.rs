//! Refusals and hostile input: wrong token, fingerprint, version and role; garbage, truncated
//! and oversized frames. The scheduler refuses clearly and keeps serving the others.
mod util;

use mlt_net::frames::FrameWriter;
use mlt_net::{connect, ConnectError};
use mlt_protocol::handshake::{Hello, Refusal, Role};
use mlt_protocol::messages::{
    FetchDatasetMsg, FromClient, FromNode, PutDatasetMsg, SubmitMsg, ToClient, ToNode,
};
use mlt_protocol::token::Token;
use std::time::Duration;
use util::Cluster;

fn hello(role: Role) -> Hello {
    Hello {
        protocol_version: 0,
        role,
        secret: String::new(),
        name: "test".into(),
        node: Some(mlt_protocol::NodeId(1)),
    }
}

/// A client session on the cluster's scheduler with `token` (the handshake must succeed).
async fn client_session(c: &Cluster, token: &Token) -> mlt_net::ClientSession {
    connect(
        &c.addr(),
        token,
        hello(Role::Client),
        Duration::from_secs(5),
    )
    .await
    .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn status_works(c: &Cluster) {
    let out = c.cli(&["status"]);
    assert!(
        out.status.success(),
        "scheduler still serves: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_tokens_fingerprints_versions_and_roles_are_refused() {
    let c = Cluster::start("");
    let client = Token::parse(&c.client_token()).unwrap();
    let node = Token::parse(&c.join_token()).unwrap();
    // Wrong secret, through the CLI: exit code 4 and a clear message.
    let wrong = Token {
        secret: "ab".repeat(32),
        ..client.clone()
    }
    .encode();
    let out = std::process::Command::new(util::bin())
        .args(["status", "--scheduler", &c.addr(), "--token", &wrong])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid token"), "{err}");
    // Wrong fingerprint: the node refuses the server.
    let pinned_elsewhere = Token {
        fingerprint: [7; 32],
        ..node.clone()
    }
    .encode();
    let out = std::process::Command::new(util::bin())
        .args([
            "join",
            "--scheduler",
            &c.addr(),
            "--token",
            &pinned_elsewhere,
            "--slots",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pins") && err.contains("0707"), "{err}");
    let rt = rt();
    rt.block_on(async {
        // Another protocol version.
        let mut h = hello(Role::Client);
        h.protocol_version = 99;
        match connect(&c.addr(), &client, h, Duration::from_secs(5)).await {
            Err(ConnectError::Refused {
                reason: Refusal::Version,
                message,
                ..
            }) => assert!(message.contains("version 99"), "{message}"),
            other => panic!("expected a version refusal, got {:?}", other.err()),
        }
        // A node's secret presented as a client (to submit).
        let as_client = Token {
            role: Role::Client,
            ..node.clone()
        };
        match connect(
            &c.addr(),
            &as_client,
            hello(Role::Client),
            Duration::from_secs(5),
        )
        .await
        {
            Err(
                e @ ConnectError::Refused {
                    reason: Refusal::WrongRole,
                    ..
                },
            ) => {
                assert!(e.is_fatal());
                assert!(
                    e.to_string()
                        .contains("node token cannot be used as a client"),
                    "{e}"
                );
            }
            other => panic!("expected a role refusal, got {:?}", other.err()),
        }
    });
    // The CLI refuses a join token for client commands before connecting.
    let out = std::process::Command::new(util::bin())
        .args([
            "cancel",
            "x",
            "--scheduler",
            &c.addr(),
            "--token",
            &c.join_token(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    status_works(&c);
    let s = c.json(&["status"]).unwrap();
    assert!(s["metrics"]["refused"].as_u64().unwrap() >= 3, "{s}");
    let log = c.scheduler.as_ref().unwrap().log_text();
    assert!(log.contains("refused"), "refusals are logged");
    c.assert_no_panics();
}

#[test]
fn garbage_truncated_and_oversized_frames_close_only_that_connection() {
    let c = Cluster::start("max_frame_bytes = 65536");
    let client = Token::parse(&c.client_token()).unwrap();
    let rt = rt();
    rt.block_on(async {
        // Raw UDP garbage at the port.
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0..50u8 {
            sock.send_to(&[i; 1200], c.addr()).await.unwrap();
        }
        // After a valid handshake: garbage, an oversized header, a truncated frame.
        let cases: [&[u8]; 3] = [&[0x05, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff], &(100_000_000u32).to_le_bytes(), &[0x10, 0, 0, 0, 0x01]];
        for (i, bytes) in cases.iter().enumerate() {
            let s = client_session(&c, &client).await;
            let mut w = raw_writer(s.writer);
            w.write_all(bytes).await.unwrap();
            if i == 2 {
                w.finish().unwrap();
            }
            let closed = tokio::time::timeout(Duration::from_secs(5), s.conn.closed()).await;
            assert!(closed.is_ok(), "case {i}: the scheduler closed the connection");
        }
        // A first frame that is not a Hello.
        let (cfg, _) = mlt_net::tls::client_config(client.fingerprint, Duration::from_secs(5)).unwrap();
        let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        ep.set_default_client_config(cfg);
        let conn = ep.connect(c.addr().parse().unwrap(), "x").unwrap().await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(&[3, 0, 0, 0, 9, 9, 9]).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_secs(5), conn.closed()).await.is_ok());
        // A spec the client did not check: refused by the scheduler, nothing stored.
        let mut s = client_session(&c, &client).await;
        let bad = "[study]\nname = \"x\"\nn_trials = -1\n[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\n";
        s.writer.send(&FromClient::Submit(SubmitMsg { spec_toml: bad.into(), source: "raw.toml".into(), workdir: None, notes: Vec::new() })).await.unwrap();
        match s.reader.recv::<ToClient>().await.unwrap() {
            Some(ToClient::Error(e)) => assert!(e.message.contains("raw.toml:3") && e.message.contains("n_trials"), "{}", e.message),
            other => panic!("expected an error, got {other:?}"),
        }
        // Uploads that do not add up are refused, and nothing half-uploaded becomes a dataset.
        let put = |sha: &str, total: u64, offset: u64, bytes: &[u8]| {
            FromClient::PutDataset(PutDatasetMsg { sha256: sha.into(), name: "x.csv".into(), total, offset, bytes: bytes.to_vec() })
        };
        let wrong = "ab".repeat(32);
        let cases = [
            (put(&wrong, 5, 0, b"hello"), "hash to"),
            (put("not-hex", 5, 0, b"hello"), "64 lower-case hex"),
            (put(&wrong, 10, 5, b"hello"), "without an upload started at 0"),
            (put(&wrong, 10, 0, b"hel"), "does not follow"),
            (put(&wrong, 1 << 40, 0, b"hello"), "the limit is"),
        ];
        for (m, want) in cases {
            s.writer.send(&m).await.unwrap();
            match s.reader.recv::<ToClient>().await.unwrap() {
                Some(ToClient::Error(e)) => assert!(e.message.contains(want), "{want}: {}", e.message),
                other => panic!("expected an error with {want}, got {other:?}"),
            }
        }
        s.writer.send(&FromClient::HasDataset(wrong.clone())).await.unwrap();
        assert_eq!(s.reader.recv::<ToClient>().await.unwrap(), Some(ToClient::Dataset(None)));
        // A spec naming a dataset the scheduler does not hold is refused.
        let spec = format!("[study]\nname = \"d\"\nn_trials = 3\n[space]\nx = {{ type = \"int\", low = 2, high = 5 }}\n[objective]\nkind = \"walk_forward\"\ndata = \"sha256:{wrong}/x.csv\"\nfeatures = {{ m = \"mean(close, $x)\" }}\n");
        s.writer.send(&FromClient::Submit(SubmitMsg { spec_toml: spec, source: "raw.toml".into(), workdir: None, notes: Vec::new() })).await.unwrap();
        match s.reader.recv::<ToClient>().await.unwrap() {
            Some(ToClient::Error(e)) => assert!(e.message.contains("objective.data") && e.message.contains("not on this scheduler"), "{}", e.message),
            other => panic!("expected an error, got {other:?}"),
        }
        // A node asking for a dataset that is not there hears so (total 0), and stays connected.
        let node = Token::parse(&c.join_token()).unwrap();
        let mut n = connect(&c.addr(), &node, hello(Role::Node), Duration::from_secs(5)).await.unwrap();
        n.writer.send(&FromNode::FetchDataset(FetchDatasetMsg { sha256: wrong.clone(), offset: 0 })).await.unwrap();
        match n.reader.recv::<ToNode>().await.unwrap() {
            Some(ToNode::DatasetChunk(d)) => assert!(d.total == 0 && d.bytes.is_empty() && d.sha256 == wrong),
            other => panic!("expected an empty chunk, got {other:?}"),
        }
    });
    status_works(&c);
    let s = c.json(&["status"]).unwrap();
    assert!(s["metrics"]["bad_frames"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(s["studies"].as_array().unwrap().len(), 0);
    c.assert_no_panics();
}

/// The writer's raw stream, to send bytes that are not frames.
fn raw_writer(w: FrameWriter) -> quinn::SendStream {
    w.into_inner()
}

/// The scheduler's resident memory, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn a_flood_of_unauthenticated_connections_costs_little_memory_and_honest_nodes_get_in() {
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 5000");
    let pid = c.scheduler.as_ref().unwrap().child.id();
    let client = Token::parse(&c.client_token()).unwrap();
    let before = rss_kib(pid);
    let rt = rt();
    let (held, refused) = rt.block_on(async {
        // From another loopback address: 150 connections, each announcing the largest frame
        // (16 MiB) and then a Hello-sized one, sending nothing more, and holding on.
        let (cfg, _) =
            mlt_net::tls::client_config(client.fingerprint, Duration::from_secs(30)).unwrap();
        let mut ep = quinn::Endpoint::client("127.0.0.2:0".parse().unwrap()).unwrap();
        ep.set_default_client_config(cfg);
        let mut conns = Vec::new();
        let mut refused = 0;
        for i in 0..150u32 {
            let Ok(connecting) = ep.connect(c.addr().parse().unwrap(), "x") else {
                continue;
            };
            match tokio::time::timeout(Duration::from_secs(5), connecting).await {
                Ok(Ok(conn)) => {
                    if let Ok((mut send, recv)) = conn.open_bi().await {
                        let len: u32 = if i % 2 == 0 { 16 << 20 } else { 12 << 10 };
                        let _ = send.write_all(&len.to_le_bytes()).await;
                        conns.push((conn, send, recv));
                    }
                }
                _ => refused += 1,
            }
        }
        (conns, refused)
    });
    // The handshakes in progress from one address are bounded; the rest were refused.
    let during = rss_kib(pid);
    assert!(
        during < before + 64 * 1024,
        "RSS {before} KiB -> {during} KiB under 150 connections announcing 16 MiB each"
    );
    // An honest node on another address joins and runs a study meanwhile.
    c.add_node("honest", 1);
    let study = c.submit(&c.write("s.toml", "[study]\nname = \"ok\"\nn_trials = 3\n[space]\nx0 = { type = \"float\", low = -5.0, high = 10.0 }\nx1 = { type = \"float\", low = 0.0, high = 15.0 }\n[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\n"));
    util::wait_until(60, "the honest study to complete", || {
        c.study_state(&study) == "complete"
    });
    let s = c.json(&["status"]).unwrap();
    assert!(
        s["metrics"]["refused"].as_u64().unwrap() > 0 || refused > 0,
        "{s}"
    );
    eprintln!(
        "flood: RSS {before} KiB before, {during} KiB with {} connections held open ({refused} refused by the client's view)",
        held.len()
    );
    drop(held);
    c.assert_no_panics();
}

#[test]
fn a_spec_over_the_size_limit_is_refused_naming_the_setting() {
    let c = Cluster::start("max_spec_bytes = 2048");
    let padding = format!("# {}\n", "x".repeat(4096));
    let spec = c.write(
        "big.toml",
        &format!("{padding}[study]\nname = \"big\"\nn_trials = 2\n[space]\nx0 = {{ type = \"float\", low = -5.0, high = 10.0 }}\nx1 = {{ type = \"float\", low = 0.0, high = 15.0 }}\n[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\n"),
    );
    let out = c.cli(&["submit", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("at most 2048") && err.contains("max_spec_bytes"),
        "{err}"
    );
    status_works(&c);
    c.assert_no_panics();
}

#[test]
fn a_verified_dataset_cannot_be_overwritten_by_a_second_upload_of_its_hash() {
    use sha2::{Digest, Sha256};
    let c = Cluster::start("");
    let client = Token::parse(&c.client_token()).unwrap();
    let node = Token::parse(&c.join_token()).unwrap();
    let sha = format!("{:x}", Sha256::digest(b"hello"));
    let put = |bytes: &[u8]| {
        FromClient::PutDataset(PutDatasetMsg {
            sha256: sha.clone(),
            name: "h.csv".into(),
            total: bytes.len() as u64,
            offset: 0,
            bytes: bytes.to_vec(),
        })
    };
    rt().block_on(async {
        let mut s = client_session(&c, &client).await;
        s.writer.send(&put(b"hello")).await.unwrap();
        let Some(ToClient::Dataset(Some(info))) = s.reader.recv::<ToClient>().await.unwrap() else {
            panic!("not stored")
        };
        assert_eq!(info.bytes, 5);
        // The same hash with other bytes: the scheduler already holds it, and says so.
        s.writer.send(&put(b"HELLO")).await.unwrap();
        assert_eq!(
            s.reader.recv::<ToClient>().await.unwrap(),
            Some(ToClient::Dataset(Some(info)))
        );
        // A node fetching it gets the verified bytes.
        let mut n = connect(&c.addr(), &node, hello(Role::Node), Duration::from_secs(5))
            .await
            .unwrap();
        n.writer
            .send(&FromNode::FetchDataset(FetchDatasetMsg {
                sha256: sha.clone(),
                offset: 0,
            }))
            .await
            .unwrap();
        match n.reader.recv::<ToNode>().await.unwrap() {
            Some(ToNode::DatasetChunk(d)) => assert_eq!(d.bytes, b"hello".to_vec()),
            other => panic!("expected the chunk, got {other:?}"),
        }
    });
    status_works(&c);
    c.assert_no_panics();
}

#[test]
fn a_client_that_stops_reading_is_cut_off_and_the_scheduler_goes_on() {
    use mlt_protocol::messages::TrialPageMsg;
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 5000\nmax_frame_bytes = 65536");
    c.add_node("n", 2);
    let study = c.submit(&c.write("s.toml", "[study]\nname = \"s\"\nn_trials = 400\n[sampler]\nkind = \"random\"\n[space]\nx0 = { type = \"float\", low = -5.0, high = 10.0 }\nx1 = { type = \"float\", low = 0.0, high = 15.0 }\n[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\nsteps = 1\n"));
    util::wait_until(120, "400 trials", || c.study_state(&study) == "complete");
    let client = Token::parse(&c.client_token()).unwrap();
    rt().block_on(async {
        let mut s = client_session(&c, &client).await;
        // Ask for pages of trials (each up to half a 64 KiB frame) and never read the answers.
        let ask = FromClient::Trials(TrialPageMsg {
            study: "s".into(),
            from: 0,
            limit: 2000,
        });
        for _ in 0..400 {
            if s.writer.send(&ask).await.is_err() {
                break;
            }
        }
        let closed = tokio::time::timeout(Duration::from_secs(30), s.conn.closed())
            .await
            .expect("cut off");
        match closed {
            quinn::ConnectionError::ApplicationClosed(a) => {
                assert_eq!(
                    u64::from(a.error_code),
                    u64::from(mlt_net::frames::TOO_SLOW),
                    "{a:?}"
                )
            }
            other => panic!("closed otherwise: {other:?}"),
        }
    });
    status_works(&c);
    c.assert_no_panics();
}

#[test]
fn a_connection_gets_one_stream_and_the_join_command_keeps_the_token_off_argv() {
    let c = Cluster::start("");
    // The printed join command reads the token from a file or the environment.
    let log = c.scheduler.as_ref().unwrap().log_text();
    let join: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("mlt-cluster join"))
        .collect();
    assert!(!join.is_empty(), "{log}");
    for l in &join {
        assert!(
            !l.contains("--token mlt1"),
            "a token on a command line: {l}"
        );
    }
    assert!(
        join.iter().any(|l| l.contains("--token-file join-token")),
        "{log}"
    );
    // One bidirectional stream per connection: a second cannot even be opened (no credit),
    // where a connection with room opens one at once, without a round trip.
    let client = Token::parse(&c.client_token()).unwrap();
    rt().block_on(async {
        let s = client_session(&c, &client).await;
        let second = s.conn.open_bi();
        tokio::pin!(second);
        let at_once = tokio::select! {
            biased;
            r = &mut second => Some(r.is_ok()),
            _ = std::future::ready(()) => None,
        };
        assert_eq!(at_once, None, "a second stream was opened");
        let uni = s.conn.open_uni();
        tokio::pin!(uni);
        let at_once = tokio::select! {
            biased;
            r = &mut uni => Some(r.is_ok()),
            _ = std::future::ready(()) => None,
        };
        assert_eq!(at_once, None, "a unidirectional stream was opened");
    });
    status_works(&c);
}
