//! Datasets travel with the study: `submit` uploads a spec's CSV once, by content; nodes fetch
//! it over QUIC into their own caches; nothing depends on a shared filesystem.
mod util;

use util::{count_state, wait_until, Cluster};

fn spec(data: &str, name: &str) -> String {
    format!(
        r#"
[study]
name = "{name}"
directions = ["maximize"]
objectives = ["sharpe"]
n_trials = 8
seed = 3

[space]
fast = {{ type = "int", low = 3, high = 20 }}
alpha = {{ type = "float", low = 0.1, high = 100.0, log = true }}

[objective]
kind = "walk_forward"
data = "{data}"
features = {{ trend = "mean(close, $fast) / mean(close, 60) - 1", vol = "std(returns, 20)" }}
horizon = 5
train = 504
test = 126
"#
    )
}

#[test]
fn a_csv_is_uploaded_once_and_nodes_fetch_it_into_their_caches() {
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 3000");
    c.add_node("n1", 2);
    c.add_node("n2", 2);
    let csv = c.dir.path().join("inst.csv");
    util::write_synthetic_csv(&csv, 4, 1200);
    let bytes = std::fs::read(&csv).unwrap();
    let spec_path = c.write("wf.toml", &spec("inst.csv", "wf-upload"));
    let out = c.cli(&["submit", spec_path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("uploaded") && err.contains("inst.csv"),
        "{err}"
    );
    // The file is gone from the submitting side at once: nodes only have the scheduler.
    std::fs::remove_file(&csv).unwrap();
    let study = String::from_utf8_lossy(&out.stdout).trim().to_string();
    wait_until(120, "the study to complete", || {
        c.study_state(&study) == "complete"
    });
    let trials = c.trials(&study);
    assert_eq!(count_state(&trials, "complete"), 8, "{trials:?}");
    // 1200 days, 504 train, 5-day purge, 126 test: 5 folds each.
    for t in &trials {
        assert_eq!(t["intermediate"].as_object().unwrap().len(), 5, "{t}");
    }
    // Every node that ran a trial holds the file, under its hash, byte for byte.
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let mut holders = 0;
    for n in ["n1", "n2"] {
        let cached = c.cache(n).join(&sha);
        if cached.exists() {
            assert_eq!(std::fs::read(&cached).unwrap(), bytes);
            holders += 1;
        }
        // No partial files left behind.
        if let Ok(rd) = std::fs::read_dir(c.cache(n)) {
            assert_eq!(rd.count(), usize::from(cached.exists()));
        }
    }
    let nodes_used: std::collections::BTreeSet<String> =
        trials.iter().map(|t| t["node"].to_string()).collect();
    assert_eq!(holders, nodes_used.len(), "{nodes_used:?}");
    // The same content again is not sent again.
    util::write_synthetic_csv(&csv, 4, 1200);
    let out = c.cli(&["submit", spec_path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("uploaded"));
    let again = String::from_utf8_lossy(&out.stdout).trim().to_string();
    wait_until(120, "the second study", || {
        c.study_state(&again) == "complete"
    });
    assert_eq!(count_state(&c.trials(&again), "complete"), 8);
    // Nodes log one fetch per node at most, for both studies together.
    let fetches: usize = c
        .nodes
        .iter()
        .map(|p| p.log_text().matches("dataset cached").count())
        .sum();
    assert!(fetches <= 2, "{fetches} fetches");
    // The selection statistics read the stored returns: PBO over the 8 trials.
    let best = c.json(&["best", &study]).unwrap();
    let pbo = &best[0]["selection"]["pbo"];
    assert_eq!(pbo["strategies"], 8, "{best}");
    assert_eq!(pbo["observations"], 5 * 126);
    // The winner's model over QUIC, and its predictions on the (re-written) file.
    let n = best[0]["number"].as_u64().unwrap().to_string();
    let a = c.json(&["artifact", &study, &n]).unwrap();
    assert_eq!(a["format"], "ridge");
    let out = c.cli(&[
        "predict",
        "--study",
        &study,
        "--trial",
        &n,
        "--data",
        csv.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1201);
    c.assert_no_panics();
}
