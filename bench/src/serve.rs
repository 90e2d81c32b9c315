//! `mlt-bench serve`: `mlt-cluster serve` driven over loopback by an open-loop load generator
//! (requests sent on a fixed schedule whatever the answers; latency measured from the moment
//! each is handed to its connection, so a slow server cannot hide its queueing), beside the same LightGBM model served by `mlflow models serve` (MLflow's
//! LightGBM flavour, its features precomputed) on the same requests, in the same run.
//!
//! * Real time: single-bar posts of a registered LightGBM model with the 65-expression
//!   Alpha158-like feature set (ours computes the features from the bar; MLflow is sent
//!   them): p50/p99 at 1,000 requests/s, then the highest rate held with p99 < 10 ms.
//! * Batch: 10,000-row requests, rows per second.
use crate::eval::alpha_like;
use anyhow::{bail, Context};
use mlt_eval::data::Bars;
use mlt_eval::synthetic::{generate, Synthetic};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Kills a child process on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spec(days: usize) -> String {
    let feats: Vec<String> = alpha_like()
        .iter()
        .map(|(n, e)| format!("{n} = \"{e}\""))
        .collect();
    format!(
        r#"[study]
name = "serve-bench"
directions = ["maximize"]
objectives = ["sharpe"]
n_trials = 2
seed = 5
[sampler]
kind = "random"
[space]
num_leaves = {{ type = "int", low = 16, high = 32 }}
[objective]
kind = "walk_forward"
data = "synthetic"
synthetic = {{ days = {days}, seed = 3, strength = 0.1 }}
horizon = 1
train = 750
test = 250
model = "lightgbm"
validation = 0.2
early_stopping_rounds = 300
holdout = 250
holdout_top = 1
[objective.features]
{}
[objective.lightgbm]
num_iterations = 300
learning_rate = 0.02
"#,
        feats.join("\n")
    )
}

