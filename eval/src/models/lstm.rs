//! An LSTM of feature sequences (burn 0.22; the flex CPU backend by default, CUDA with the
//! `cuda` feature), for the walk-forward objective.
//!
//! The cell is written here rather than taken from `burn::nn::Lstm`: one input and one
//! recurrent matmul per step produce all four gates at once (`nn::Lstm` does eight), the
//! sigmoid runs once over the three sigmoid gates, and hidden states stay a `Vec` of per-step
//! tensors (no whole-sequence `slice_assign` per step, whose backward grows with the square of
//! the sequence length). Layers 1–3 with dropout between them, optional attention over the
//! time steps, a linear head; Adam with weight decay, shuffled mini-batches, early stopping on
//! the walk-forward's validation tail with the best epoch kept, seeded.
use super::{Model, ModelSettings};
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// One LSTM layer: the input and recurrent projections of all four gates (i, f, o, g).
#[derive(Module, Debug)]
pub struct Layer {
    wx: Linear,
    wh: Linear,
}

/// The network.
#[derive(Module, Debug)]
pub struct Net {
    layers: Vec<Layer>,
    attention: Option<Linear>,
    head: Linear,
    dropout: Dropout,
}

/// The architecture and training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LstmConfig {
    /// Features per step.
    pub features: usize,
    /// Steps per sequence.
    pub sequence: usize,
    /// Hidden units per layer.
    pub hidden: usize,
    /// LSTM layers (1–3).
    pub layers: usize,
    /// Dropout between layers and before the head.
    pub dropout: f64,
    /// Attention over the time steps instead of the last hidden state.
    pub attention: bool,
    /// Epochs at most.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Binary classification (else regression).
    pub classify: bool,
    /// Days ahead of each output of a multi-step head, the label's last; empty: one output,
    /// the label.
    #[serde(default)]
    pub horizons: Vec<u32>,
}

impl LstmConfig {
    /// From the model settings (spec `[objective.lstm]` and trial parameters), for rows of
    /// `row_len` = sequence × features values.
    pub fn from_settings(s: &ModelSettings, row_len: usize) -> Result<Self, String> {
        // Every setting from its table: the given value within its bounds, or its default.
        let get = |k: &str| {
            mlt_spec::tables::setting(mlt_protocol::spec::ModelKind::Lstm, k)
                .and_then(|t| t.value(&s.params))
                .expect("every LSTM setting has a default")
        };
        let sequence = s.rows.lookback.max(1) as usize;
        if row_len == 0 || !row_len.is_multiple_of(sequence) {
            return Err(format!(
                "rows of {row_len} values are not sequences of {sequence} steps"
            ));
        }
        Ok(Self {
            features: row_len / sequence,
            sequence,
            hidden: get("hidden") as usize,
            layers: get("layers") as usize,
            dropout: get("dropout"),
            attention: get("attention") > 0.5,
            epochs: get("epochs") as usize,
            batch: get("batch") as usize,
            learning_rate: get("learning_rate"),
            weight_decay: get("weight_decay"),
            classify: s.classify,
            horizons: if s.rows.horizons.len() > 1 {
                s.rows.horizons.clone()
            } else {
                Vec::new()
            },
        })
    }

    /// Outputs of the head: one per horizon, at least one.
    pub fn outputs(&self) -> usize {
        self.horizons.len().max(1)
    }

