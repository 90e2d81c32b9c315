//! The endpoints. Every answer is JSON (but /metrics); every error is `{"error": "…"}` with
//! its status: 400 malformed body, 401 bad token, 404 unknown model or version, 409 a bar out
//! of order, 413 body too large, 422 a missing column or a bad value, 503 the registry not read
//! yet or the scheduler unreachable for a version not loaded.
use super::input::{self, Body, BodyError};
use super::link::LinkMsg;
use super::models::Loaded;
use super::{parse_ref, App, Choice};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mlt_protocol::models::Stage;
use mlt_protocol::serving::{
    features_hash, Alert, Arm, PredictionRecord, ServingReply, ServingRequest, Sticky,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

type AppState = Arc<App>;

/// A bar taken in real time: its instrument, the bar, each side's input row.
type Taken<'a> = (&'a str, &'a input::InBar, Vec<Option<Vec<f64>>>);

/// An error answer.
#[derive(Debug)]
pub struct HttpError(StatusCode, String);

impl HttpError {
    fn new(code: StatusCode, m: impl Into<String>) -> Self {
        HttpError(code, m.into())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut r = (
            self.0,
            Json(json!({ "error": self.1, "status": self.0.as_u16() })),
        )
            .into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"mlt-cluster\"".parse().expect("header"),
            );
        }
        r
    }
}

impl From<BodyError> for HttpError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Malformed(m) => HttpError::new(StatusCode::BAD_REQUEST, m),
            BodyError::Unprocessable(m) => HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
        }
    }
}

/// The routes.
pub fn router(app: AppState) -> Router {
    let authed = Router::new()
        .route("/v1/models", get(list))
        .route("/v1/models/{model}/predict", post(predict))
        .route("/v1/models/{model}/bars", post(bars))
        .route("/v1/models/{model}/rollout", get(rollout))
        .route("/v1/alerts", get(alerts).post(raise_alert))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth));
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .merge(authed)
        .fallback(|| async {
            HttpError::new(
                StatusCode::NOT_FOUND,
                "no such endpoint (see docs/serving.md)",
            )
        })
        .layer(DefaultBodyLimit::max(app.max_body))
        .layer(middleware::from_fn_with_state(app.clone(), size_guard))
        .with_state(app)
}

/// A body announced larger than the limit is refused from its header, before it is read (a
/// chunked one is cut off by the body limit as it arrives).
async fn size_guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > app.max_body as u64) {
        let mut r = HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than this server takes (--max-body-mb)",
        )
        .into_response();
        r.headers_mut()
            .insert(header::CONNECTION, "close".parse().expect("header"));
        return r;
    }
    next.run(req).await
}

/// Constant-time comparison of the presented token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(t) if same(t.as_bytes(), app.token.as_bytes()) => next.run(req).await,
        Some(_) => HttpError::new(StatusCode::UNAUTHORIZED, "bad token").into_response(),
        None => HttpError::new(
            StatusCode::UNAUTHORIZED,
            "no token: send `Authorization: Bearer <the serve token>` (DATA_DIR/serve-token)",
        )
        .into_response(),
    }
}

async fn readyz(State(app): State<AppState>) -> Response {
    if app.ready.load(Ordering::Relaxed) {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the registry has not been read yet",
        )
        .into_response()
    }
}

/// Counts a request in flight while alive.
struct InFlight<'a>(&'a App);

