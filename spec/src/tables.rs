//! The model settings a spec may give (`[objective.lightgbm]`, `[objective.lstm]`, or as
//! trial parameters) with their bounds and aliases, and the metrics a walk-forward trial
//! reports (its objectives and constraints may name only these).

use mlt_protocol::spec::ModelKind;

/// One model setting, defined once: spec validation, the merging of a trial's parameters
/// and the model itself all read it from here (as LightGBM's `config.h` does for its own).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Setting {
    /// Its name in `[objective.<model>]` and as a trial parameter.
    pub name: &'static str,
    /// Other names a trial parameter may use for it (scikit-learn's, LightGBM's).
    pub aliases: &'static [&'static str],
    /// Lowest value.
    pub low: f64,
    /// Highest value.
    pub high: f64,
    /// Whether it takes whole numbers (`attention` is 0 or 1).
    pub integral: bool,
    /// The value the model uses when neither the spec nor the trial gives one; `None`: the
    /// library's own default.
    pub default: Option<f64>,
}

impl Setting {
    const fn new(name: &'static str, low: f64, high: f64, integral: bool) -> Self {
        Setting {
            name,
            aliases: &[],
            low,
            high,
            integral,
            default: None,
        }
    }

    const fn or(mut self, default: f64) -> Self {
        self.default = Some(default);
        self
    }

    const fn aka(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }

    /// Whether `name` names this setting (its name or an alias).
    pub fn is(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }

    /// `v` as the model takes it: rounded when integral, within the bounds.
    pub fn clamp(&self, v: f64) -> f64 {
        let v = if self.integral { v.round() } else { v };
        v.clamp(self.low, self.high)
    }

    /// The value of this setting among `given` (by its name), else its default.
    pub fn value(&self, given: &std::collections::BTreeMap<String, f64>) -> Option<f64> {
        given
            .get(self.name)
            .copied()
            .or(self.default)
            .map(|v| self.clamp(v))
    }
}

/// LightGBM's settings (`[objective.lightgbm]`, trial parameters); the others keep LightGBM's
/// defaults.
pub const LIGHTGBM: &[Setting] = &[
    Setting::new("num_iterations", 1.0, 100_000.0, true)
        .or(200.0)
        .aka(&["n_estimators", "num_rounds", "rounds"]),
    Setting::new("learning_rate", 1e-6, 1.0, false).or(0.05),
    Setting::new("num_leaves", 2.0, 131_072.0, true),
    Setting::new("max_depth", -1.0, 1000.0, true),
    Setting::new("min_data_in_leaf", 1.0, 1e7, true).aka(&["min_child_samples"]),
    Setting::new("min_sum_hessian_in_leaf", 0.0, 1e6, false),
    Setting::new("feature_fraction", 1e-6, 1.0, false).aka(&["colsample_bytree"]),
    Setting::new("bagging_fraction", 1e-6, 1.0, false).aka(&["subsample"]),
    Setting::new("bagging_freq", 0.0, 1e6, true).aka(&["subsample_freq"]),
    Setting::new("lambda_l1", 0.0, 1e9, false).aka(&["reg_alpha"]),
    Setting::new("lambda_l2", 0.0, 1e9, false).aka(&["reg_lambda"]),
    Setting::new("min_gain_to_split", 0.0, 1e9, false).aka(&["min_split_gain"]),
    Setting::new("max_bin", 2.0, 1e6, true),
    Setting::new("extra_trees", 0.0, 1.0, true),
    Setting::new("path_smooth", 0.0, 1e9, false),
];

/// The LSTM's settings (`[objective.lstm]`, trial parameters).
pub const LSTM: &[Setting] = &[
    // Days of features per input sequence.
    Setting::new("sequence", 1.0, 1000.0, true).or(30.0),
    Setting::new("layers", 1.0, 3.0, true).or(1.0),
    Setting::new("hidden", 1.0, 4096.0, true).or(32.0),
    Setting::new("dropout", 0.0, 0.9, false).or(0.0),
    Setting::new("attention", 0.0, 1.0, true).or(0.0),
    Setting::new("epochs", 1.0, 10_000.0, true).or(30.0),
    Setting::new("batch", 1.0, 65_536.0, true).or(256.0),
    Setting::new("learning_rate", 1e-7, 1.0, false).or(1e-3),
    Setting::new("weight_decay", 0.0, 1.0, false).or(0.0),
    // A multi-step head: outputs over horizons evenly spaced up to the label's.
    Setting::new("outputs", 1.0, 1000.0, true).or(1.0),
];

