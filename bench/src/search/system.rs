//! Table 7: the whole system against Optuna's in-memory study. `mlt-cluster run` (scheduler,
//! one node with one slot, QUIC on loopback, the durable store) runs a zero-cost study of
//! `trials` Branin trials with the default TPE; Optuna 5's default study (`TPESampler()`,
//! in memory) optimises the same function for as many trials. Wall time of each, side by side
//! in one run, and where ours goes: the same `run` with one trial (start-up, certificates,
//! store creation, shutdown), with the random sampler (the system without the sampler), and
//! the sampler alone in process (ask + tell through `StudyCore`).
use super::*;

const SPACE: &str = "x0 = { type = \"float\", low = -5.0, high = 10.0 }\nx1 = { type = \"float\", low = 0.0, high = 15.0 }\n";

fn spec_text(trials: u64, sampler: &str) -> String {
    format!("[study]\nname = \"system\"\nn_trials = {trials}\nseed = 1\n[sampler]\n{sampler}\n[space]\n{SPACE}[objective]\nkind = \"benchmark\"\nfunction = \"branin\"\nsteps = 1\n")
}

/// Wall seconds of `mlt-cluster run` on a fresh data dir with `slots` (`None`: its default,
/// one per core), the best of `reps`.
fn our_run(trials: u64, sampler: &str, slots: Option<u32>, reps: usize) -> anyhow::Result<f64> {
    let bin = crate::mlt_binary()?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let dir = tempfile::tempdir()?;
        let spec = dir.path().join("system.toml");
        std::fs::write(&spec, spec_text(trials, sampler))?;
        let t0 = Instant::now();
        let mut cmd = Command::new(&bin);
        cmd.arg("run").arg(&spec);
        if let Some(n) = slots {
            cmd.args(["--slots", &n.to_string()]);
        }
        let out = cmd
            .arg("--data-dir")
            .arg(dir.path().join("d"))
            .env("MLT_LOG", "error")
            .output()?;
        let secs = t0.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "mlt-cluster run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        best = best.min(secs);
    }
    Ok(best)
}

/// The whole-system table.
pub fn system(python: Option<&Path>, trials: u64) -> anyhow::Result<()> {
    let reps = 3;
    let tpe = "kind = \"tpe\"";
    let ours = our_run(trials, tpe, Some(1), reps)?;
    let default_slots = our_run(trials, tpe, None, reps)?;
    let one = our_run(1, tpe, Some(1), reps)?;
    let random = our_run(trials, "kind = \"random\"", Some(1), reps)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The sampler alone: the same study in process, ask + tell.
    let s = spec(tpe, SPACE, "[\"minimize\"]", "kind = \"none\"", trials, 1);
    let t0 = Instant::now();
    run_study(&s, &|q| {
        vec![BenchFunction::Branin.evaluate(q).expect("valid point")]
    });
    let in_process = t0.elapsed().as_secs_f64();
    let theirs = optuna(python, &["system", "--trials", &trials.to_string()])?;
    let their = |k: &str| theirs.as_ref().and_then(|v| v.get(k)?.as_f64());
    println!("\n### The whole system: {trials} zero-cost Branin trials, default TPE, wall time (best of {reps})\n");
    println!("| what | seconds |");
    println!("|---|---|");
    println!("| ours: `mlt-cluster run` (scheduler, node with 1 slot, QUIC, durable store) | {ours:.3} |");
    println!(
        "| Optuna {}: `create_study()` in memory + `optimize` | {} |",
        theirs
            .as_ref()
            .and_then(|v| v.get("version")?.as_str().map(str::to_string))
            .unwrap_or_default(),
        their("tpe").map_or("–".into(), |t| format!("{t:.3}"))
    );
    println!(
        "| Optuna / ours | {} |",
        their("tpe").map_or("–".into(), |t| format!("{:.1}×", t / ours))
    );
    println!("| ours, default slots (one per core: {cores}) | {default_slots:.3} |");
    println!("| ours, 1 trial (start-up, certificates, store, shutdown) | {one:.3} |");
    println!("| ours, random sampler, 1 slot (the system without TPE) | {random:.3} |");
    println!("| ours, TPE alone in process (ask + tell, no store, no network) | {in_process:.3} |");
    println!(
        "| Optuna, random sampler | {} |",
        their("random").map_or("–".into(), |t| format!("{t:.3}"))
    );
    Ok(())
}