fn run_ok(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| what.to_string())?;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One HTTP/1.1 exchange on a kept-alive connection: the status.
async fn exchange(s: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> anyhow::Result<u16> {
    s.write_all(req).await?;
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse().ok())
                .context("no status")?;
            let body_start = end + 4;
            if let Some(len) = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                while buf.len() < body_start + len {
                    let n = s.read(&mut chunk).await?;
                    if n == 0 {
                        bail!("connection closed");
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                buf.drain(..body_start + len);
                return Ok(status);
            }
            if head.contains("transfer-encoding: chunked") {
                // Chunks until the empty one.
                let mut pos = body_start;
                loop {
                    let line_end = loop {
                        if let Some(i) = buf[pos..].windows(2).position(|w| w == b"\r\n") {
                            break pos + i;
                        }
                        let n = s.read(&mut chunk).await?;
                        if n == 0 {
                            bail!("connection closed");
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    };
                    let size = usize::from_str_radix(
                        String::from_utf8_lossy(&buf[pos..line_end]).trim(),
                        16,
                    )?;
                    let need = line_end + 2 + size + 2;
                    while buf.len() < need {
                        let n = s.read(&mut chunk).await?;
                        if n == 0 {
                            bail!("connection closed");
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    pos = need;
                    if size == 0 {
                        buf.drain(..pos);
                        return Ok(status);
                    }
                }
            }
            bail!("a response with neither content-length nor chunks");
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The body of one exchange (for checks), on a fresh connection.
async fn fetch_body(addr: &str, req: &[u8]) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(req).await?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).await?;
    let text = String::from_utf8_lossy(&all).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn request(
    host: &str,
    path: &str,
    auth: Option<&str>,
    ctype: &str,
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = auth {
        r += &format!("Authorization: Bearer {t}\r\n");
    }
    if close {
        r += "Connection: close\r\n";
    }
    r += "\r\n";
    let mut v = r.into_bytes();
    v.extend_from_slice(body);
    v
}

/// What a load run measured.
struct Load {
    latencies_ms: Vec<f64>,
    errors: u64,
    achieved: f64,
}

impl Load {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.latencies_ms.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() {
            return f64::NAN;
        }
        v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
    }
}

/// Sends `reqs[i]` at start + i / rate on connection `conn_of(i)`, open loop.
async fn load(
    addr: &str,
    reqs: &[Arc<Vec<u8>>],
    conn_of: impl Fn(usize) -> usize,
    conns: usize,
    rate: f64,
) -> anyhow::Result<Load> {
    let lat = Arc::new(Mutex::new(Vec::with_capacity(reqs.len())));
    let errors = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Arc<Vec<u8>>)>();
        senders.push(tx);
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let (lat, errors) = (lat.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1 << 16);
            while let Some((at, req)) = rx.recv().await {
                match exchange(&mut s, &req, &mut buf).await {
                    Ok(200) => lat.lock().unwrap().push(at.elapsed().as_secs_f64() * 1e3),
                    Ok(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }
    let start = Instant::now() + Duration::from_millis(20);
    for (i, r) in reqs.iter().enumerate() {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at.into()).await;
        // From the moment the request is handed to its connection: the timer's own lag
        // (about a millisecond) is the generator's, not the server's; time spent behind a
        // slow answer on the connection counts.
        let _ = senders[conn_of(i) % conns].send((Instant::now(), r.clone()));
    }
    drop(senders);
    for t in tasks {
        let _ = t.await;
    }
    let took = start.elapsed().as_secs_f64();
    let latencies_ms = Arc::try_unwrap(lat)
        .map(|m| m.into_inner().unwrap())
        .unwrap_or_default();
    Ok(Load {
        achieved: latencies_ms.len() as f64 / took,
        latencies_ms,
        errors: errors.load(Ordering::Relaxed),
    })
}

fn instruments(k: usize, days: usize) -> anyhow::Result<Vec<Bars>> {
    (0..k)
        .map(|i| {
            let mut b = generate(&Synthetic {
                days,
                seed: 1000 + i as u64,
                ..Default::default()
            })
            .map_err(anyhow::Error::msg)?;
            b.instrument = format!("S{i}");
            Ok(b)
        })
        .collect()
}

fn bar_json(b: &Bars, t: usize) -> String {
    format!(
        r#"{{"instrument":"{}","date":"{}","open":{},"high":{},"low":{},"close":{},"volume":{}}}"#,
        b.instrument,
        mlt_eval::data::format_day(b.days[t]),
        b.open[t],
        b.high[t],
        b.low[t],
        b.close[t],
        b.volume.as_ref().map_or(f64::NAN, |v| v[t])
    )
}

/// The feature rows of `b` (the model's columns, in order).
fn feature_rows(b: &Bars, features: &[(String, String)]) -> anyhow::Result<Vec<Vec<f64>>> {
    let cols: Vec<Vec<f64>> = features
        .iter()
        .map(|(_, e)| {
            mlt_eval::features::eval(
                &mlt_eval::features::parse(e).map_err(anyhow::Error::msg)?,
                b,
            )
            .map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((0..b.len())
        .map(|t| cols.iter().map(|c| c[t]).collect())
        .collect())
}

fn mlflow_body(columns: &[String], rows: &[&Vec<f64>]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "dataframe_split": { "columns": columns, "data": rows }
    }))
    .expect("json")
}

async fn wait_http(addr: &str, path: &str, secs: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            if s.write_all(req.as_bytes()).await.is_ok() {
                let mut v = Vec::new();
                let _ = s.read_to_end(&mut v).await;
                if v.starts_with(b"HTTP/1.1 200") || v.starts_with(b"HTTP/1.0 200") {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("{addr}{path} did not answer 200 within {secs} s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the benchmark; `python` is the venv with MLflow and lightgbm (bench/serve/).
pub async fn run(python: Option<&Path>, seconds: f64, k: usize) -> anyhow::Result<()> {
    let bin = crate::mlt_binary()?;
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    // The model: a LightGBM study on the synthetic market with the 65 features.
    std::fs::write(d.join("spec.toml"), spec(2000))?;
    eprintln!("training the model …");
    run_ok(
        Command::new(&bin)
            .args(["run"])
            .arg(d.join("spec.toml"))
            .arg("--data-dir")
            .arg(d)
            .env("MLT_LOG", "warn"),
        "mlt-cluster run",
    )?;
    run_ok(
        Command::new(&bin)
            .args([
                "registry",
                "register",
                "serve-bench",
                "0",
                "--name",
                "bench",
                "--require",
                "none",
                "--data-dir",
            ])
            .arg(d),
        "register",
    )?;
    run_ok(
        Command::new(&bin)
            .args([
                "registry",
                "stage",
                "bench",
                "1",
                "production",
                "--data-dir",
            ])
            .arg(d),
        "stage",
    )?;
    let shown: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new(&bin)
            .args(["registry", "show", "bench@1", "--json", "--data-dir"])
            .arg(d),
        "show",
    )?)?;
    let model_text = shown["artifact"]["model"]
        .as_str()
        .context("model text")?
        .to_string();
    let features: Vec<(String, String)> =
        serde_json::from_value(shown["artifact"]["features"].clone())?;
    let columns: Vec<String> = features.iter().map(|(n, _)| n.clone()).collect();
    let trees = model_text.matches("Tree=").count();
    println!(
        "Model: LightGBM, {trees} trees, {} features (the Alpha158-like set). Instruments: {k} synthetic; warm-up 200 bars each.",
        features.len()
    );

    // Our server.
    let log = std::fs::File::create(d.join("serve.log"))?;
    let _ours = Kill(
        Command::new(&bin)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--seed",
                "none",
                "--data-dir",
            ])
            .arg(d)
            .env("MLT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    let addr_file = d.join("serve-address");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !addr_file.exists() {
        if Instant::now() > deadline {
            bail!(
                "serve did not start: {}",
                std::fs::read_to_string(d.join("serve.log"))?
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ours = std::fs::read_to_string(&addr_file)?.trim().to_string();
    let token = std::fs::read_to_string(d.join("serve-token"))?
        .trim()
        .to_string();
    wait_http(&ours, "/readyz", 60).await?;

    let warm = 200;
    let days = warm + ((seconds * 64_000.0) as usize / k).max(600);
    let bars = instruments(k, days)?;
    for b in &bars {
        let body = format!(
            "[{}]",
            (0..warm)
                .map(|t| bar_json(b, t))
                .collect::<Vec<_>>()
                .join(",")
        );
        let (st, text) = fetch_body(
            &ours,
            &request(
                &ours,
                "/v1/models/bench/bars?warmup=true",
                Some(&token),
                "application/json",
                body.as_bytes(),
                true,
            ),
        )
        .await?;
        if st != 200 {
            bail!("warm-up: {st} {text}");
        }
    }
    // Request i: instrument i % k, its next bar; one instrument always on one connection.
    let conns = 16usize;
    let mut next = vec![warm; k];
    let take = |next: &mut Vec<usize>, n: usize| -> Vec<Arc<Vec<u8>>> {
        (0..n)
            .map(|i| {
                let j = i % k;
                let t = next[j];
                next[j] += 1;
                let body = bar_json(&bars[j], t);
                Arc::new(request(
                    &ours,
                    "/v1/models/bench/bars",
                    Some(&token),
                    "application/json",
                    body.as_bytes(),
                    false,
                ))
            })
            .collect()
    };
    // The same bars' features for MLflow, precomputed.
    let rows: Vec<Vec<Vec<f64>>> = bars
        .iter()
        .map(|b| feature_rows(b, &features))
        .collect::<anyhow::Result<_>>()?;

    // MLflow's requests: request i is instrument i % k's features on a bar after the warm-up.
    let mlflow_reqs = |addr: &str, n: usize| -> Vec<Arc<Vec<u8>>> {
        (0..n)
            .map(|i| {
                let j = i % k;
                let t = warm + 10 + (i / k) % (days - warm - 10);
                let body = mlflow_body(&columns, &[&rows[j][t]]);
                Arc::new(request(
                    addr,
                    "/invocations",
                    None,
                    "application/json",
                    &body,
                    false,
                ))
            })
            .collect()
    };

    // MLflow's server on the same model.
    let mut mlflow_addr = None;
    let mut _mlflow = None;
    if let Some(py) = python {
        let model_file = d.join("model.txt");
        std::fs::write(&model_file, &model_text)?;
        let out = d.join("mlflow-model");
        run_ok(
            Command::new(py).args([
                "-c",
                "import sys, lightgbm as lgb, mlflow.lightgbm as ml; b = lgb.Booster(model_file=sys.argv[1]); ml.save_model(b, sys.argv[2])",
            ]).arg(&model_file).arg(&out),
            "saving the model in MLflow's LightGBM flavour",
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let venv_bin = py.parent().context("venv bin")?;
        let mlflow = venv_bin.join("mlflow");
        // mlflow starts `uvicorn` by name: the venv's bin first on PATH.
        let path = format!(
            "{}:{}",
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(d.join("mlflow.log"))?;
        _mlflow = Some(Kill(
            Command::new(mlflow)
                .args(["models", "serve", "-m"])
                .arg(&out)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "--env-manager",
                    "local",
                ])
                .env("PATH", path)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?,
        ));
        let a = format!("127.0.0.1:{port}");
        wait_http(&a, "/ping", 120)
            .await
            .with_context(|| std::fs::read_to_string(d.join("mlflow.log")).unwrap_or_default())?;
        let v = run_ok(
            Command::new(py).args([
                "-c",
                "import mlflow, lightgbm; print(mlflow.__version__, lightgbm.__version__)",
            ]),
            "versions",
        )?;
        println!(
            "MLflow {} (`mlflow models serve`, its defaults), LightGBM (Python) {}.",
            v.split_whitespace().next().unwrap_or("?"),
            v.split_whitespace().nth(1).unwrap_or("?")
        );
        // Both serve the same model: the same prediction for the same bar.
        let (j, t) = (0, warm + 5);
        let (_, ours_ans) = fetch_body(
            &ours,
            &request(
                &ours,
                "/v1/models/bench/predict",
                Some(&token),
                "application/json",
                format!(
                    "[{}]",
                    (0..=t)
                        .map(|x| bar_json(&bars[j], x))
                        .collect::<Vec<_>>()
                        .join(",")
                )
                .as_bytes(),
                true,
            ),
        )
        .await?;
        let ours_v: serde_json::Value = serde_json::from_str(&ours_ans)?;
        let ours_p = ours_v["predictions"]
            .as_array()
            .and_then(|p| p.last())
            .and_then(|p| p["prediction"].as_f64())
            .context("our prediction")?;
        let (st, ml_ans) = fetch_body(
            &a,
            &request(
                &a,
                "/invocations",
                None,
                "application/json",
                &mlflow_body(&columns, &[&rows[j][t]]),
                true,
            ),
        )
        .await?;
        let ml_v: serde_json::Value = serde_json::from_str(&ml_ans)
            .with_context(|| format!("MLflow answered {st}: {ml_ans}"))?;
        let ml_p = ml_v["predictions"][0]
            .as_f64()
            .context("MLflow's prediction")?;
        println!(
            "Same bar, same model: ours {ours_p:.12}, MLflow {ml_p:.12} (difference {:.1e}).",
            (ours_p - ml_p).abs()
        );
        mlflow_addr = Some(a);
    }
    println!("Open loop, {conns} keep-alive connections each; latency from the moment a request is handed to its connection (waiting behind a slow answer counts); one run, this machine (2 cores shared by the server and the load generator).\n");

    // Real time at 1,000 requests/s.
    let n = (seconds * 1000.0) as usize;
    println!("| real time, 1,000 req/s for {seconds} s | p50 ms | p99 ms | max ms | achieved req/s | errors |");
    println!("|---|---|---|---|---|---|");
    let reqs = take(&mut next, n);
    let ours_load = load(&ours, &reqs, |i| i % k, conns, 1000.0).await?;
    let row = |name: &str, l: &Load| {
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.0} | {} |",
            l.pct(0.5),
            l.pct(0.99),
            l.pct(1.0),
            l.achieved,
            l.errors
        );
    };
    row(
        "mlt-cluster serve (features computed from the bar)",
        &ours_load,
    );
    let mut ml_load = None;
    if let Some(a) = &mlflow_addr {
        let reqs = mlflow_reqs(a, n);
        let l = load(a, &reqs, |i| i % k, conns, 1000.0).await?;
        row("mlflow models serve (features precomputed)", &l);
        ml_load = Some(l);
    }
    if let Some(l) = &ml_load {
        println!(
            "\np99 ratio (MLflow / ours) at 1,000 req/s: {:.1}×",
            l.pct(0.99) / ours_load.pct(0.99)
        );
    }

    // At a rate both hold.
    if let Some(a) = &mlflow_addr {
        let rate = 200.0;
        let n = (rate * seconds) as usize;
        println!("\n| real time, {rate:.0} req/s for {seconds} s | p50 ms | p99 ms | max ms | achieved req/s | errors |");
        println!("|---|---|---|---|---|---|");
        let reqs = take(&mut next, n);
        let o = load(&ours, &reqs, |i| i % k, conns, rate).await?;
        row("mlt-cluster serve", &o);
        let reqs = mlflow_reqs(a, n);
        let m = load(a, &reqs, |i| i % k, conns, rate).await?;
        row("mlflow models serve", &m);
        // The floor: each server's health check, through the same generator.
        let get = |host: &str, path: &str| {
            Arc::new(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes())
        };
        let floor_o: Vec<_> = (0..n).map(|_| get(&ours, "/healthz")).collect();
        let f = load(&ours, &floor_o, |i| i % k, conns, rate).await?;
        row("floor: mlt-cluster serve's GET /healthz", &f);
        let floor_m: Vec<_> = (0..n).map(|_| get(a, "/ping")).collect();
        let f = load(a, &floor_m, |i| i % k, conns, rate).await?;
        row("floor: mlflow models serve's GET /ping", &f);
        println!(
            "\np99 ratio (MLflow / ours) at {rate:.0} req/s: {:.1}×",
            m.pct(0.99) / o.pct(0.99)
        );
    }

    // The highest rate held with p99 < 10 ms.
    println!("\n| rate req/s | ours p50 ms | ours p99 ms | ours achieved | MLflow p99 ms | MLflow achieved |");
    println!("|---|---|---|---|---|---|");
    let mut best_ours = 0.0;
    let mut best_ml = 0.0;
    let mut ml_done = mlflow_addr.is_none();
    for rate in [1000.0, 2000.0, 4000.0, 8000.0, 16000.0] {
        let n = (rate * seconds / 2.0) as usize;
        if next.iter().any(|t| t + n / k + 1 >= days) {
            break;
        }
        let reqs = take(&mut next, n);
        let o = load(&ours, &reqs, |i| i % k, conns, rate).await?;
        let ok_o = o.pct(0.99) < 10.0 && o.achieved >= 0.95 * rate && o.errors == 0;
        if ok_o {
            best_ours = rate;
        }
        let mut ml_cells = ("-".to_string(), "-".to_string());
        if !ml_done {
            let a = mlflow_addr.as_ref().expect("mlflow");
            let reqs = mlflow_reqs(a, n);
            let m = load(a, &reqs, |i| i % k, conns, rate).await?;
            if m.pct(0.99) < 10.0 && m.achieved >= 0.95 * rate && m.errors == 0 {
                best_ml = rate;
            } else {
                ml_done = true;
            }
            ml_cells = (format!("{:.2}", m.pct(0.99)), format!("{:.0}", m.achieved));
        }
        println!(
            "| {rate:.0} | {:.3} | {:.3} | {:.0} | {} | {} |",
            o.pct(0.5),
            o.pct(0.99),
            o.achieved,
            ml_cells.0,
            ml_cells.1
        );
        if !ok_o && ml_done {
            break;
        }
    }
    println!(
        "\nHighest rate held with p99 < 10 ms (of those tried): ours {best_ours:.0} req/s{}",
        if mlflow_addr.is_some() {
            format!(", MLflow {best_ml:.0} req/s (0: not even 1,000)")
        } else {
            String::new()
        }
    );

    // Batch: 10,000-row requests.
    println!("\n| batch, 10,000-row requests | requests | rows/s |");
    println!("|---|---|---|");
    let per = 10_000 / k.min(50);
    let mut csv = String::from("instrument,date,open,high,low,close,volume\n");
    for b in bars.iter().take(k.min(50)) {
        for t in 0..per {
            csv += &format!(
                "{},{},{},{},{},{},{}\n",
                b.instrument,
                mlt_eval::data::format_day(b.days[t]),
                b.open[t],
                b.high[t],
                b.low[t],
                b.close[t],
                b.volume.as_ref().map_or(f64::NAN, |v| v[t])
            );
        }
    }
    let rows_sent = per * k.min(50);
    let batch = |addr: String, req: Vec<u8>| async move {
        let mut s = TcpStream::connect(&addr).await?;
        s.set_nodelay(true)?;
        let mut buf = Vec::new();
        let t0 = Instant::now();
        let mut n = 0u32;
        while t0.elapsed().as_secs_f64() < seconds.max(3.0) || n < 3 {
            let st = exchange(&mut s, &req, &mut buf).await?;
            if st != 200 {
                bail!("batch answered {st}");
            }
            n += 1;
        }
        anyhow::Ok((n, t0.elapsed().as_secs_f64()))
    };
    let (n_o, t_o) = batch(
        ours.clone(),
        request(
            &ours,
            "/v1/models/bench/predict",
            Some(&token),
            "text/csv",
            csv.as_bytes(),
            false,
        ),
    )
    .await?;
    println!(
        "| mlt-cluster serve (CSV bars, features computed) | {n_o} | {:.0} |",
        (n_o as f64 * rows_sent as f64) / t_o
    );
    if let Some(a) = &mlflow_addr {
        let sample: Vec<&Vec<f64>> = rows
            .iter()
            .take(k.min(50))
            .flat_map(|r| r[warm..warm + per].iter())
            .collect();
        let (n_m, t_m) = batch(
            a.clone(),
            request(
                a,
                "/invocations",
                None,
                "application/json",
                &mlflow_body(&columns, &sample),
                false,
            ),
        )
        .await?;
        println!(
            "| mlflow models serve (JSON features) | {n_m} | {:.0} |",
            (n_m as f64 * sample.len() as f64) / t_m
        );
    }
    Ok(())
}