impl<'a> InFlight<'a> {
    fn new(app: &'a App) -> Self {
        app.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(app)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The version `model` names now and, in a live rollout, the arm for each caller.
struct Resolved {
    name: String,
    /// The pinned version, or production.
    main: Choice,
    /// A live rollout: candidate version, its share routing.
    rollout: Option<mlt_protocol::serving::Rollout>,
}

fn resolve(app: &App, model: &str) -> Result<Resolved, HttpError> {
    let (name, at) = parse_ref(model);
    let routes = app.routes();
    let Some(r) = routes.names.get(name) else {
        if !app.ready.load(Ordering::Relaxed) {
            return Err(HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the registry has not been read yet",
            ));
        }
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no model named `{name}`"),
        ));
    };
    let stages = &r.entry.stages;
    let pinned = |v: u32| Resolved {
        name: name.to_string(),
        main: Choice {
            version: v,
            arm: Arm::Pinned,
            beside: None,
        },
        rollout: None,
    };
    match at {
        None | Some("production") => {
            let p = r.entry.production().ok_or_else(|| {
                HttpError::new(
                    StatusCode::NOT_FOUND,
                    format!("`{name}` has no production version"),
                )
            })?;
            let rollout = if at.is_none() {
                r.rollout.clone()
            } else {
                None
            };
            Ok(Resolved {
                name: name.to_string(),
                main: Choice {
                    version: p,
                    arm: Arm::Production,
                    beside: rollout
                        .as_ref()
                        .map(|ro| (ro.plan.candidate, Arm::Candidate)),
                },
                rollout,
            })
        }
        Some("staging") => {
            let k = stages
                .iter()
                .rposition(|s| *s == Stage::Staging)
                .ok_or_else(|| {
                    HttpError::new(
                        StatusCode::NOT_FOUND,
                        format!("`{name}` has no staging version"),
                    )
                })?;
            Ok(pinned(k as u32 + 1))
        }
        Some(k) => {
            let k: u32 = k.parse().map_err(|_| {
                HttpError::new(
                    StatusCode::NOT_FOUND,
                    format!("`{model}`: after @ comes a version number, `production` or `staging`"),
                )
            })?;
            if k == 0 || k as usize > stages.len() {
                return Err(HttpError::new(
                    StatusCode::NOT_FOUND,
                    format!("`{name}` has no version {k} (it has {})", stages.len()),
                ));
            }
            Ok(pinned(k))
        }
    }
}

/// The loaded version, loading it (through the scheduler) when the cache does not have it.
async fn loaded(app: &App, name: &str, version: u32) -> Result<Arc<Loaded>, HttpError> {
    let unavailable = |e: String| {
        HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{name}@{version} cannot be loaded: {e}"),
        )
    };
    if let Some(l) = app.cache.hit(name, version) {
        return Ok(l);
    }
    // The version's record first, through the link, holding no lock of the cache's: the
    // link loads versions into the same cache, and must never wait on a request that waits
    // on it.
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.link
        .send(LinkMsg::Fetch(name.to_string(), version, tx))
        .await
        .map_err(|_| unavailable("the server is stopping".into()))?;
    let v = rx
        .await
        .map_err(|_| unavailable("the server is stopping".into()))?
        .map_err(unavailable)?;
    let prefer = app.prefer_refit;
    app.cache
        .get(
            name,
            version,
            || async move { Loaded::load(&v, prefer).await },
        )
        .await
        .map_err(unavailable)
}

/// The value to put in JSON (null when not finite).
fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// One answer row.
fn answer_row(l: &Loaded, arm: Arm, inst: &str, day: i64, out: Option<&Vec<f64>>) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("instrument".into(), json!(inst));
    o.insert("date".into(), json!(mlt_eval::data::format_day(day)));
    o.insert("version".into(), json!(l.version));
    o.insert("arm".into(), json!(arm.as_str()));
    let k = l.horizons.len().max(1);
    o.insert(
        "prediction".into(),
        out.map_or(Value::Null, |p| {
            num(p.get(k - 1).copied().unwrap_or(f64::NAN))
        }),
    );
    if l.horizons.len() > 1 {
        if let Some(p) = out {
            let h: serde_json::Map<String, Value> = l
                .horizons
                .iter()
                .zip(p)
                .map(|(d, v)| (format!("{d}d"), num(*v)))
                .collect();
            o.insert("horizons".into(), Value::Object(h));
        }
    }
    Value::Object(o)
}

/// What is common to both prediction endpoints' answers.
fn envelope(name: &str, l: &Loaded, preds: Vec<Value>, skipped: usize) -> Value {
    let versions: std::collections::BTreeSet<u64> = preds
        .iter()
        .filter_map(|p| p.get("version").and_then(Value::as_u64))
        .collect();
    json!({
        "model": name,
        "version": if versions.len() <= 1 { json!(versions.iter().next().copied().unwrap_or(u64::from(l.version))) } else { Value::Null },
        "versions": versions,
        "target": if l.classify() { "probability_up" } else { "forward_return" },
        "horizon": l.artifact.horizon,
        "predictions": preds,
        "skipped": skipped,
    })
}