/// The settings of a model kind (ridge and ensembles have none of their own).
pub fn settings_of(model: ModelKind) -> &'static [Setting] {
    match model {
        ModelKind::Lightgbm => LIGHTGBM,
        ModelKind::Lstm => LSTM,
        ModelKind::Ridge | ModelKind::Ensemble => &[],
    }
}

/// The setting of `model` that `name` (a name or an alias) names.
pub fn setting(model: ModelKind, name: &str) -> Option<&'static Setting> {
    settings_of(model).iter().find(|s| s.is(name))
}

/// An ensemble member's setting as the ensemble keeps it: `lightgbm.learning_rate`.
pub fn member_key(member: ModelKind, setting: &str) -> String {
    format!("{member}.{setting}")
}

/// The setting of `member` that an ensemble's key holds (`lightgbm.learning_rate` →
/// `learning_rate`), or `None` for another member's.
pub fn member_setting(member: ModelKind, key: &str) -> Option<&str> {
    key.split_once('.')
        .filter(|(m, _)| *m == member.name())
        .map(|(_, k)| k)
}

/// Metrics a walk-forward trial reports, usable as objectives and in constraints.
pub const WALK_FORWARD_METRICS: [&str; 37] = [
    "sharpe",
    "sortino",
    "annual_return",
    "annual_volatility",
    "max_drawdown",
    "calmar",
    "win_rate",
    "var_5",
    "cvar_5",
    "turnover",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "balanced_accuracy",
    "true_up",
    "false_up",
    "true_down",
    "false_down",
    "ic",
    "sharpe_per_period",
    "skew",
    "kurtosis",
    "observations",
    "benchmark_sharpe",
    "benchmark_return",
    "excess_return",
    "information_ratio",
    "excess_t",
    "alpha",
    "alpha_t",
    "beta",
    "beta_t",
    "time_in_market",
    "long_days",
    "positive_folds",
    "fold_sharpe_std",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique_within_each_model() {
        for table in [LIGHTGBM, LSTM] {
            let mut seen = std::collections::BTreeSet::new();
            for s in table {
                for n in std::iter::once(&s.name).chain(s.aliases) {
                    assert!(seen.insert(*n), "`{n}` twice");
                }
                assert!(s.low <= s.high, "{}", s.name);
                if let Some(d) = s.default {
                    assert_eq!(s.clamp(d), d, "{}'s default is out of bounds", s.name);
                }
            }
        }
    }

    #[test]
    fn every_lstm_setting_has_a_default() {
        // The LSTM reads every setting through the table, given or not.
        assert!(LSTM.iter().all(|s| s.default.is_some()));
    }

    #[test]
    fn a_setting_is_found_by_name_or_alias_and_clamped_to_its_bounds() {
        use ModelKind::{Lightgbm, Lstm, Ridge};
        let s = setting(Lightgbm, "n_estimators").unwrap();
        assert_eq!(s.name, "num_iterations");
        assert_eq!(s.clamp(12.6), 13.0);
        assert_eq!(s.clamp(0.0), 1.0);
        assert!(setting(Lightgbm, "hidden").is_none());
        assert!(setting(Ridge, "alpha").is_none());
        let given = [("hidden".to_string(), 5000.0)].into();
        let hidden = setting(Lstm, "hidden").unwrap();
        assert_eq!(hidden.value(&given), Some(4096.0));
        assert_eq!(setting(Lstm, "epochs").unwrap().value(&given), Some(30.0));
        assert_eq!(setting(Lightgbm, "max_bin").unwrap().value(&given), None);
        assert_eq!(member_key(Lstm, "hidden"), "lstm.hidden");
        assert_eq!(member_setting(Lstm, "lstm.hidden"), Some("hidden"));
        assert_eq!(member_setting(Lstm, "lightgbm.max_bin"), None);
    }
}