    fn init(&self, device: &Device) -> Net {
        let h = self.hidden;
        let layers = (0..self.layers)
            .map(|l| Layer {
                wx: LinearConfig::new(if l == 0 { self.features } else { h }, 4 * h).init(device),
                wh: LinearConfig::new(h, 4 * h).with_bias(false).init(device),
            })
            .collect();
        Net {
            layers,
            attention: self.attention.then(|| LinearConfig::new(h, 1).init(device)),
            head: LinearConfig::new(h, self.outputs()).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// tanh through the sigmoid, tanh(x) = 2σ(2x) − 1: on the flex backend every element of a
/// `tanh` calls libm's tanhf (through expm1f), about twice the cost of the expf behind a
/// sigmoid, and the two extra scalar ops are cheap vectorised passes.
fn tanh_fast<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    sigmoid(x.mul_scalar(2.0)).mul_scalar(2.0).sub_scalar(1.0)
}

impl Net {
    /// The outputs (logits or scaled returns, one per horizon) of each sequence, [batch,
    /// outputs]; `steps[t]` is [batch, features].
    fn forward(&self, steps: Vec<Tensor<2>>, hidden: usize) -> Tensor<2> {
        let device = steps[0].device();
        let b = steps[0].dims()[0];
        let mut inputs = steps;
        let n_layers = self.layers.len();
        for (li, layer) in self.layers.iter().enumerate() {
            let mut h = Tensor::<2>::zeros([b, hidden], &device);
            let mut c = Tensor::<2>::zeros([b, hidden], &device);
            let mut outs = Vec::with_capacity(inputs.len());
            for x in inputs {
                let g = layer.wx.forward(x) + layer.wh.forward(h);
                let ifo = sigmoid(g.clone().narrow(1, 0, 3 * hidden));
                let cand = tanh_fast(g.narrow(1, 3 * hidden, hidden));
                let i = ifo.clone().narrow(1, 0, hidden);
                let f = ifo.clone().narrow(1, hidden, hidden);
                let o = ifo.narrow(1, 2 * hidden, hidden);
                c = f * c + i * cand;
                h = o * tanh_fast(c.clone());
                outs.push(h.clone());
            }
            inputs = if li + 1 < n_layers {
                outs.into_iter().map(|o| self.dropout.forward(o)).collect()
            } else {
                outs
            };
        }
        let last = match &self.attention {
            Some(att) => {
                // Softmax weights over the steps from each step's hidden state.
                let scores: Vec<Tensor<2>> =
                    inputs.iter().map(|h| att.forward(h.clone())).collect();
                let w = softmax(Tensor::cat(scores, 1), 1);
                inputs
                    .into_iter()
                    .enumerate()
                    .map(|(t, h)| w.clone().narrow(1, t, 1) * h)
                    .reduce(|a, b| a + b)
                    .expect("at least one step")
            }
            None => inputs.pop().expect("at least one step"),
        };
        self.head.forward(self.dropout.forward(last))
    }
}

/// Everything the kept model needs besides its weights.
#[derive(Serialize, Deserialize)]
struct Saved {
    config: LstmConfig,
    x_mean: Vec<f64>,
    x_sd: Vec<f64>,
    y_mean: f64,
    y_sd: f64,
    /// Every output's target mean and scale (a multi-step head), the label's last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    path_scale: Vec<(f64, f64)>,
    /// burn's record of the weights (burnpack), hex.
    record: String,
    epochs_run: usize,
}

/// The LSTM model.
pub struct Lstm {
    settings: ModelSettings,
    fitted: Option<Fitted>,
    trainer: Option<Trainer>,
    /// Training loss (the epoch's mean over its batches, dropout on) and validation loss after
    /// each epoch of the last fit, and whether early stopping ended it.
    curve: (Vec<f64>, Vec<f64>, bool),
}

/// Training in progress: what the next epoch needs.
struct Trainer {
    x: Vec<Vec<f64>>,
    /// Scaled targets, `outputs` per row.
    y: Vec<f32>,
    valid: Option<(Vec<Vec<f64>>, Vec<f32>)>,
    net: Net,
    optim: burn::optim::ModuleOptimizer,
    rng: rand_chacha::ChaCha8Rng,
    order: Vec<usize>,
    train_dev: Device,
    /// Best validation loss and its epoch.
    best: Option<(f64, usize)>,
    epoch: usize,
    patience: usize,
}

struct Fitted {
    config: LstmConfig,
    net: Net,
    device: Device,
    x_mean: Vec<f64>,
    x_sd: Vec<f64>,
    /// Each output's target mean and scale (the label's last).
    y_scale: Vec<(f64, f64)>,
    epochs_run: usize,
}

/// The compute device: CUDA (the slot's first GPU) with the `cuda` feature, else flex (CPU).
fn device(gpu: Option<u32>) -> Device {
    #[cfg(feature = "cuda")]
    if let Some(g) = gpu {
        return Device::cuda(g as usize);
    }
    let _ = gpu;
    Device::flex()
}

impl Lstm {
    /// An unfitted model.
    pub fn new(settings: ModelSettings) -> Self {
        Self {
            settings,
            fitted: None,
            trainer: None,
            curve: (Vec::new(), Vec::new(), false),
        }
    }

    /// A fitted model from its saved text.
    pub fn load(text: &str) -> Result<Self, String> {
        let s: Saved = serde_json::from_str(text).map_err(|e| format!("LSTM model: {e}"))?;
        let bytes = hex::decode(&s.record).map_err(|e| format!("LSTM model weights: {e}"))?;
        let record =
            burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
                .map_err(|e| format!("LSTM model weights: {e}"))?;
        let device = device(None);
        let net = s
            .config
            .init(&device)
            .try_load_record(record)
            .map_err(|e| format!("LSTM model weights: {e}"))?;
        Ok(Self {
            settings: ModelSettings::default(),
            trainer: None,
            curve: (Vec::new(), Vec::new(), false),
            fitted: Some(Fitted {
                config: s.config,
                net,
                device,
                x_mean: s.x_mean,
                x_sd: s.x_sd,
                y_scale: if s.path_scale.is_empty() {
                    vec![(s.y_mean, s.y_sd)]
                } else {
                    s.path_scale
                },
                epochs_run: s.epochs_run,
            }),
        })
    }
}

/// Rows (each sequence × features, step-major) as per-step [rows, features] tensors, scaled.
fn steps(
    rows: &[&Vec<f64>],
    c: &LstmConfig,
    mean: &[f64],
    sd: &[f64],
    device: &Device,
) -> Vec<Tensor<2>> {
    let (n, f) = (rows.len(), c.features);
    (0..c.sequence)
        .map(|t| {
            let mut v = Vec::with_capacity(n * f);
            for r in rows {
                for j in 0..f {
                    v.push(((r[t * f + j] - mean[j]) / sd[j]) as f32);
                }
            }
            Tensor::<2>::from_data(TensorData::new(v, [n, f]), device)
        })
        .collect()
}

/// Targets, `k` per row, as a [rows, k] tensor.
fn targets(v: Vec<f32>, k: usize, device: &Device) -> Tensor<2> {
    let n = v.len() / k;
    Tensor::<2>::from_data(TensorData::new(v, [n, k]), device)
}

/// Mean loss of outputs `z` against targets `y`: binary cross-entropy on logits, or MSE.
fn loss(z: Tensor<2>, y: Tensor<2>, classify: bool) -> Tensor<1> {
    if classify {
        // max(z, 0) − z·y + log(1 + e^(−|z|)), stable for any z.
        let relu = z.clone().clamp_min(0.0);
        let soft = z.clone().abs().neg().exp().add_scalar(1.0).log();
        (relu - z * y + soft).mean()
    } else {
        (z - y).powf_scalar(2.0).mean()
    }
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_data()
        .try_to_vec::<f32>()
        .map_or(f64::NAN, |v| v[0] as f64)
}

impl Model for Lstm {
    fn finish(&mut self) {
        // Training state is not needed to predict.
        self.trainer = None;
    }

    fn begin(
        &mut self,
        x: &[Vec<f64>],
        y: &[f64],
        valid: Option<(&[Vec<f64>], &[f64])>,
    ) -> Result<(), String> {
        self.curve = (Vec::new(), Vec::new(), false);
        let row_len = x.first().map_or(0, Vec::len);
        let c = LstmConfig::from_settings(&self.settings, row_len)?;
        if x.len() < 2 {
            return Err(format!(
                "the LSTM needs training sequences, got {}",
                x.len()
            ));
        }
        let k = c.outputs();
        let counts_ok = |x: &[Vec<f64>], y: &[f64]| y.len() == x.len() * k;
        if !counts_ok(x, y) || valid.is_some_and(|(vx, vy)| !counts_ok(vx, vy)) {
            return Err(format!(
                "the LSTM's head has {k} outputs: it needs {k} targets per training row"
            ));
        }
        // Scaling from the training rows only: per feature over all steps; the target's too.
        let f = c.features;
        let mut mean = vec![0.0; f];
        let mut sq = vec![0.0; f];
        for r in x {
            for (k, v) in r.iter().enumerate() {
                mean[k % f] += v;
                sq[k % f] += v * v;
            }
        }
        let count = (x.len() * c.sequence) as f64;
        let x_sd: Vec<f64> = (0..f)
            .map(|j| {
                let m = mean[j] / count;
                ((sq[j] / count - m * m).max(0.0).sqrt()).max(1e-12)
            })
            .collect();
        let x_mean: Vec<f64> = mean.iter().map(|m| m / count).collect();
        // Each output's targets scaled on their own (returns over longer horizons are wider).
        let y_scale: Vec<(f64, f64)> = (0..k)
            .map(|j| {
                if c.classify {
                    return (0.0, 1.0);
                }
                let col = || y.iter().skip(j).step_by(k);
                let n = x.len() as f64;
                let m = col().sum::<f64>() / n;
                let v = col().map(|t| (t - m).powi(2)).sum::<f64>() / n;
                (m, v.sqrt().max(1e-12))
            })
            .collect();
        let scaled = |y: &[f64]| -> Vec<f32> {
            y.iter()
                .enumerate()
                .map(|(i, t)| {
                    let (m, sd) = y_scale[i % k];
                    ((t - m) / sd) as f32
                })
                .collect()
        };

        let plain = device(self.settings.slot.gpu);
        plain.seed(self.settings.slot.seed);
        let train_dev = plain.clone().autodiff();
        let net = c.init(&train_dev);
        let mut adam = AdamConfig::new();
        if c.weight_decay > 0.0 {
            adam = adam.with_weight_decay(Some(WeightDecayConfig::new(c.weight_decay as f32)));
        }
        let targets = scaled(y);
        let valid = valid
            .filter(|(vx, _)| !vx.is_empty())
            .map(|(vx, vy)| (vx.to_vec(), scaled(vy)));
        self.trainer = Some(Trainer {
            order: (0..x.len()).collect(),
            x: x.to_vec(),
            y: targets,
            valid,
            net,
            optim: adam.init(),
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(self.settings.slot.seed),
            train_dev,
            best: None,
            epoch: 0,
            patience: self.settings.training.early_stopping as usize,
        });
        self.fitted = Some(Fitted {
            config: c,
            net: self.trainer.as_ref().expect("just set").net.valid(),
            device: plain,
            x_mean,
            x_sd,
            y_scale,
            epochs_run: 0,
        });
        Ok(())
    }

    fn advance(&mut self) -> Result<bool, String> {
        let (Some(tr), Some(f)) = (self.trainer.as_mut(), self.fitted.as_mut()) else {
            return Err("the LSTM's training has not begun".into());
        };
        let c = &f.config;
        if tr.epoch >= c.epochs {
            return Ok(false);
        }
        tr.order.shuffle(&mut tr.rng);
        let mut net = tr.net.clone();
        // The epoch's training loss: its batches' losses summed on the device, read once.
        let mut total: Option<Tensor<1>> = None;
        for chunk in tr.order.chunks(c.batch) {
            let rows: Vec<&Vec<f64>> = chunk.iter().map(|&i| &tr.x[i]).collect();
            let xs = steps(&rows, c, &f.x_mean, &f.x_sd, &tr.train_dev);
            let k = c.outputs();
            let ys = targets(
                chunk
                    .iter()
                    .flat_map(|&i| tr.y[i * k..(i + 1) * k].iter().copied())
                    .collect(),
                k,
                &tr.train_dev,
            );
            let l = loss(net.forward(xs, c.hidden), ys, c.classify);
            let part = l.clone().detach().mul_scalar(chunk.len() as f64);
            total = Some(match total {
                Some(t) => t + part,
                None => part,
            });
            let grads = GradientsParams::from_grads(l.backward(), &net);
            net = tr.optim.step(c.learning_rate, net, grads);
        }
        tr.net = net;
        let epoch = tr.epoch;
        tr.epoch += 1;
        self.curve
            .0
            .push(total.map_or(f64::NAN, scalar) / tr.order.len().max(1) as f64);
        // Early stopping on the validation tail; the best epoch's weights are what predicts.
        let Some((vx, vy)) = &tr.valid else {
            f.net = tr.net.valid();
            f.epochs_run = tr.epoch;
            return Ok(tr.epoch < c.epochs);
        };
        let eval_net = tr.net.valid();
        let rows: Vec<&Vec<f64>> = vx.iter().collect();
        let xs = steps(&rows, c, &f.x_mean, &f.x_sd, &f.device);
        let ys = targets(vy.clone(), c.outputs(), &f.device);
        let v = scalar(loss(eval_net.forward(xs, c.hidden), ys, c.classify));
        self.curve.1.push(v);
        if tr.best.is_none_or(|(b, _)| v < b) {
            tr.best = Some((v, epoch));
            f.net = eval_net;
            f.epochs_run = epoch + 1;
        } else if tr.patience > 0 && epoch - tr.best.map_or(0, |b| b.1) >= tr.patience {
            self.curve.2 = true;
            return Ok(false);
        }
        Ok(tr.epoch < c.epochs)
    }

    fn predict_many(&self, rows: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        // The label's output is the last.
        Ok(self
            .predict_paths(rows)?
            .into_iter()
            .map(|p| p.last().copied().unwrap_or(f64::NAN))
            .collect())
    }

    fn predict_paths(&self, rows: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, String> {
        let f = self.fitted.as_ref().ok_or("the model is not fitted")?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let want = f.config.sequence * f.config.features;
        if rows.iter().any(|r| r.len() != want) {
            return Err(format!(
                "the model takes sequences of {} steps × {} features",
                f.config.sequence, f.config.features
            ));
        }
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(4096) {
            let refs: Vec<&Vec<f64>> = chunk.iter().collect();
            let xs = steps(&refs, &f.config, &f.x_mean, &f.x_sd, &f.device);
            let z = f.net.forward(xs, f.config.hidden);
            let z: Tensor<2> = if f.config.classify { sigmoid(z) } else { z };
            let v = z
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| format!("LSTM output: {e:?}"))?;
            let k = f.config.outputs();
            out.extend(v.chunks(k).map(|row| {
                row.iter()
                    .zip(&f.y_scale)
                    .map(|(&p, &(m, sd))| {
                        if f.config.classify {
                            p as f64
                        } else {
                            p as f64 * sd + m
                        }
                    })
                    .collect::<Vec<f64>>()
            }));
        }
        Ok(out)
    }

    fn horizons(&self) -> Vec<u32> {
        self.fitted
            .as_ref()
            .map_or_else(Vec::new, |f| f.config.horizons.clone())
    }

    fn format(&self) -> &'static str {
        "lstm"
    }

    fn save(&self) -> Result<String, String> {
        let f = self.fitted.as_ref().ok_or("the model is not fitted")?;
        let bytes = f
            .net
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| format!("LSTM weights: {e}"))?;
        let (y_mean, y_sd) = *f.y_scale.last().ok_or("the model has no outputs")?;
        serde_json::to_string(&Saved {
            config: f.config.clone(),
            x_mean: f.x_mean.clone(),
            x_sd: f.x_sd.clone(),
            y_mean,
            y_sd,
            path_scale: if f.y_scale.len() > 1 {
                f.y_scale.clone()
            } else {
                Vec::new()
            },
            record: hex::encode(&bytes[..]),
            epochs_run: f.epochs_run,
        })
        .map_err(|e| e.to_string())
    }