/// What every log record of one request shares.
struct Recorder<'a> {
    name: &'a str,
    endpoint: &'static str,
    now: u64,
    client: Option<&'a str>,
}

impl Recorder<'_> {
    /// The record of side `l` on bar `(instrument, day, close)`: its prediction, or why it has
    /// none (`failed`: the side could not run on this request). None when the side had no
    /// input row yet (its features still warming up).
    #[allow(clippy::too_many_arguments)]
    fn of(
        &self,
        l: &Loaded,
        arm: Arm,
        served: bool,
        (instrument, day, close): (&str, i64, f64),
        failed: Option<&String>,
        row: Option<&Vec<f64>>,
        out: Option<&Vec<f64>>,
    ) -> Option<PredictionRecord> {
        let error = match (failed, row, out) {
            (Some(e), _, _) => Some(e.clone()),
            (None, None, _) => return None,
            (None, Some(_), Some(_)) => None,
            (None, Some(_), None) => Some("no output".into()),
        };
        let k = l.horizons.len().max(1);
        Some(PredictionRecord {
            name: self.name.to_string(),
            seq: 0,
            at_ms: self.now,
            version: l.version,
            arm,
            served,
            endpoint: self.endpoint.into(),
            instrument: instrument.to_string(),
            day,
            close,
            features_hash: row.map_or(0, |r| features_hash(r)),
            prediction: out.and_then(|p| p.get(k - 1).copied()).unwrap_or(f64::NAN),
            error,
            client: self.client.map(String::from),
        })
    }
}

fn client_id(h: &HeaderMap) -> Option<String> {
    h.get("x-client-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect())
}

/// The arm an instrument's request goes to.
fn arm_for(r: &Resolved, inst: &str, client: Option<&str>) -> Arm {
    match &r.rollout {
        Some(ro) => {
            let key = match (ro.plan.sticky, client) {
                (Sticky::Client, Some(c)) => c,
                _ => inst,
            };
            if ro.to_candidate(key) {
                Arm::Candidate
            } else {
                Arm::Production
            }
        }
        None => r.main.arm,
    }
}

struct Ctx<'a> {
    app: &'a App,
    name: String,
    endpoint: &'static str,
    t0: Instant,
}

impl Ctx<'_> {
    /// A request for a model or version the server does not have: counted under the model
    /// label "" (a client cannot make series by asking for names).
    fn unresolved(mut self, e: HttpError) -> Response {
        self.name = String::new();
        self.done::<Json<Value>>(None, Err(e))
    }

    fn done<T: IntoResponse>(
        &self,
        version: Option<u32>,
        r: Result<(T, u64), HttpError>,
    ) -> Response {
        let secs = self.t0.elapsed().as_secs_f64();
        let v = version.map(|v| v.to_string()).unwrap_or_default();
        match r {
            Ok((body, n)) => {
                self.app
                    .metrics
                    .observe(&self.name, &v, self.endpoint, 200, secs, n);
                body.into_response()
            }
            Err(e) => {
                self.app
                    .metrics
                    .observe(&self.name, &v, self.endpoint, e.0.as_u16(), secs, 0);
                e.into_response()
            }
        }
    }
}

fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, HttpError> {
    body.map_err(|e| {
        let code = e.status();
        if code == StatusCode::PAYLOAD_TOO_LARGE {
            HttpError::new(
                code,
                "the body is larger than this server takes (--max-body)",
            )
        } else {
            HttpError::new(code, e.body_text())
        }
    })
}

