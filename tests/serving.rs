//! `mlt-cluster serve` as a real process on loopback, against registered LightGBM versions:
//! every endpoint and every bad input, batch answers equal to `mlt-cluster predict`, the
//! real-time path equal to the batch over a whole file posted bar by bar, hot swap under load
//! without a failed request, the sticky split, shadow mode, a ramp that steps up and then
//! halts on a planted alert, the paired report, the prediction log surviving a restart, a
//! candidate that cannot be loaded halting its rollout, stickiness by client, promotion, and
//! the cache's bound.
mod util;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use util::{offline, run_into, wait_until};

/// The registered versions: 1 and 2 from study `sa` (features without volume), 3 from study
/// `sb` (reads volume); version 1 in production.
fn setup() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let a = d.join("sa.toml");
    std::fs::write(&a, util::lightgbm_spec("sa", 2, 8, 1)).unwrap();
    run_into(&a, d);
    let b = d.join("sb.toml");
    let spec = util::lightgbm_spec("sb", 1, 9, 1).replace(
        r#"vol = "std(returns, 20)" }"#,
        r#"vol = "std(returns, 20)", vr = "vratio(20)" }"#,
    );
    assert!(spec.contains("vratio"));
    std::fs::write(&b, spec).unwrap();
    run_into(&b, d);
    for (study, trial) in [("sa", "0"), ("sa", "1"), ("sb", "0")] {
        ok(offline(
            &[
                "registry",
                "register",
                study,
                trial,
                "--name",
                "m",
                "--require",
                "none",
            ],
            d,
        ));
    }
    ok(offline(&["registry", "stage", "m", "1", "production"], d));
    data
}

