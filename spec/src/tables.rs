//! The model settings a spec may give (`[objective.lightgbm]`, `[objective.lstm]`, or as
//! trial parameters) with their bounds and aliases, and the metrics a walk-forward trial
//! reports (its objectives and constraints may name only these).

/// LightGBM settings accepted in `[objective.lightgbm]` and as trial parameters: name,
/// lowest, highest, whether integral.
pub const LIGHTGBM_SETTINGS: [(&str, f64, f64, bool); 15] = [
    ("num_iterations", 1.0, 100_000.0, true),
    ("learning_rate", 1e-6, 1.0, false),
    ("num_leaves", 2.0, 131_072.0, true),
    ("max_depth", -1.0, 1000.0, true),
    ("min_data_in_leaf", 1.0, 1e7, true),
    ("min_sum_hessian_in_leaf", 0.0, 1e6, false),
    ("feature_fraction", 1e-6, 1.0, false),
    ("bagging_fraction", 1e-6, 1.0, false),
    ("bagging_freq", 0.0, 1e6, true),
    ("lambda_l1", 0.0, 1e9, false),
    ("lambda_l2", 0.0, 1e9, false),
    ("min_gain_to_split", 0.0, 1e9, false),
    ("max_bin", 2.0, 1e6, true),
    ("extra_trees", 0.0, 1.0, true),
    ("path_smooth", 0.0, 1e9, false),
];

/// LSTM settings accepted in `[objective.lstm]` and as trial parameters: name, lowest,
/// highest, whether integral (`attention` is 0 or 1).
pub const LSTM_SETTINGS: [(&str, f64, f64, bool); 10] = [
    ("sequence", 1.0, 1000.0, true),
    ("layers", 1.0, 3.0, true),
    ("hidden", 1.0, 4096.0, true),
    ("dropout", 0.0, 0.9, false),
    ("attention", 0.0, 1.0, true),
    ("epochs", 1.0, 10_000.0, true),
    ("batch", 1.0, 65_536.0, true),
    ("learning_rate", 1e-7, 1.0, false),
    ("weight_decay", 0.0, 1.0, false),
    // A multi-step head: outputs over horizons evenly spaced up to the label's.
    ("outputs", 1.0, 1000.0, true),
];

/// Common other names of LightGBM settings (scikit-learn's and LightGBM's aliases).
pub const LIGHTGBM_ALIASES: [(&str, &str); 10] = [
    ("n_estimators", "num_iterations"),
    ("num_rounds", "num_iterations"),
    ("rounds", "num_iterations"),
    ("reg_alpha", "lambda_l1"),
    ("reg_lambda", "lambda_l2"),
    ("colsample_bytree", "feature_fraction"),
    ("subsample", "bagging_fraction"),
    ("subsample_freq", "bagging_freq"),
    ("min_child_samples", "min_data_in_leaf"),
    ("min_split_gain", "min_gain_to_split"),
];

/// Metrics a walk-forward trial reports, usable as objectives and in constraints.
pub const WALK_FORWARD_METRICS: [&str; 19] = [
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
    "sharpe_per_period",
    "skew",
    "kurtosis",
    "observations",
];