fn content_type(h: &HeaderMap) -> Option<&str> {
    h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// The sides a request computes: the main version and, in a live rollout, the candidate.
async fn sides(app: &App, r: &Resolved) -> Result<Vec<(Arc<Loaded>, Arm)>, HttpError> {
    let mut out = vec![(loaded(app, &r.name, r.main.version).await?, r.main.arm)];
    if let Some((v, arm)) = r.main.beside {
        match loaded(app, &r.name, v).await {
            Ok(l) => out.push((l, arm)),
            // The candidate never fails a request: production answers.
            Err(e) => tracing::warn!("rollout candidate: {}", e.1),
        }
    }
    Ok(out)
}

async fn predict(
    State(app): State<AppState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let _f = InFlight::new(&app);
    let ctx = Ctx {
        app: &app,
        name: parse_ref(&model).0.to_string(),
        endpoint: "predict",
        t0: Instant::now(),
    };
    let r = match resolve(&app, &model) {
        Ok(r) => r,
        Err(e) => return ctx.unresolved(e),
    };
    let v = r.main.version;
    let out = predict_batch(&app, &r, &headers, body).await;
    ctx.done(Some(v), out)
}

async fn predict_batch(
    app: &App,
    r: &Resolved,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Json<Value>, u64), HttpError> {
    let body = body_of(body)?;
    let sides = sides(app, r).await?;
    let main = &sides[0].0;
    let parsed = input::parse(&body, content_type(headers), main.artifact.adjusted)?;
    let instruments = parsed.instruments()?;
    let client = client_id(headers);
    // Each side's input rows per instrument, then one model call per side.
    let mut per_side: Vec<Vec<Vec<Option<Vec<f64>>>>> = Vec::new();
    let mut outputs: Vec<Result<Vec<Vec<f64>>, String>> = Vec::new();
    for (i, (l, _)) in sides.iter().enumerate() {
        let mut rows = Vec::new();
        let mut failed = None;
        for b in &instruments {
            match mlt_eval::predict::input_rows(&l.artifact, b, &b.instrument) {
                Ok(r) => rows.push(r),
                Err(e) if i == 0 => {
                    return Err(HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, e))
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            per_side.push(Vec::new());
            outputs.push(Err(e));
            continue;
        }
        let known: Vec<Vec<f64>> = rows.iter().flatten().flatten().cloned().collect();
        let got = l.predict(known).await;
        if i == 0 {
            if let Err(e) = &got {
                return Err(HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.clone()));
            }
        }
        per_side.push(rows);
        outputs.push(got);
    }
    // Outputs back to (instrument, bar).
    let mut by_side: Vec<HashMap<(usize, usize), Vec<f64>>> = Vec::new();
    for (rows, out) in per_side.iter().zip(&outputs) {
        let mut m = HashMap::new();
        if let Ok(out) = out {
            let mut it = out.iter();
            for (j, inst_rows) in rows.iter().enumerate() {
                for (t, row) in inst_rows.iter().enumerate() {
                    if row.is_some() {
                        if let Some(p) = it.next() {
                            m.insert((j, t), p.clone());
                        }
                    }
                }
            }
        }
        by_side.push(m);
    }
    let rec = Recorder {
        name: &r.name,
        endpoint: "predict",
        now: now_ms(),
        client: client.as_deref(),
    };
    let mut preds = Vec::new();
    let mut log = Vec::new();
    let mut skipped = 0;
    for (j, b) in instruments.iter().enumerate() {
        let want = arm_for(r, &b.instrument, client.as_deref());
        for t in 0..b.len() {
            let defined = per_side[0].get(j).and_then(|rows| rows[t].as_ref());
            if defined.is_none() {
                skipped += 1;
                continue;
            }
            // The arm serving this instrument, falling back to production when the
            // candidate failed.
            let mut served = 0;
            for (i, (_, arm)) in sides.iter().enumerate() {
                if *arm == want && by_side[i].contains_key(&(j, t)) {
                    served = i;
                }
            }
            let (l, arm) = &sides[served];
            preds.push(answer_row(
                l,
                *arm,
                &b.instrument,
                b.days[t],
                by_side[served].get(&(j, t)),
            ));
            for (i, (l, arm)) in sides.iter().enumerate() {
                let row = per_side[i].get(j).and_then(|rows| rows[t].as_ref());
                let failed = outputs[i].as_ref().err();
                let bar = (b.instrument.as_str(), b.days[t], b.close[t]);
                let out = by_side[i].get(&(j, t));
                log.extend(rec.of(l, *arm, i == served, bar, failed, row, out));
            }
        }
    }
    app.log(log);
    let n = preds.len() as u64;
    Ok((Json(envelope(&r.name, &sides[0].0, preds, skipped)), n))
}

#[derive(serde::Deserialize)]
struct BarsQuery {
    /// Take the bars into the state without predicting (a warm-up).
    #[serde(default)]
    warmup: bool,
}

async fn bars(
    State(app): State<AppState>,
    Path(model): Path<String>,
    Query(q): Query<BarsQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let _f = InFlight::new(&app);
    let ctx = Ctx {
        app: &app,
        name: parse_ref(&model).0.to_string(),
        endpoint: "bars",
        t0: Instant::now(),
    };
    let r = match resolve(&app, &model) {
        Ok(r) => r,
        Err(e) => return ctx.unresolved(e),
    };
    let v = r.main.version;
    let out = realtime(&app, &r, &headers, q.warmup, body).await;
    ctx.done(Some(v), out)
}

async fn realtime(
    app: &App,
    r: &Resolved,
    headers: &HeaderMap,
    warmup: bool,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Json<Value>, u64), HttpError> {
    let body = body_of(body)?;
    let sides = sides(app, r).await?;
    let main = sides[0].0.clone();
    let parsed: Body = input::parse(&body, content_type(headers), main.artifact.adjusted)?;
    if let Some(c) = main.needs.iter().find(|c| !parsed.columns.contains(*c)) {
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "missing column `{c}`: version {}'s features read it",
                main.version
            ),
        ));
    }
    // A candidate whose features read a column the feed lacks fails on every bar (logged).
    let side_ok: Vec<Option<String>> = sides
        .iter()
        .map(|(l, _)| {
            l.needs
                .iter()
                .find(|c| !parsed.columns.contains(*c))
                .map(|c| {
                    format!(
                        "missing column `{c}`: version {}'s features read it",
                        l.version
                    )
                })
        })
        .collect();
    // Bars by instrument, in the order sent; every instrument's dates checked before any bar
    // is taken.
    let mut order: Vec<&str> = Vec::new();
    let mut by: HashMap<&str, Vec<&input::InBar>> = HashMap::new();
    for b in &parsed.bars {
        if !by.contains_key(b.instrument.as_str()) {
            order.push(&b.instrument);
        }
        by.entry(&b.instrument).or_default().push(b);
    }
    let seed_version = main.version;
    let mut tracks = Vec::with_capacity(order.len());
    for inst in &order {
        let t = app
            .tracks
            .get(&r.name, inst, || app.seed(&r.name, seed_version, inst))
            .ok_or_else(|| {
                HttpError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "`{}` has real-time state for {} instruments already, the most this server keeps (--max-instruments): `{inst}` is refused",
                        r.name, app.tracks.max_instruments
                    ),
                )
            })?;
        tracks.push((*inst, t));
    }
    for (inst, t) in &tracks {
        let g = t.lock().unwrap_or_else(|p| p.into_inner());
        let list: Vec<_> = by[inst].iter().map(|b| (&b.bar, b.at.as_str())).collect();
        g.check(inst, &list)
            .map_err(|e| HttpError::new(StatusCode::CONFLICT, e))?;
    }
    // Every side's state takes every bar (a side that cannot run on this feed still keeps
    // its history in step).
    let wanted: Vec<(u32, &mlt_protocol::records::ModelArtifact)> = sides
        .iter()
        .map(|(l, _)| (l.version, &l.artifact))
        .collect();
    // (instrument, bar, rows per side)
    let mut taken: Vec<Taken> = Vec::new();
    for (inst, t) in &tracks {
        let mut g = t.lock().unwrap_or_else(|p| p.into_inner());
        let list: Vec<_> = by[inst].iter().map(|b| (&b.bar, b.at.as_str())).collect();
        // Another request may have taken a bar since the check.
        g.check(inst, &list)
            .map_err(|e| HttpError::new(StatusCode::CONFLICT, e))?;
        for b in &by[inst] {
            let rows = g
                .push(&b.bar, &wanted, app.tracks.history)
                .map_err(|e| HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
            // None for a side that cannot run on this feed.
            let per: Vec<Option<Vec<f64>>> = rows
                .into_iter()
                .zip(&side_ok)
                .map(|(r, ok)| if ok.is_none() { r } else { None })
                .collect();
            taken.push((inst, b, per));
        }
    }
    if warmup {
        let ready = taken.last().is_some_and(|(_, _, rows)| rows[0].is_some());
        return Ok((
            Json(json!({
                "model": r.name,
                "version": main.version,
                "warmed": taken.len(),
                "instruments": order,
                "ready": ready,
            })),
            0,
        ));
    }
    // One model call per side.
    let mut outs: Vec<Result<Vec<Vec<f64>>, String>> = Vec::new();
    for (i, (l, _)) in sides.iter().enumerate() {
        if let Some(e) = &side_ok[i] {
            outs.push(Err(e.clone()));
            continue;
        }
        let rows: Vec<Vec<f64>> = taken.iter().filter_map(|(_, _, r)| r[i].clone()).collect();
        let got = l.predict(rows).await;
        if i == 0 {
            if let Err(e) = &got {
                return Err(HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e.clone()));
            }
        }
        outs.push(got);
    }
    let mut iters: Vec<_> = outs
        .iter()
        .map(|o| o.as_ref().ok().map(|v| v.iter()))
        .collect();
    let client = client_id(headers);
    let rec = Recorder {
        name: &r.name,
        endpoint: "bars",
        now: now_ms(),
        client: client.as_deref(),
    };
    let mut preds = Vec::new();
    let mut log = Vec::new();
    for (inst, b, rows) in &taken {
        let want = arm_for(r, inst, client.as_deref());
        let outs_here: Vec<Option<&Vec<f64>>> = rows
            .iter()
            .zip(iters.iter_mut())
            .map(|(row, it)| match (row, it) {
                (Some(_), Some(it)) => it.next(),
                _ => None,
            })
            .collect();
        let mut served = 0;
        for (i, (_, arm)) in sides.iter().enumerate() {
            if *arm == want && outs_here[i].is_some() {
                served = i;
            }
        }
        let (l, arm) = &sides[served];
        preds.push(answer_row(l, *arm, inst, b.bar.day, outs_here[served]));
        for (i, (l, arm)) in sides.iter().enumerate() {
            let failed = outs[i].as_ref().err();
            let bar = (*inst, b.bar.day, b.bar.close);
            log.extend(rec.of(
                l,
                *arm,
                i == served,
                bar,
                failed,
                rows[i].as_ref(),
                outs_here[i],
            ));
        }
    }
    app.log(log);
    let n = preds.iter().filter(|p| !p["prediction"].is_null()).count() as u64;
    Ok((Json(envelope(&r.name, &main, preds, 0)), n))
}

