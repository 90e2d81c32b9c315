//! Tracking through the real binary: tags and notes on studies and trials, written by a
//! running scheduler and into a stopped one's store, kept across a kill -9, and `trials
//! --where` filtering on them.
mod util;

use serde_json::Value;
use util::{wait_until, Cluster};

const SPEC: &str = "[study]\nname = \"tracked\"\nn_trials = 12\nseed = 5\n[space]\nx0 = { type = \"float\", low = -5.0, high = 10.0 }\nx1 = { type = \"float\", low = 0.0, high = 15.0 }\n[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\nsteps = 2\n";

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn numbers(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t["number"].as_u64().unwrap())
        .collect()
}

#[test]
fn tags_and_notes_survive_a_restart_and_filter_trials() {
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 5000");
    c.add_node("a", 2);
    let spec = c.write("s.toml", SPEC);
    let (study, trials) = c.run_study(&spec, 60);
    assert_eq!(trials.len(), 12);
    let t3 = format!("{study}/3");
    let t5 = format!("{study}/5");
    ok(c.cli(&["tag", &t3, "desk=fx", "reviewed=yes"]));
    ok(c.cli(&["tag", &t5, "desk=rates"]));
    ok(c.cli(&["tag", &study, "owner=alice"]));
    ok(c.cli(&["note", &t3, "stable across folds"]));
    // Setting a key again replaces its value; --remove removes one.
    ok(c.cli(&["tag", &t3, "reviewed=no", "--remove", "desk"]));
    ok(c.cli(&["tag", &t3, "desk=fx"]));
    let shown: Value =
        serde_json::from_str(&ok(c.cli(&["tag", &t3, "--json", "extra=1"]))).unwrap();
    assert_eq!(shown["tags"]["reviewed"], "no", "{shown}");
    assert_eq!(shown["notes"][0]["text"], "stable across folds", "{shown}");

    // Refused whole, with the reason: a trial the study lacks, a bad key, nothing to do.
    let t99 = format!("{study}/99");
    for (args, says) in [
        (vec!["tag", t99.as_str(), "a=b"], "no trial 99"),
        (vec!["tag", t3.as_str(), "a b=c"], "keys are letters"),
        (vec!["tag", t3.as_str(), "novalue"], "key=value"),
        (vec!["note", t3.as_str(), "  "], "empty"),
        (vec!["tag", "nosuchstudy", "a=b"], "nosuchstudy"),
    ] {
        let out = c.cli(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }

    // Kill the scheduler: what was acknowledged is on disk.
    c.scheduler.as_mut().unwrap().kill9();
    c.start_scheduler();
    wait_until(60, "the scheduler to answer again", || {
        c.json(&["status"]).is_some()
    });
    let fx = c
        .json(&["trials", &study, "--where", "tag.desk = fx"])
        .unwrap();
    assert_eq!(numbers(&fx), [3], "{fx}");
    assert_eq!(fx[0]["tags"]["reviewed"], "no");
    assert_eq!(fx[0]["tags"]["extra"], "1");
    assert_eq!(fx[0]["notes"][0]["text"], "stable across folds");
    let any_desk = c
        .json(&["trials", &study, "--where", "tag.desk != none"])
        .unwrap();
    assert_eq!(
        numbers(&any_desk).len(),
        12,
        "!= matches trials without the tag too"
    );
    // Conditions combine: a tag and a value bound.
    let all = c.trials(&study);
    let v5 = all[5]["values"][0].as_f64().unwrap();
    let both = c
        .json(&[
            "trials",
            &study,
            "--where",
            "tag.desk = rates",
            "--where",
            &format!("value <= {v5}"),
        ])
        .unwrap();
    assert_eq!(numbers(&both), [5]);
    let none = c
        .json(&[
            "trials",
            &study,
            "--where",
            "tag.desk = rates",
            "--where",
            &format!("value < {v5}"),
        ])
        .unwrap();
    assert_eq!(numbers(&none), Vec::<u64>::new());
    let bad = c.cli(&["trials", &study, "--where", "shrape > 1"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`shrape`"));

    // Offline: the stopped scheduler's store is changed in place, and read back.
    c.scheduler.as_mut().unwrap().sigterm();
    wait_until(30, "the scheduler to stop", || {
        c.scheduler
            .as_mut()
            .unwrap()
            .child
            .try_wait()
            .unwrap()
            .is_some()
    });
    let data = c.data();
    ok(util::offline(&["note", &study, "reviewed offline"], &data));
    let table = ok(util::offline(
        &["trials", &study, "--where", "tag.desk = fx"],
        &data,
    ));
    assert!(
        table.contains("1 of 12 trials where tag.desk = fx"),
        "{table}"
    );
    c.start_scheduler();
    wait_until(60, "the scheduler to answer again", || {
        c.json(&["status"]).is_some()
    });
    let study_tags: Value =
        serde_json::from_str(&ok(c.cli(&["tag", &study, "--json", "k=v"]))).unwrap();
    assert_eq!(study_tags["tags"]["owner"], "alice", "{study_tags}");
    assert_eq!(
        study_tags["notes"][0]["text"], "reviewed offline",
        "{study_tags}"
    );
    c.assert_no_panics();
}