    fn rounds(&self) -> Option<u32> {
        self.fitted.as_ref().map(|f| f.epochs_run as u32)
    }

    fn curve(&self) -> Option<mlt_protocol::lineage::Curve> {
        use mlt_protocol::lineage::{Curve, Stopped};
        let (train, valid, early) = &self.curve;
        (!train.is_empty()).then(|| Curve {
            metric: if self.settings.classify {
                "logloss"
            } else {
                "mse"
            }
            .into(),
            unit: "epoch".into(),
            every: 1,
            train: train.clone(),
            valid: valid.clone(),
            best: self.fitted.as_ref().map_or(0, |f| f.epochs_run as u32),
            stopped: if *early {
                Stopped::EarlyStopping
            } else {
                Stopped::Limit
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Rows, Slot, Training};
    use rand::Rng;

    /// Sequences of 2 features over 8 steps; the label is the sign of feature 0 three steps
    /// back plus noise (a pattern only a sequence model sees).
    fn data(n: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f64>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let r: Vec<f64> = (0..16).map(|_| rng.random_range(-1.0..1.0)).collect();
            let signal = r[(8 - 3) * 2];
            y.push(if signal + rng.random_range(-0.3..0.3) > 0.0 {
                1.0
            } else {
                0.0
            });
            x.push(r);
        }
        (x, y)
    }

    fn settings(extra: &[(&str, f64)]) -> ModelSettings {
        let mut params: std::collections::BTreeMap<String, f64> = [
            ("sequence", 8.0),
            ("hidden", 16.0),
            ("epochs", 40.0),
            ("batch", 64.0),
            ("learning_rate", 0.01),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
        for (k, v) in extra {
            params.insert(k.to_string(), *v);
        }
        ModelSettings {
            name: mlt_protocol::spec::ModelKind::Lstm,
            classify: true,
            rows: Rows {
                lookback: 8,
                ..Default::default()
            },
            training: Training {
                early_stopping: 5,
                ..Default::default()
            },
            slot: Slot {
                seed: 3,
                ..Default::default()
            },
            params,
            ..Default::default()
        }
    }

    fn accuracy(m: &dyn Model, x: &[Vec<f64>], y: &[f64]) -> f64 {
        let p = m.predict_many(x).unwrap();
        p.iter()
            .zip(y)
            .filter(|(p, y)| (**p > 0.5) == (**y > 0.5))
            .count() as f64
            / y.len() as f64
    }

    #[test]
    fn the_lstm_learns_a_lagged_pattern_saves_and_reloads() {
        let (x, y) = data(800, 1);
        let (vx, vy) = data(200, 2);
        let (tx, ty) = data(400, 3);
        for extra in [
            &[][..],
            &[("layers", 2.0), ("attention", 1.0), ("dropout", 0.1)][..],
        ] {
            let mut m = Lstm::new(settings(extra));
            m.fit(&x, &y, Some((&vx, &vy))).unwrap();
            let acc = accuracy(&m, &tx, &ty);
            assert!(acc > 0.75, "{extra:?}: test accuracy {acc}");
            // A point per epoch run; the kept epoch is the best on validation; training loss
            // fell while it learned.
            let c = m.curve().expect("a curve");
            assert_eq!(c.train.len(), c.valid.len());
            assert!(c.train.iter().all(|l| l.is_finite()), "{c:?}");
            let best = c.valid.iter().copied().fold(f64::INFINITY, f64::min);
            assert_eq!(c.valid[c.best as usize - 1], best, "{c:?}");
            assert_eq!(Some(c.best), m.rounds());
            assert!(c.train.last() < c.train.first(), "{c:?}");
            // The kept weights reload to the same predictions.
            let back = Lstm::load(&m.save().unwrap()).unwrap();
            assert_eq!(
                back.predict_many(&tx).unwrap(),
                m.predict_many(&tx).unwrap()
            );
            assert!(m.rounds().is_some_and(|e| (1..=40).contains(&e)));
        }
        // Same seed, same model.
        let fit = || {
            let mut m = Lstm::new(settings(&[("epochs", 3.0)]));
            m.fit(&x[..200], &y[..200], None).unwrap();
            m.predict_many(&tx[..10]).unwrap()
        };
        assert_eq!(fit(), fit());
        // Bad input is an error.
        let m = Lstm::new(settings(&[]));
        assert!(m.predict_many(&tx).is_err());
        let mut m = Lstm::new(settings(&[]));
        assert!(m.fit(&[vec![1.0; 5]], &[1.0], None).is_err());
        assert!(Lstm::load("{}").is_err());
    }

    #[test]
    fn a_multi_step_head_learns_each_horizon_on_its_own_scale() {
        // Two outputs: the first is feature 0 three steps back, the second ten times feature
        // 1 at the last step (another pattern, another scale).
        let data = |n: usize, seed: u64| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for _ in 0..n {
                let r: Vec<f64> = (0..16).map(|_| rng.random_range(-1.0..1.0)).collect();
                y.push(r[(8 - 3) * 2] + rng.random_range(-0.1..0.1));
                y.push(10.0 * r[7 * 2 + 1] + rng.random_range(-1.0..1.0));
                x.push(r);
            }
            (x, y)
        };
        let (x, y) = data(1500, 1);
        let (vx, vy) = data(300, 2);
        let (tx, ty) = data(400, 3);
        let mut s = settings(&[("hidden", 24.0), ("epochs", 60.0)]);
        s.classify = false;
        s.rows.horizons = vec![1, 2];
        let mut m = Lstm::new(s.clone());
        // One target per row is not enough for two outputs.
        assert!(Lstm::new(s).fit(&x, &y[..x.len()], None).is_err());
        m.fit(&x, &y, Some((&vx, &vy))).unwrap();
        assert_eq!(m.horizons(), vec![1, 2]);
        let p = m.predict_paths(&tx).unwrap();
        assert!(p.iter().all(|r| r.len() == 2));
        let sd = |a: &[f64]| {
            let n = a.len() as f64;
            let m = a.iter().sum::<f64>() / n;
            (a.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt()
        };
        for j in 0..2 {
            let pred: Vec<f64> = p.iter().map(|r| r[j]).collect();
            let truth: Vec<f64> = ty.iter().skip(j).step_by(2).copied().collect();
            let c = crate::metrics::pearson(&pred, &truth);
            assert!(c > 0.8, "output {j}: correlation {c}");
            // On the target's own scale: the fitted values spread like the targets do.
            let ratio = sd(&pred) / sd(&truth);
            assert!(
                (0.6..1.2).contains(&ratio),
                "output {j}: spread ratio {ratio}"
            );
        }
        // The label (traded) is the last output; the artifact keeps every output's scale.
        let last: Vec<f64> = p.iter().map(|r| r[1]).collect();
        assert_eq!(m.predict_many(&tx).unwrap(), last);
        let back = Lstm::load(&m.save().unwrap()).unwrap();
        assert_eq!(back.predict_paths(&tx).unwrap(), p);
        assert_eq!(back.horizons(), vec![1, 2]);
    }
}