async fn list(State(app): State<AppState>) -> Response {
    let routes = app.routes();
    let loaded = app.cache.loaded();
    let tracks: BTreeMap<String, usize> = app.tracks.counts().into_iter().collect();
    let models: Vec<Value> = routes
        .names
        .values()
        .map(|r| {
            let e = &r.entry;
            json!({
                "name": e.name,
                "production": e.production(),
                "versions": e.stages.iter().enumerate().map(|(i, s)| json!({
                    "version": i + 1,
                    "stage": s.as_str(),
                    "loaded": loaded.iter().any(|l| l.name == e.name && l.version == i as u32 + 1),
                })).collect::<Vec<_>>(),
                "rollout": r.rollout.as_ref().map(|ro| json!({
                    "candidate": ro.plan.candidate,
                    "production": ro.production,
                    "share": ro.share(),
                    "shadow": ro.plan.shadow,
                    "step": ro.step + 1,
                    "steps": ro.plan.steps,
                    "state": ro.state.as_str(),
                })),
                "instruments": tracks.get(&e.name).copied().unwrap_or(0),
            })
        })
        .collect();
    let c = app.cache.counts();
    Json(json!({
        "models": models,
        "loaded": loaded.iter().map(|l| json!({
            "name": l.name,
            "version": l.version,
            "model": l.which,
            "format": l.artifact.format,
            "engine": l.engine(),
            "bytes": l.bytes,
            "load_seconds": l.load_seconds,
        })).collect::<Vec<_>>(),
        "cache": { "hits": c.hits, "loads": c.loads, "failures": c.failures, "evictions": c.evictions },
    }))
    .into_response()
}