#[track_caller]
fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A running `serve`.
struct Server {
    child: Child,
    addr: String,
    token: String,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["--seed", "none"];
        args.extend(extra);
        Self::spawn(dir, &args)
    }

    /// A server that seeds real-time state from the registered data (its default).
    fn start_seeded(dir: &Path) -> Server {
        Self::spawn(dir, &[])
    }

    fn spawn(dir: &Path, extra: &[&str]) -> Server {
        let _ = std::fs::remove_file(dir.join("serve-address"));
        let log = dir.join(format!("serve-{}.log", util::free_port()));
        let child = Command::new(util::bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--poll-ms",
                "50",
                "--data-dir",
            ])
            .arg(dir)
            .args(extra)
            .env("MLT_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let addr_file = dir.join("serve-address");
        let mut child = child;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !addr_file.exists() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("serve exited ({st}): {}", util::tail(&log, 30));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "serve did not start: {}",
                util::tail(&log, 30)
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let addr = std::fs::read_to_string(&addr_file)
            .unwrap()
            .trim()
            .to_string();
        let token = std::fs::read_to_string(dir.join("serve-token"))
            .unwrap()
            .trim()
            .to_string();
        let s = Server {
            child,
            addr,
            token,
            log,
        };
        wait_until(60, "the server to be ready", || {
            s.call("GET", "/readyz", None, None, b"").0 == 200
        });
        s
    }

    /// (status, JSON body) of a request; `token` None sends none, Some("") the server's.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        ctype: Option<&str>,
        body: &[u8],
    ) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("http://{}{path}", self.addr);
        let auth = token.map(|t| format!("Bearer {}", if t.is_empty() { &self.token } else { t }));
        let r = if method == "GET" {
            let mut q = agent.get(&url);
            if let Some(a) = &auth {
                q = q.header("Authorization", a);
            }
            q.call()
        } else {
            let mut q = agent.post(&url);
            if let Some(a) = &auth {
                q = q.header("Authorization", a);
            }
            if let Some(c) = ctype {
                q = q.header("Content-Type", c);
            }
            q.send(body)
        };
        let mut r = r.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        let text = r
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    /// The rollout the server routes by now (null when none).
    fn rollout(&self) -> Value {
        self.call("GET", "/v1/models", Some(""), None, b"").1["models"][0]["rollout"].clone()
    }

    /// Records of the prediction log the server has not written yet.
    fn log_pending(&self) -> u64 {
        let (_, t) = self.call("GET", "/metrics", Some(""), None, b"");
        t.as_str()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("mlt_serve_log_pending "))
            .unwrap()
            .parse()
            .unwrap()
    }

    /// A POST with an `X-Client-Id`.
    fn post_as(&self, path: &str, client: &str, body: &[u8]) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent
            .post(&format!("http://{}{path}", self.addr))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "text/csv")
            .header("X-Client-Id", client)
            .send(body)
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn post(&self, path: &str, ctype: &str, body: &[u8]) -> (u16, Value) {
        self.call("POST", path, Some(""), Some(ctype), body)
    }

    fn stop(mut self) {
        sigterm(self.child.id());
        let st = self.child.wait().unwrap();
        assert!(
            st.success(),
            "serve exited with {st}: {}",
            util::tail(&self.log, 30)
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// Bars of a synthetic instrument as CSV (with volume).
fn bars_csv(dir: &Path, name: &str, seed: u64, days: usize) -> PathBuf {
    let p = dir.join(format!("{name}.csv"));
    util::write_synthetic_csv(&p, seed, days);
    p
}

/// CSV rows (without header) as JSON bars of `instrument`; `volume` false leaves it out.
fn csv_to_json(csv: &str, instrument: &str, volume: bool) -> Vec<Value> {
    let mut lines = csv.lines();
    let head: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|s| s.trim().to_lowercase())
        .collect();
    lines
        .map(|l| {
            let mut o = serde_json::Map::new();
            o.insert("instrument".into(), json!(instrument));
            for (h, c) in head.iter().zip(l.split(',')) {
                if h == "date" {
                    o.insert("date".into(), json!(c));
                } else if h != "volume" || volume {
                    o.insert(h.clone(), json!(c.parse::<f64>().unwrap()));
                }
            }
            Value::Object(o)
        })
        .collect()
}

fn preds_by_date(v: &Value) -> Vec<(String, Option<f64>)> {
    v["predictions"]
        .as_array()
        .unwrap_or_else(|| panic!("no predictions: {v}"))
        .iter()
        .map(|p| {
            (
                p["date"].as_str().unwrap().to_string(),
                p["prediction"].as_f64(),
            )
        })
        .collect()
}

#[test]
fn every_endpoint_every_bad_input_and_the_real_time_path_equal_to_batch() {
    let data = setup();
    let d = data.path();
    let s = Server::start(d, &["--max-body-mb", "1"]);
    let file = bars_csv(d, "X", 21, 300);
    let csv = std::fs::read_to_string(&file).unwrap();

    // Health and readiness need no token; everything else does.
    assert_eq!(s.call("GET", "/healthz", None, None, b"").0, 200);
    assert_eq!(s.call("GET", "/readyz", None, None, b"").0, 200);
    let (code, e) = s.call("GET", "/v1/models", None, None, b"");
    assert_eq!(code, 401, "{e}");
    assert!(e["error"].as_str().unwrap().contains("Bearer"), "{e}");
    assert_eq!(
        s.call("GET", "/metrics", Some("mlts_wrong"), None, b"").0,
        401
    );
    assert_eq!(
        s.call(
            "POST",
            "/v1/models/m/predict",
            Some("nope"),
            Some("text/csv"),
            csv.as_bytes()
        )
        .0,
        401
    );

    // The models, their stages, what is loaded.
    let (code, m) = s.call("GET", "/v1/models", Some(""), None, b"");
    assert_eq!(code, 200);
    assert_eq!(m["models"][0]["name"], "m");
    assert_eq!(m["models"][0]["production"], 1);
    assert_eq!(m["models"][0]["versions"].as_array().unwrap().len(), 3);
    assert!(
        m["loaded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["version"] == 1),
        "{m}"
    );

    // Batch: a CSV body, the same numbers as `mlt-cluster predict`.
    let (code, batch) = s.post("/v1/models/m/predict", "text/csv", csv.as_bytes());
    assert_eq!(code, 200, "{batch}");
    assert_eq!(batch["version"], 1);
    assert_eq!(batch["target"], "forward_return");
    let served = preds_by_date(&batch);
    let cli: Value = serde_json::from_str(&ok(offline(
        &[
            "predict",
            "--model",
            "m@1",
            "--data",
            file.to_str().unwrap(),
            "--json",
        ],
        d,
    )))
    .unwrap();
    let cli: Vec<(String, f64)> = cli
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            Some((
                r["date"].as_str()?.to_string(),
                r["forward_return"].as_f64()?,
            ))
        })
        .collect();
    assert_eq!(served.len(), cli.len());
    assert!(served.len() > 200, "{}", served.len());
    for ((d1, a), (d2, b)) in served.iter().zip(&cli) {
        assert_eq!(d1, d2);
        assert!(
            (a.unwrap() - b).abs() <= 1e-12,
            "{d1}: served {a:?}, predict {b}"
        );
    }
    assert_eq!(
        batch["skipped"].as_u64().unwrap() as usize,
        300 - served.len()
    );

    // The same bars as JSON rows give the same answer.
    let rows = csv_to_json(&csv, "X", true);
    let (code, as_json) = s.post(
        "/v1/models/m/predict",
        "application/json",
        &serde_json::to_vec(&rows).unwrap(),
    );
    assert_eq!(code, 200, "{as_json}");
    assert_eq!(preds_by_date(&as_json), served);
    let answered: Vec<String> = as_json["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["instrument"].as_str().unwrap().to_string())
        .collect();
    assert!(answered.iter().all(|i| i == "X"));

    // Real time: the whole file posted bar by bar to a new instrument gives the batch's
    // numbers on every bar (null while the features warm up).
    let want: std::collections::HashMap<String, f64> = served
        .iter()
        .map(|(d, p)| (d.clone(), p.unwrap()))
        .collect();
    let mut compared = 0;
    for bar in csv_to_json(&csv, "RT", true) {
        let (code, a) = s.post(
            "/v1/models/m/bars",
            "application/json",
            &serde_json::to_vec(&bar).unwrap(),
        );
        assert_eq!(code, 200, "{a}");
        let p = &a["predictions"][0];
        assert_eq!(p["version"], 1);
        let date = p["date"].as_str().unwrap();
        match (p["prediction"].as_f64(), want.get(date)) {
            (Some(x), Some(y)) => {
                assert!((x - y).abs() <= 1e-12, "{date}: real time {x}, batch {y}");
                compared += 1;
            }
            (None, None) => {}
            other => panic!(
                "{date}: real time and batch disagree on whether there is a prediction: {other:?}"
            ),
        }
    }
    assert_eq!(compared, served.len());

    // Out of order and duplicate dates are refused, and change nothing.
    let last = csv_to_json(&csv, "RT", true).pop().unwrap();
    let (code, e) = s.post(
        "/v1/models/m/bars",
        "application/json",
        &serde_json::to_vec(&last).unwrap(),
    );
    assert_eq!(code, 409, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("duplicate date"),
        "{e}"
    );
    let old = csv_to_json(&csv, "RT", true).remove(5);
    let (code, e) = s.post(
        "/v1/models/m/bars",
        "application/json",
        &serde_json::to_vec(&old).unwrap(),
    );
    assert_eq!(code, 409);
    assert!(e["error"].as_str().unwrap().contains("oldest first"), "{e}");

    // A warm-up post takes bars without answering; the next bar is predicted.
    let all = csv_to_json(&csv, "W", true);
    let (code, w) = s.call(
        "POST",
        "/v1/models/m/bars?warmup=true",
        Some(""),
        Some("application/json"),
        &serde_json::to_vec(&all[..299]).unwrap(),
    );
    assert_eq!(code, 200, "{w}");
    assert_eq!(w["warmed"], 299);
    assert_eq!(w["ready"], true);
    let (_, next) = s.post(
        "/v1/models/m/bars",
        "application/json",
        &serde_json::to_vec(&all[299]).unwrap(),
    );
    let date = all[299]["date"].as_str().unwrap();
    assert!((next["predictions"][0]["prediction"].as_f64().unwrap() - want[date]).abs() <= 1e-12);

    // Bad input: each refused with its status and a reason; the server stays up.
    let (code, e) = s.post(
        "/v1/models/m/predict",
        "application/json",
        br#"[{"date": "2020-01-02", "close": 1"#,
    );
    assert_eq!(code, 400);
    assert!(
        e["error"].as_str().unwrap().starts_with("malformed JSON"),
        "{e}"
    );
    let (code, e) = s.post("/v1/models/nope/predict", "text/csv", csv.as_bytes());
    assert_eq!(code, 404);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("no model named `nope`"),
        "{e}"
    );
    let (code, e) = s.post("/v1/models/m@9/predict", "text/csv", csv.as_bytes());
    assert_eq!(code, 404);
    assert!(e["error"].as_str().unwrap().contains("no version 9"), "{e}");
    let (code, e) = s.post(
        "/v1/models/m/predict",
        "text/csv",
        b"date,open,high\n2020-01-02,1,2\n",
    );
    assert_eq!(code, 422);
    assert!(
        e["error"].as_str().unwrap().contains("no `close` column"),
        "{e}"
    );
    // Version 3 reads volume: bars without it are refused naming the column.
    let no_volume = csv_to_json(&csv, "NV", false);
    let (code, e) = s.post(
        "/v1/models/m@3/bars",
        "application/json",
        &serde_json::to_vec(&no_volume[..3]).unwrap(),
    );
    assert_eq!(code, 422, "{e}");
    assert!(e["error"].as_str().unwrap().contains("`volume`"), "{e}");
    let (code, e) = s.post(
        "/v1/models/m@3/predict",
        "application/json",
        &serde_json::to_vec(&no_volume).unwrap(),
    );
    assert_eq!(code, 422, "{e}");
    assert!(e["error"].as_str().unwrap().contains("volume"), "{e}");
    // The server answers 413 from the header alone: the body is never sent (a client sending
    // it would race the server's close).
    let answer = {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let head = format!(
            "POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
            s.token,
            2 << 20
        );
        c.write_all(head.as_bytes()).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&out).contains("takes") {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than this server takes"), "{answer}");
    let (code, _) = s.call("GET", "/v1/nothing", Some(""), None, b"");
    assert_eq!(code, 404);
    // A version by number, and staging.
    let (code, v3) = s.post("/v1/models/m@3/predict", "text/csv", csv.as_bytes());
    assert_eq!(code, 200, "{v3}");
    assert_eq!(v3["version"], 3);
    assert_eq!(v3["predictions"][0]["arm"], "pinned");
    assert_eq!(
        s.post("/v1/models/m@staging/predict", "text/csv", csv.as_bytes())
            .0,
        404
    );

    // Prometheus text: requests, errors by status, the latency histogram, the cache.
    let (code, text) = s.call("GET", "/metrics", Some(""), None, b"");
    assert_eq!(code, 200);
    let text = text.as_str().unwrap().to_string();
    for want in [
        "mlt_serve_requests_total{model=\"m\",version=\"1\",endpoint=\"predict\"}",
        "mlt_serve_requests_total{model=\"m\",version=\"1\",endpoint=\"bars\"}",
        "mlt_serve_errors_total{model=\"\",version=\"\",endpoint=\"predict\",status=\"404\"} 3",
        "mlt_serve_errors_total{model=\"m\",version=\"1\",endpoint=\"bars\",status=\"409\"} 2",
        "mlt_serve_request_seconds_bucket{model=\"m\",version=\"1\",endpoint=\"bars\",le=\"+Inf\"}",
        "mlt_serve_cache_loads_total 2",
        "mlt_serve_model_load_seconds{model=\"m\",version=\"3\"}",
        "mlt_serve_in_flight",
    ] {
        assert!(text.contains(want), "no `{want}` in:\n{text}");
    }
    s.stop();

    // Seeded from the registered data (the default): an instrument of the version's own
    // study starts from its bars, so the next bar is predicted at once and an older one is
    // out of order.
    let s = Server::start_seeded(d);
    let bar = |date: &str| json!({"instrument": "synthetic-3", "date": date, "open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5, "volume": 1e6});
    let (code, a) = s.post(
        "/v1/models/m/bars",
        "application/json",
        &serde_json::to_vec(&bar("2100-01-04")).unwrap(),
    );
    assert_eq!(code, 200, "{a}");
    assert!(a["predictions"][0]["prediction"].is_f64(), "{a}");
    let (code, e) = s.post(
        "/v1/models/m/bars",
        "application/json",
        &serde_json::to_vec(&bar("2000-01-04")).unwrap(),
    );
    assert_eq!(code, 409, "{e}");
    // An instrument the data does not have starts empty.
    let (_, a) = s.post("/v1/models/m/bars", "application/json", &serde_json::to_vec(&json!({"instrument": "NEW", "date": "2100-01-04", "close": 1.0, "open": 1.0, "high": 1.0, "low": 1.0})).unwrap());
    assert!(a["predictions"][0]["prediction"].is_null(), "{a}");
    s.stop();
}

#[test]
fn hot_swap_split_shadow_ramp_alerts_report_and_the_log_across_a_restart() {
    let data = setup();
    let d = data.path();
    let s = Server::start(d, &[]);
    let file = bars_csv(d, "Y", 31, 80);
    let csv = std::fs::read_to_string(&file).unwrap();

    // Hot swap under load: two clients post batches while version 2 becomes production.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let server = Arc::new(s);
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (stop, failures, seen, server, csv) = (
            stop.clone(),
            failures.clone(),
            seen.clone(),
            server.clone(),
            csv.clone(),
        );
        clients.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) || n < 5 {
                let (code, a) = server.post("/v1/models/m/predict", "text/csv", csv.as_bytes());
                if code != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("failed during the swap: {code} {a}");
                } else {
                    seen.lock().unwrap().insert(a["version"].as_u64().unwrap());
                }
                n += 1;
            }
            n
        }));
    }
    wait_until(30, "requests on version 1", || {
        seen.lock().unwrap().contains(&1)
    });
    ok(offline(&["registry", "stage", "m", "2", "production"], d));
    wait_until(30, "answers from version 2", || {
        seen.lock().unwrap().contains(&2)
    });
    stop.store(true, Ordering::Relaxed);
    let sent: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(failures.load(Ordering::Relaxed), 0, "of {sent} requests");
    let s = Arc::try_unwrap(server).ok().expect("clients done");

    // A split of 10 %, sticky per instrument, over 2,000 instruments (25 bars each: 5
    // predictions per instrument).
    ok(offline(&["registry", "stage", "m", "1", "staging"], d));
    ok(offline(
        &["rollout", "m", "--candidate", "1", "--share", "10"],
        d,
    ));
    wait_until(30, "the rollout to reach the server", || {
        s.rollout()["share"] == 10.0
    });
    let lines: Vec<&str> = csv.lines().collect();
    let mut body = String::from("instrument,") + lines[0] + "\n";
    for i in 0..2000 {
        for l in &lines[1..26] {
            body += &format!("I{i},{l}\n");
        }
    }
    let arms = |a: &Value| -> std::collections::BTreeMap<String, String> {
        a["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["instrument"].as_str().unwrap().to_string(),
                    p["arm"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (code, a) = s.post("/v1/models/m/predict", "text/csv", body.as_bytes());
    assert_eq!(code, 200, "{a}");
    assert_eq!(a["predictions"].as_array().unwrap().len(), 2000 * 5);
    let first = arms(&a);
    let on = first.values().filter(|a| *a == "candidate").count() as f64 / 2000.0;
    assert!(
        (on - 0.10).abs() <= 0.03,
        "{:.1}% to the candidate",
        on * 100.0
    );
    // Each instrument's arm answers with its version, and stays the same.
    for p in a["predictions"].as_array().unwrap() {
        let v = if p["arm"] == "candidate" { 1 } else { 2 };
        assert_eq!(p["version"], v, "{p}");
    }
    let (_, again) = s.post("/v1/models/m/predict", "text/csv", body.as_bytes());
    assert_eq!(arms(&again), first);

    // Shadow: production answers everything; the candidate's predictions are only logged.
    ok(offline(&["rollout", "stop", "m"], d));
    let before = log_len(d);
    ok(offline(
        &["rollout", "m", "--candidate", "1", "--shadow"],
        d,
    ));
    wait_until(30, "the shadow rollout on the server", || {
        s.rollout()["shadow"] == true
    });
    let (_, a) = s.post("/v1/models/m/predict", "text/csv", csv.as_bytes());
    assert!(a["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["arm"] == "production" && p["version"] == 2));
    let n = a["predictions"].as_array().unwrap().len();
    wait_until(30, "the shadow predictions in the log", || {
        log_len(d) >= before + 2 * n
    });
    let log: Value = serde_json::from_str(&ok(offline(
        &["predictions", "m", "--from", &before.to_string(), "--json"],
        d,
    )))
    .unwrap();
    let shadow: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["arm"] == "candidate")
        .collect();
    assert_eq!(shadow.len(), n);
    assert!(shadow
        .iter()
        .all(|r| r["served"] == false && r["version"] == 1));

    // A ramp: 10 % → 50 % → 100 % every 40 predictions served, on real-time bars of 8
    // instruments; it steps up, then halts by itself when the candidate (version 3, which
    // reads volume) starts failing on a feed without volume. (Its paired comparison waits
    // for more days than this test posts, so only the planted fault can halt it; the halt
    // on a significantly worse candidate is the next rollout's.)
    ok(offline(&["rollout", "stop", "m"], d));
    ok(offline(&["registry", "stage", "m", "3", "staging"], d));
    ok(offline(
        &[
            "rollout",
            "m",
            "--candidate",
            "3",
            "--steps",
            "10,50,100",
            "--every",
            "40",
            "--min-pairs",
            "100000",
        ],
        d,
    ));
    wait_until(30, "the ramp on the server", || {
        s.rollout()["candidate"] == 3
    });
    let feed = bars_csv(d, "Z", 41, 160);
    let feed = std::fs::read_to_string(feed).unwrap();
    let insts: Vec<String> = (0..8).map(|i| format!("R{i}")).collect();
    for i in &insts {
        let bars = csv_to_json(&feed, i, true);
        let (code, w) = s.call(
            "POST",
            "/v1/models/m/bars?warmup=true",
            Some(""),
            Some("application/json"),
            &serde_json::to_vec(&bars[..60]).unwrap(),
        );
        assert_eq!(code, 200, "{w}");
    }
    let status = |d: &Path| -> Value {
        serde_json::from_str(&ok(offline(&["rollout", "status", "m", "--json"], d))).unwrap()
    };
    let mut t = 60;
    while status(d)["rollout"]["step"].as_u64().unwrap() < 1 {
        assert!(t < 140, "the ramp did not step up: {}", status(d));
        let day: Vec<Value> = insts
            .iter()
            .map(|i| csv_to_json(&feed, i, true)[t].clone())
            .collect();
        let (code, a) = s.post(
            "/v1/models/m/bars",
            "application/json",
            &serde_json::to_vec(&day).unwrap(),
        );
        assert_eq!(code, 200, "{a}");
        t += 1;
        wait_until(10, "the log to be written", || s.log_pending() == 0);
    }
    let st = status(d);
    assert_eq!(st["rollout"]["state"], "active");
    assert!(
        st["rollout"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["what"].as_str().unwrap().starts_with("step 2 of 3: 50%")),
        "{st}"
    );
    // The planted fault: the feed loses its volume column.
    for _ in 0..4 {
        let day: Vec<Value> = insts
            .iter()
            .map(|i| csv_to_json(&feed, i, false)[t].clone())
            .collect();
        let (code, a) = s.post(
            "/v1/models/m/bars",
            "application/json",
            &serde_json::to_vec(&day).unwrap(),
        );
        assert_eq!(code, 200, "production keeps answering: {a}");
        assert!(a["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["version"] == 2 || p["version"] == 3));
        t += 1;
    }
    wait_until(30, "the ramp to halt", || {
        status(d)["rollout"]["state"] == "halted"
    });
    let st = status(d);
    assert!(
        st["rollout"]["reason"]
            .as_str()
            .unwrap()
            .contains("alert `errors`"),
        "{st}"
    );
    wait_until(30, "traffic back on production", || s.rollout().is_null());
    let day: Vec<Value> = insts
        .iter()
        .map(|i| csv_to_json(&feed, i, true)[t].clone())
        .collect();
    let (_, a) = s.post(
        "/v1/models/m/bars",
        "application/json",
        &serde_json::to_vec(&day).unwrap(),
    );
    assert!(
        a["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["arm"] == "production" && p["version"] == 2),
        "{a}"
    );
    t += 1;
    let (code, al) = s.call("GET", "/v1/alerts?model=m", Some(""), None, b"");
    assert_eq!(code, 200);
    assert_eq!(al["alerts"][0]["rule"], "errors");
    assert_eq!(al["alerts"][0]["version"], 3);

    // A planted alert from outside (a monitor, an operator) halts a ramp too.
    ok(offline(
        &[
            "rollout",
            "m",
            "--candidate",
            "1",
            "--steps",
            "10,100",
            "--every",
            "1000",
        ],
        d,
    ));
    wait_until(30, "the second ramp on the server", || {
        s.rollout()["candidate"] == 1
    });
    let (code, _) = s.post(
        "/v1/alerts",
        "application/json",
        br#"{"model": "m", "version": 1, "rule": "planted", "message": "the test says so"}"#,
    );
    assert_eq!(code, 201);
    wait_until(30, "the second ramp to halt", || {
        status(d)["rollout"]["state"] == "halted"
    });
    assert!(status(d)["rollout"]["reason"]
        .as_str()
        .unwrap()
        .contains("planted"));
    // Halted rollouts end with a rollback (production stays version 2).
    ok(offline(&["registry", "rollback", "m"], d));
    assert_eq!(status(d)["rollout"]["state"], "stopped");
    let shown: Value = serde_json::from_str(&ok(offline(
        &["registry", "show", "m@production", "--json"],
        d,
    )))
    .unwrap();
    assert_eq!(shown["version"], 2);

    // The paired report of the first ramp's arms is in the log: recompute it now for a fresh
    // ramp on real-time bars with outcomes.
    ok(offline(
        &["rollout", "m", "--candidate", "1", "--share", "50"],
        d,
    ));
    wait_until(30, "the third rollout on the server", || {
        s.rollout()["candidate"] == 1
    });
    for _ in 0..12 {
        let day: Vec<Value> = insts
            .iter()
            .map(|i| csv_to_json(&feed, i, true)[t].clone())
            .collect();
        assert_eq!(
            s.post(
                "/v1/models/m/bars",
                "application/json",
                &serde_json::to_vec(&day).unwrap()
            )
            .0,
            200
        );
        t += 1;
    }
    wait_until(10, "the log to be written", || s.log_pending() == 0);
    let rep: Value =
        serde_json::from_str(&ok(offline(&["rollout", "report", "m", "--json"], d))).unwrap();
    // 12 days of 8 instruments, the last day's outcome not known yet.
    assert_eq!(rep["pairs"], 11 * 8, "{rep}");
    assert!(
        rep["p_value"].as_f64().unwrap() >= 0.0 && rep["p_value"].as_f64().unwrap() <= 1.0,
        "{rep}"
    );
    assert_eq!(rep["arms"][0]["version"], 2);
    assert_eq!(rep["arms"][1]["version"], 1);
    let text = ok(offline(&["rollout", "report", "m"], d));
    assert!(text.contains("paired: 88 instrument-days"), "{text}");

    // The log survives a restart: every record kept, numbering goes on.
    let n = log_len(d);
    let seqs = |d: &Path| -> Vec<u64> {
        let v: Value =
            serde_json::from_str(&ok(offline(&["predictions", "m", "--json"], d))).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(seqs(d), (0..n as u64).collect::<Vec<_>>());
    s.stop();
    let after_stop = log_len(d);
    assert_eq!(after_stop, n);
    let s = Server::start(d, &[]);
    let (code, _) = s.post("/v1/models/m/predict", "text/csv", csv.as_bytes());
    assert_eq!(code, 200);
    wait_until(30, "new records after the restart", || log_len(d) > n);
    let all = seqs(d);
    assert_eq!(all, (0..all.len() as u64).collect::<Vec<_>>());
    s.stop();
}

/// Records in `m`'s prediction log.
fn log_len(d: &Path) -> usize {
    ok(offline(&["predictions", "m"], d)).lines().count() - 1
}

#[test]
fn a_failed_candidate_halts_client_stickiness_promotion_and_the_cache_bound() {
    let data = setup();
    let d = data.path();
    // Version 4: version 2 with a model text LightGBM cannot read (written into the stopped
    // store as the registry would).
    {
        let store = mlt_scheduler::store::Store::open(d).unwrap();
        let loaded = store.load().unwrap();
        let mut core = mlt_scheduler::models::ModelsCore::new(loaded.models, loaded.audit);
        let mut v = store.model_version("m", 2).unwrap().unwrap();
        v.artifact.model = "tree\nversion=v4\nthis is not a model\n".into();
        let mut ops = Vec::new();
        let req = mlt_protocol::models::RegistryRequest::Register(Box::new(v), None);
        core.handle(req, "test", 1, &store, &mut ops).unwrap();
        store.apply(&ops, &mut Default::default(), true).unwrap();
    }
    let s = Server::start(d, &[]);
    ok(offline(
        &["rollout", "m", "--candidate", "4", "--share", "50"],
        d,
    ));
    let status = || -> Value {
        serde_json::from_str(&ok(offline(&["rollout", "status", "m", "--json"], d))).unwrap()
    };
    wait_until(30, "the rollout to halt", || {
        status()["rollout"]["state"] == "halted"
    });
    let st = status();
    assert!(
        st["rollout"]["reason"]
            .as_str()
            .unwrap()
            .contains("alert `load`"),
        "{st}"
    );
    // Production answered throughout and answers now.
    let csv = std::fs::read_to_string(bars_csv(d, "L", 51, 60)).unwrap();
    let (code, a) = s.post("/v1/models/m/predict", "text/csv", csv.as_bytes());
    assert_eq!(code, 200, "{a}");
    assert!(a["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["version"] == 1));

    // Sticky by client: the same instrument goes to either arm by X-Client-Id, and a client
    // stays on its arm.
    ok(offline(&["registry", "stage", "m", "2", "staging"], d));
    ok(offline(
        &[
            "rollout",
            "m",
            "--candidate",
            "2",
            "--share",
            "50",
            "--sticky",
            "client",
        ],
        d,
    ));
    wait_until(30, "the client-sticky rollout on the server", || {
        s.rollout()["candidate"] == 2
    });
    let arm_of = |client: &str| -> u64 {
        let (code, a) = s.post_as("/v1/models/m/predict", client, csv.as_bytes());
        assert_eq!(code, 200, "{a}");
        let v: std::collections::BTreeSet<u64> = a["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["version"].as_u64().unwrap())
            .collect();
        assert_eq!(v.len(), 1, "one client, one arm: {v:?}");
        *v.iter().next().unwrap()
    };
    let arms: Vec<u64> = (0..40).map(|i| arm_of(&format!("client-{i}"))).collect();
    assert!(arms.contains(&1) && arms.contains(&2), "{arms:?}");
    for (i, arm) in arms.iter().enumerate().take(10) {
        assert_eq!(arm_of(&format!("client-{i}")), *arm);
    }
    // Promoted: version 2 is production, and the rollout says so.
    ok(offline(&["rollout", "promote", "m"], d));
    let st: Value =
        serde_json::from_str(&ok(offline(&["rollout", "status", "m", "--json"], d))).unwrap();
    assert_eq!(st["rollout"]["state"], "promoted");
    wait_until(30, "version 2 answering", || {
        s.post("/v1/models/m/predict", "text/csv", csv.as_bytes()).1["version"] == 2
    });
    s.stop();

    // The cache keeps at most --cache-models versions, least recently used out.
    let s = Server::start(d, &["--cache-models", "2"]);
    for r in ["m@1", "m@3", "m@1", "m@3"] {
        let _ = s.post(
            &format!("/v1/models/{r}/predict"),
            "text/csv",
            csv.as_bytes(),
        );
        let (_, m) = s.call("GET", "/v1/models", Some(""), None, b"");
        assert!(m["loaded"].as_array().unwrap().len() <= 2, "{m}");
    }
    let (_, text) = s.call("GET", "/metrics", Some(""), None, b"");
    let evictions: u64 = text
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("mlt_serve_cache_evictions_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(evictions >= 1, "{text}");
    s.stop();
}

/// A scheduler of its own on `dir`, on `port`.
fn scheduler(dir: &Path, port: u16) -> Child {
    let _ = std::fs::remove_file(dir.join("address"));
    let log =
        std::fs::File::create(dir.join(format!("scheduler-{}.log", util::free_port()))).unwrap();
    let child = Command::new(util::bin())
        .args([
            "scheduler",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .env("MLT_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let addr = dir.join("address");
    wait_until(60, "the scheduler to start", || addr.exists());
    child
}

#[test]
fn a_remote_scheduler_killed_and_restarted_loses_no_served_prediction() {
    let data = setup();
    let d = data.path();
    let port = util::free_port();
    let mut sched = scheduler(d, port);
    let token = std::fs::read_to_string(d.join("client-token"))
        .unwrap()
        .trim()
        .to_string();
    // The server's own state (its token, its address) apart from the scheduler's.
    let state = tempfile::tempdir().unwrap();
    let s = Server::start(
        state.path(),
        &[
            "--scheduler",
            &format!("127.0.0.1:{port}"),
            "--token",
            &token,
        ],
    );
    let csv = std::fs::read_to_string(bars_csv(d, "K", 61, 80)).unwrap();
    let (code, a) = s.post("/v1/models/m/predict", "text/csv", csv.as_bytes());
    assert_eq!(code, 200, "{a}");
    let per = a["predictions"].as_array().unwrap().len();
    wait_until(30, "the first log written", || s.log_pending() == 0);

    // The scheduler dies: the server keeps answering from what it has loaded and keeps the
    // log in memory.
    sched.kill().unwrap();
    sched.wait().unwrap();
    for _ in 0..3 {
        let (code, a) = s.post("/v1/models/m/predict", "text/csv", csv.as_bytes());
        assert_eq!(code, 200, "{a}");
        assert_eq!(a["version"], 1);
    }
    assert_eq!(s.log_pending(), 3 * per as u64);
    // Back: the server reconnects and writes what it kept.
    let mut sched = scheduler(d, port);
    wait_until(60, "the kept log written", || s.log_pending() == 0);
    s.stop();
    sched.kill().unwrap();
    sched.wait().unwrap();
    let n = ok(offline(&["predictions", "m"], d)).lines().count() - 1;
    assert_eq!(n, 4 * per);
}
