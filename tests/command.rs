//! The `command` objective end to end: reported steps are stored, a pruned trial's process is
//! killed, a failing program gives a Failed trial with the tail of its stderr; `cancel`
//! reaches running trials; `export` and `best` work offline on the stopped store.
mod util;

use util::{count_state, wait_until, Cluster};

#[test]
fn steps_pruning_kills_and_failures_carry_stderr() {
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 5000");
    c.add_node("n", 2);
    let marks = c.dir.path().join("marks");
    let pids = c.dir.path().join("pids");
    std::fs::create_dir_all(&marks).unwrap();
    std::fs::create_dir_all(&pids).unwrap();
    // Each trial writes its pid; step 1 reports x; a trial that survives sleeps, marks itself
    // and finishes.
    let script = format!(
        "echo $$ > {p}/$MLT_TRIAL; echo \"{{\\\"step\\\": 1, \\\"value\\\": $MLT_PARAM_X}}\"; sleep 1; touch {m}/$MLT_TRIAL; echo \"{{\\\"step\\\": 2, \\\"value\\\": $MLT_PARAM_X}}\"; echo \"{{\\\"value\\\": $MLT_PARAM_X}}\"",
        m = marks.display(),
        p = pids.display()
    );
    let spec = c.write(
        "cmd.toml",
        &format!(
            "[study]\nname = \"cmd\"\nn_trials = 12\nmax_concurrent = 2\nseed = 3\n[pruner]\nkind = \"median\"\nn_startup_trials = 2\n[space]\nx = {{ type = \"float\", low = 0, high = 1 }}\n[objective]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", {script:?}]\n"
        ),
    );
    let study = c.submit(&spec);
    wait_until(90, "the command study", || {
        c.study_state(&study) == "complete"
    });
    let trials = c.trials(&study);
    assert_eq!(trials.len(), 12);
    // Every trial's process has ended (the event a mark would come before).
    for t in &trials {
        let n = t["number"].as_u64().unwrap();
        let pid = std::fs::read_to_string(pids.join(n.to_string())).unwrap();
        wait_until(30, "the trial's process to end", || {
            !util::alive(pid.trim())
        });
    }
    let pruned: Vec<_> = trials.iter().filter(|t| t["state"] == "pruned").collect();
    assert!(!pruned.is_empty(), "some trials were pruned: {trials:?}");
    for t in &trials {
        let n = t["number"].as_u64().unwrap();
        let marked = marks.join(n.to_string()).exists();
        match t["state"].as_str().unwrap() {
            "complete" => {
                assert!(marked);
                assert_eq!(t["intermediate"]["1"][0], t["params"]["x"]);
                assert_eq!(t["intermediate"]["2"][0], t["params"]["x"]);
            }
            "pruned" => {
                assert!(
                    !marked,
                    "pruned trial {n}'s process was killed before it went on"
                );
                assert!(t["message"].as_str().unwrap().contains("median"));
            }
            s => panic!("unexpected state {s}"),
        }
    }
    // A failing program.
    let spec = c.write(
        "fail.toml",
        "[study]\nname = \"fail\"\nn_trials = 2\n[objective]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"echo 'ValueError: bad lr' >&2; exit 7\"]\n",
    );
    let study = c.submit(&spec);
    wait_until(60, "the failing study", || {
        c.study_state(&study) == "complete"
    });
    let trials = c.trials(&study);
    assert_eq!(count_state(&trials, "failed"), 2);
    let msg = trials[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("exit status: 7") && msg.contains("ValueError: bad lr"),
        "{msg}"
    );
    // Cancel reaches a running trial within a heartbeat.
    let spec = c.write("slow.toml", "[study]\nname = \"slow\"\nn_trials = 5\n[objective]\nkind = \"command\"\ncommand = [\"sleep\", \"30\"]\n");
    let study = c.submit(&spec);
    wait_until(30, "a running trial", || {
        c.trials(&study).iter().any(|t| t["state"] == "running")
    });
    let out = c.cli(&["cancel", &study]);
    assert!(out.status.success());
    wait_until(10, "the node to stop the trial", || {
        c.json(&["status"]).unwrap()["nodes"][0]["running"] == 0
    });
    assert_eq!(c.study_state(&study), "cancelled");
    // The stopped scheduler's store answers listings offline.
    c.scheduler.as_mut().unwrap().kill9();
    let data = c.data().display().to_string();
    let out = std::process::Command::new(util::bin())
        .args(["export", "cmd", "--format", "csv", "--data-dir", &data])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(
        csv.starts_with("number,state,attempt,value,param_x,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 13);
    let out = std::process::Command::new(util::bin())
        .args(["best", "cmd", "--json", "--data-dir", &data])
        .output()
        .unwrap();
    let best: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(best[0]["state"], "complete");
    c.assert_no_panics();
}

#[test]
fn run_fails_with_its_own_code_when_no_trial_completes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("fail.toml");
    std::fs::write(
        &spec,
        "[study]\nname = \"fail\"\nn_trials = 2\n[objective]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"exit 7\"]\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = util::offline(&["run", spec.to_str().unwrap()], &data);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("study fail ended without a complete trial (2 failed"),
        "{err}"
    );
    // The summary is still printed, and the study kept.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 complete"), "{text}");
    assert!(data.join("store.redb").exists());
    // Its scheduler is gone: a command that needs one says so at once (the store is free),
    // instead of trying the stale address.
    let out = util::offline(&["cancel", "fail"], &data);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("no scheduler is running on"), "{err}");
    // One that can read the store does.
    let out = util::offline(&["trials", "fail", "--json"], &data);
    assert!(out.status.success());
}

#[test]
fn a_node_runs_no_program_unless_its_operator_allows_it() {
    let mut c = Cluster::start("heartbeat_ms = 200\nlease_ms = 5000");
    // Joined without --allow-command.
    c.add_node_with("locked", 1, &[]);
    let proof = c.dir.path().join("ran");
    let spec = c.write(
        "cmd.toml",
        &format!(
            "[study]\nname = \"locked\"\nn_trials = 2\n[objective]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"touch {}; echo '{{\\\"value\\\": 1}}'\"]\n",
            proof.display()
        ),
    );
    let study = c.submit(&spec);
    wait_until(60, "the study to end", || {
        c.study_state(&study) != "running"
    });
    let trials = c.trials(&study);
    assert_eq!(count_state(&trials, "failed"), 2, "{trials:?}");
    let msg = trials[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("--allow-command") && msg.contains("locked"),
        "{msg}"
    );
    assert!(!proof.exists(), "the program ran");
    c.assert_no_panics();
}