async fn ask(app: &App, req: ServingRequest) -> Result<ServingReply, HttpError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.link
        .send(LinkMsg::Serving(req, tx))
        .await
        .map_err(|_| HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping"))?;
    rx.await
        .map_err(|_| HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping"))?
        .map_err(|e| {
            let code = if e.contains("unreachable") {
                StatusCode::SERVICE_UNAVAILABLE
            } else if e.contains("no model named") || e.contains("has no") {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            HttpError::new(code, e)
        })
}

async fn rollout(State(app): State<AppState>, Path(model): Path<String>) -> Response {
    let name = parse_ref(&model).0.to_string();
    match ask(&app, ServingRequest::Status(name)).await {
        Ok(ServingReply::Rollout(r, rep)) => {
            Json(json!({ "rollout": r, "report": rep })).into_response()
        }
        Ok(_) => {
            HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer").into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[derive(serde::Deserialize)]
struct AlertsQuery {
    model: Option<String>,
    limit: Option<u32>,
}

async fn alerts(State(app): State<AppState>, Query(q): Query<AlertsQuery>) -> Response {
    match ask(
        &app,
        ServingRequest::Alerts(q.model, q.limit.unwrap_or(100)),
    )
    .await
    {
        Ok(ServingReply::Alerts(a)) => Json(json!({ "alerts": a })).into_response(),
        Ok(_) => {
            HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "unexpected answer").into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[derive(serde::Deserialize)]
struct AlertIn {
    model: String,
    version: Option<u32>,
    rule: String,
    message: String,
    source: Option<String>,
}

async fn raise_alert(State(app): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let r = async {
        let body = body_of(body)?;
        let a: AlertIn = serde_json::from_slice(&body).map_err(|e| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                format!("malformed alert: {e} (fields: model, version, rule, message)"),
            )
        })?;
        let alert = Alert {
            name: a.model,
            version: a.version,
            seq: 0,
            at_ms: now_ms(),
            rule: a.rule,
            message: a.message,
            source: a.source.unwrap_or_else(|| "http".into()),
        };
        match ask(&app, ServingRequest::Alert(alert)).await? {
            ServingReply::Alerts(a) => Ok(Json(json!({ "alerts": a }))),
            _ => Err(HttpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unexpected answer",
            )),
        }
    }
    .await;
    match r {
        Ok(j) => (StatusCode::CREATED, j).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    use std::fmt::Write;
    let c = app.cache.counts();
    let mut x = String::new();
    let mut counter = |n: &str, help: &str, v: String| {
        let _ = writeln!(x, "# HELP {n} {help}\n# TYPE {n} counter\n{n} {v}");
    };
    counter(
        "mlt_serve_cache_hits_total",
        "Requests that found their version loaded.",
        c.hits.to_string(),
    );
    counter(
        "mlt_serve_cache_loads_total",
        "Versions loaded.",
        c.loads.to_string(),
    );
    counter(
        "mlt_serve_cache_load_failures_total",
        "Loads that failed.",
        c.failures.to_string(),
    );
    counter(
        "mlt_serve_cache_evictions_total",
        "Versions let go to stay within the cache's bounds.",
        c.evictions.to_string(),
    );
    counter(
        "mlt_serve_model_load_seconds_total",
        "Seconds spent loading versions.",
        c.load_seconds.to_string(),
    );
    let _ = writeln!(x, "# HELP mlt_serve_model_load_seconds Time the loaded version took to load.\n# TYPE mlt_serve_model_load_seconds gauge");
    for l in app.cache.loaded() {
        let _ = writeln!(
            x,
            "mlt_serve_model_load_seconds{{model=\"{}\",version=\"{}\"}} {}",
            l.name, l.version, l.load_seconds
        );
    }
    let _ = writeln!(x, "# HELP mlt_serve_model_bytes Size of the loaded version's model.\n# TYPE mlt_serve_model_bytes gauge");
    for l in app.cache.loaded() {
        let _ = writeln!(
            x,
            "mlt_serve_model_bytes{{model=\"{}\",version=\"{}\"}} {}",
            l.name, l.version, l.bytes
        );
    }
    let _ = writeln!(x, "# HELP mlt_serve_rollout_share Share of traffic (percent) routed to a rollout's candidate.\n# TYPE mlt_serve_rollout_share gauge");
    for r in app.routes().names.values() {
        if let Some(ro) = &r.rollout {
            let _ = writeln!(
                x,
                "mlt_serve_rollout_share{{model=\"{}\",candidate=\"{}\"}} {}",
                r.entry.name,
                ro.plan.candidate,
                ro.share()
            );
        }
    }
    let _ = writeln!(x, "# HELP mlt_serve_instruments Instruments with real-time state.\n# TYPE mlt_serve_instruments gauge");
    for (n, k) in app.tracks.counts() {
        let _ = writeln!(x, "mlt_serve_instruments{{model=\"{n}\"}} {k}");
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(&x),
    )
        .into_response()
}
