use super::*;
use mlt_protocol::records::{ParamValue, Params};
use mlt_protocol::spec::*;

const GOOD: &str = r#"
[study]
name = "demo"
directions = ["minimize"]
n_trials = 20
seed = 7

[sampler]
kind = "random"

[pruner]
kind = "median"
n_warmup_steps = 1

[space]
x0 = { type = "float", low = -5, high = 10 }
x1 = { type = "float", low = 0.0, high = 15.0 }
model = { type = "categorical", choices = ["a", "b"] }
depth = { type = "int", low = 1, high = 8, when = { model = ["b"] } }
leaf = { type = "int", low = 2, high = 64, log = true, when = { depth = [1, 2] } }

[objective]
kind = "benchmark"
function = "branin"
steps = 3
"#;

#[test]
fn good_spec_parses_with_parents_first() {
    let s = parse(GOOD, "good.toml").unwrap();
    assert_eq!(s.study.n_trials, 20);
    assert_eq!(s.study.seed, 7);
    let names: Vec<&str> = s.space.params.iter().map(|p| p.name.as_str()).collect();
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(pos("model") < pos("depth") && pos("depth") < pos("leaf"));
    assert!(matches!(
        s.pruner,
        PrunerSpec::Median(MedianSpec {
            n_warmup_steps: 1,
            n_startup_trials: 5,
            ..
        })
    ));
    assert!(matches!(
        s.objective,
        ObjectiveSpec::Benchmark(BenchmarkSpec { steps: 3, .. })
    ));
}

/// Replaces `from` with `to` in the good spec and returns the single error's (line, key, text).
fn broken(from: &str, to: &str) -> SpecError {
    assert!(GOOD.contains(from), "{from}");
    parse(&GOOD.replace(from, to), "bad.toml").unwrap_err()
}

fn line_of(text: &str) -> usize {
    GOOD.lines().position(|l| l.contains(text)).unwrap() + 1
}

#[track_caller]
fn expect(err: &SpecError, line: usize, key: &str, words: &str) {
    let shown = err.to_string();
    assert!(
        err.issues
            .iter()
            .any(|i| i.line == Some(line) && i.key.contains(key) && i.message.contains(words)),
        "wanted line {line}, key {key}, `{words}` in:\n{shown}"
    );
    assert!(shown.starts_with("bad.toml:"), "{shown}");
}

#[test]
fn every_kind_of_mistake_names_line_and_key() {
    let e = broken("seed = 7", "seed = 7\ncolour = 1");
    assert!(e.to_string().contains("unknown field `colour`"), "{e}");
    assert_eq!(e.issues[0].line, Some(line_of("seed = 7") + 1));

    expect(
        &broken("low = -5, high = 10", "low = 11, high = 10"),
        line_of("x0 ="),
        "space.x0.low",
        "greater than high",
    );
    expect(
        &broken(r#"choices = ["a", "b"]"#, "choices = []"),
        line_of("model ="),
        "space.model.choices",
        "empty",
    );
    expect(
        &broken("low = 2, high = 64, log", "low = 0, high = 64, log"),
        line_of("leaf ="),
        "space.leaf.low",
        "log-scale",
    );
    expect(
        &broken(r#"kind = "random""#, r#"kind = "annealing""#),
        line_of("kind = \"random\""),
        "sampler.kind",
        "unknown sampler",
    );
    expect(
        &broken("n_trials = 20", "n_trials = -3"),
        line_of("n_trials"),
        "study.n_trials",
        "positive",
    );
    expect(
        &broken("when = { model", "when = { modle"),
        line_of("depth ="),
        "space.depth.when.modle",
        "not a parameter",
    );
    expect(
        &broken(r#"model = ["b"]"#, r#"model = ["c"]"#),
        line_of("depth ="),
        "space.depth.when.model",
        "not a value",
    );
    expect(
        &broken(r#"type = "int", low = 1"#, r#"type = "integer", low = 1"#),
        line_of("depth ="),
        "space.depth.type",
        "unknown parameter type",
    );
    expect(
        &broken(r#"kind = "median""#, r#"kind = "oracle""#),
        line_of("kind = \"median\""),
        "pruner.kind",
        "unknown pruner",
    );
    expect(
        &broken(r#"function = "branin""#, r#"function = "ackley""#),
        line_of("function"),
        "objective.function",
        "unknown function",
    );
    expect(
        &broken(r#"kind = "benchmark""#, r#"kind = "magic""#),
        line_of("kind = \"benchmark\""),
        "objective.kind",
        "unknown objective",
    );
    expect(
        &broken("low = 1, high = 8", "low = 1.5, high = 8"),
        line_of("depth ="),
        "space.depth.low",
        "integer",
    );
    expect(
        &broken("log = true", "log = true, step = 2"),
        line_of("leaf ="),
        "space.leaf.step",
        "cannot be used together",
    );
    expect(
        &broken(
            r#"directions = ["minimize"]"#,
            r#"directions = ["minimise"]"#,
        ),
        line_of("directions"),
        "study.directions",
        "unknown direction",
    );
    expect(
        &broken(r#"name = "demo""#, r#"name = "no spaces""#),
        line_of("name ="),
        "study.name",
        "letters",
    );
    expect(
        &broken("x1 = { type", "y1 = { type"),
        line_of("[objective]"),
        "objective.function",
        "x1",
    );
    expect(
        &broken("steps = 3", "steps = 3\ncommand = [\"x\"]"),
        line_of("steps = 3") + 1,
        "objective.command",
        "not a setting",
    );
}

#[test]
fn several_mistakes_are_all_reported() {
    let text = GOOD
        .replace("n_trials = 20", "n_trials = 0")
        .replace("low = -5, high = 10", "low = 11, high = 10");
    let e = parse(&text, "bad.toml").unwrap_err();
    let keys: Vec<&str> = e.issues.iter().map(|i| i.key.as_str()).collect();
    assert!(
        keys.contains(&"study.n_trials") && keys.contains(&"space.x0.low"),
        "{e}"
    );
}

#[test]
fn conditional_cycle_is_refused() {
    let text = GOOD.replace(
        "model = { type = \"categorical\", choices = [\"a\", \"b\"] }",
        "model = { type = \"categorical\", choices = [\"a\", \"b\"], when = { leaf = [2] } }",
    );
    let e = parse(&text, "bad.toml").unwrap_err();
    assert!(e.to_string().contains("cycle"), "{e}");
}

#[test]
fn activity_follows_parent_values() {
    let s = parse(GOOD, "good.toml").unwrap();
    let depth = s.space.params.iter().find(|p| p.name == "depth").unwrap();
    let mut decided = Params::new();
    decided.insert("model".into(), ParamValue::Str("a".into()));
    assert!(!SearchSpace::is_active(depth, &decided));
    decided.insert("model".into(), ParamValue::Str("b".into()));
    assert!(SearchSpace::is_active(depth, &decided));
}

fn sampler_pruner(sampler: &str, pruner: &str) -> Result<Spec, SpecError> {
    let text = GOOD
        .replace(
            "[sampler]\nkind = \"random\"",
            &format!("[sampler]\n{sampler}"),
        )
        .replace(
            "[pruner]\nkind = \"median\"\nn_warmup_steps = 1",
            &format!("[pruner]\n{pruner}"),
        );
    parse(&text, "s.toml")
}

#[test]
fn sampler_and_pruner_settings_are_typed_and_checked_per_kind() {
    let s = sampler_pruner(
        "kind = \"tpe\"\nn_startup_trials = 20\nmultivariate = true\ngroup = true\nconstant_liar = true\ngamma = 0.2",
        "kind = \"hyperband\"\nmin_resource = 1\nmax_resource = 27\nreduction_factor = 3",
    )
    .unwrap();
    let SamplerSpec::Tpe(t) = &s.sampler else {
        panic!("{:?}", s.sampler)
    };
    assert_eq!(
        (t.n_startup_trials, t.n_ei_candidates, t.gamma),
        (20, 24, 0.2)
    );
    assert!(t.multivariate && t.group && t.constant_liar);
    assert_eq!(
        s.pruner,
        PrunerSpec::Hyperband(HyperbandSpec {
            min_resource: 1,
            max_resource: Some(27),
            reduction_factor: 3
        })
    );
    let s = sampler_pruner(
        "kind = \"cmaes\"\nrestart = \"bipop\"\npopsize = 12",
        "kind = \"asha\"",
    )
    .unwrap();
    assert!(
        matches!(&s.sampler, SamplerSpec::CmaEs(c) if c.restart == Restart::Bipop && c.popsize == Some(12))
    );
    assert!(
        matches!(&s.pruner, PrunerSpec::Asha(a) if a.reduction_factor == 4 && a.min_resource == 1)
    );
    // Each mistake names its line, key, and what the kind accepts.
    let line = |e: &SpecError, key: &str| {
        e.issues
            .iter()
            .find(|i| i.key == key)
            .unwrap_or_else(|| panic!("no issue for {key}: {e}"))
            .clone()
    };
    let e = sampler_pruner(
        "kind = \"tpe\"\npopsize = 3",
        "kind = \"asha\"\npercentile = 50",
    )
    .unwrap_err();
    let i = line(&e, "sampler.popsize");
    assert!(
        i.message.contains("not a setting of the tpe sampler")
            && i.message.contains("n_startup_trials"),
        "{e}"
    );
    assert_eq!(i.line, Some(10));
    assert!(
        line(&e, "pruner.percentile")
            .message
            .contains("min_resource"),
        "{e}"
    );
    let e = sampler_pruner("kind = \"annealing\"", "kind = \"percentile\"").unwrap_err();
    assert!(
        line(&e, "sampler.kind")
            .message
            .contains("expected: random, grid, qmc, tpe, cmaes, nsga2, ga, gp"),
        "{e}"
    );
    assert!(
        line(&e, "pruner.percentile")
            .message
            .contains("needs `percentile`"),
        "{e}"
    );
    let e = sampler_pruner(
        "kind = \"tpe\"\ngamma = 2\nmultivariate = false\ngroup = true",
        "kind = \"threshold\"",
    )
    .unwrap_err();
    assert!(line(&e, "sampler.gamma").message.contains("between"), "{e}");
    assert!(
        line(&e, "sampler.group").message.contains("multivariate"),
        "{e}"
    );
    assert!(line(&e, "pruner.lower").message.contains("lower"), "{e}");
    let e = sampler_pruner(
        "kind = \"cmaes\"\nrestart = \"sometimes\"",
        "kind = \"hyperband\"\nmax_resource = \"big\"",
    )
    .unwrap_err();
    assert!(
        line(&e, "sampler.restart")
            .message
            .contains("none, ipop, bipop"),
        "{e}"
    );
    assert!(
        line(&e, "pruner.max_resource").message.contains("auto"),
        "{e}"
    );
    // Single-objective samplers refuse a multi-objective study.
    let text = GOOD
        .replace(
            "directions = [\"minimize\"]",
            "directions = [\"minimize\", \"maximize\"]",
        )
        .replace("[sampler]\nkind = \"random\"", "[sampler]\nkind = \"gp\"")
        .replace(
            "kind = \"benchmark\"\nfunction = \"branin\"\nsteps = 3",
            "kind = \"command\"\ncommand = [\"x\"]",
        );
    let e = parse(&text, "s.toml").unwrap_err();
    assert!(
        line(&e, "sampler.kind")
            .message
            .contains("optimises one objective"),
        "{e}"
    );
}

#[test]
fn constraints_name_their_metric_and_bounds() {
    let with = |c: &str| parse(&format!("{GOOD}\n[[constraint]]\n{c}\n"), "c.toml");
    let s = with("metric = \"x0\"\nmax = 2.5").unwrap();
    assert_eq!(
        s.constraints,
        vec![ConstraintSpec {
            metric: "x0".into(),
            min: None,
            max: Some(2.5)
        }]
    );
    assert_eq!(s.constraints[0].value(3.0), 0.5);
    assert_eq!(s.constraints[0].value(2.0), -0.5);
    let e = with("metric = \"sharpe\"\nmin = 1")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "`constraint[0].metric`: a benchmark objective reports `value` and its parameters"
        ),
        "{e}"
    );
    let e = with("metric = \"x0\"").unwrap_err().to_string();
    assert!(e.contains("needs `min`, `max` or both"), "{e}");
    let e = with("metric = \"x0\"\nmin = 3\nmax = 1\nbelow = 2")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("greater than max") && e.contains("`constraint[0].below`"),
        "{e}"
    );
}

#[test]
fn walk_forward_objectives_are_checked() {
    let wf = |study: &str, obj: &str| {
        parse(
            &format!("[study]\nname = \"w\"\nn_trials = 5\n{study}\n[space]\nw = {{ type = \"int\", low = 5, high = 20 }}\n[objective]\nkind = \"walk_forward\"\n{obj}\n"),
            "w.toml",
        )
    };
    let ok = wf(
        "directions = [\"maximize\", \"maximize\"]\nobjectives = [\"sharpe\", \"max_drawdown\"]",
        "data = \"synthetic\"\nfeatures = { m = \"mean(returns, $w)\" }\nreport = \"fold\"",
    )
    .unwrap();
    let ObjectiveSpec::WalkForward(w) = &ok.objective else {
        panic!()
    };
    assert_eq!(
        w.report.objectives,
        vec!["sharpe".to_string(), "max_drawdown".to_string()]
    );
    assert!(
        w.report.per_fold && w.windows.train == 504 && w.windows.test == 63 && w.windows.step == 63
    );
    // Overlapping test windows would count days twice.
    let e = wf(
        "",
        "data = \"synthetic\"\nfeatures = { m = \"returns\" }\ntest = 63\nstep = 21",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`objective.step`") && e.contains("overlap") && e.contains("63-day"),
        "{e}"
    );
    wf(
        "",
        "data = \"synthetic\"\nfeatures = { m = \"returns\" }\ntest = 63\nstep = 126",
    )
    .unwrap();
    // `value` means sharpe.
    let v = wf("", "data = \"synthetic\"\nfeatures = { m = \"returns\" }").unwrap();
    let ObjectiveSpec::WalkForward(w) = &v.objective else {
        panic!()
    };
    assert_eq!(w.report.objectives, vec!["sharpe".to_string()]);
    let e = wf("objectives = [\"profit\"]", "data = \"synthetic\"\nfeatures = { m = \"returns\" }\nfunction = \"branin\"\nreport = \"weekly\"\nmodel = \"xgb\"")
        .unwrap_err()
        .to_string();
    for want in [
        "`study.objectives`: `profit` is not a walk-forward metric",
        "`objective.function`: is not a setting of a walk_forward objective",
        "`objective.report`: must be \"cumulative\" or \"fold\"",
        "`objective.model`: unknown model `xgb`",
    ] {
        assert!(e.contains(want), "{want}\n{e}");
    }
    let e = wf("", "").unwrap_err().to_string();
    assert!(e.contains("needs `data`"), "{e}");
    // Models, their settings tables, ensembles, hold-out and CPCV: typed and placed.
    let base = "data = \"synthetic\"\nfeatures = { m = \"mean(returns, $w)\" }\n";
    let ok = wf(
        "",
        &format!("{base}model = \"ensemble\"\nholdout = 250\nsplits = \"cpcv\"\ngroups = 5\n[objective.ensemble]\nmethod = \"stacking\"\nmembers = [\"ridge\", \"lightgbm\"]\n[objective.lightgbm]\nnum_leaves = 15\n"),
    )
    .unwrap();
    let ObjectiveSpec::WalkForward(w) = &ok.objective else {
        panic!()
    };
    assert_eq!(w.model.settings.get("lightgbm.num_leaves"), Some(&15.0));
    assert_eq!(
        w.model.ensemble.as_ref().unwrap().method,
        EnsembleMethod::Stacking
    );
    assert_eq!((w.windows.holdout, w.model.validation), (250, 0.2));
    assert!(matches!(
        w.windows.splits,
        Splits::Cpcv {
            groups: 5,
            test_groups: 2,
            embargo: 0
        }
    ));
    // Monte Carlo cross-validation: its windows, seed and embargo, and nothing of CPCV's.
    let ok = wf(
        "",
        &format!("{base}splits = \"monte_carlo\"\nwindows = 30\nsplit_seed = 9\nembargo = 5\n"),
    )
    .unwrap();
    let ObjectiveSpec::WalkForward(w) = &ok.objective else {
        panic!()
    };
    assert_eq!(
        w.windows.splits,
        Splits::MonteCarlo {
            windows: 30,
            embargo: 5,
            seed: 9
        }
    );
    let e = wf(
        "",
        &format!("{base}splits = \"monte_carlo\"\ngroups = 4\nwindows = 1\n"),
    )
    .unwrap_err()
    .to_string();
    for want in [
        "`objective.groups`: only with `splits = \"cpcv\"`",
        "`objective.windows`: must be between 2",
    ] {
        assert!(e.contains(want), "{want}\n{e}");
    }
    let e = wf("", &format!("{base}windows = 10\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`objective.windows`: only with `splits = \"monte_carlo\"`"),
        "{e}"
    );
    let e = wf(
        "",
        &format!("{base}model = \"lightgbm\"\nholdout = 5\ngroups = 3\ncategorical = [\"nope\"]\n[objective.lightgbm]\nnum_leaves = 1\nleaves = 3\n[objective.lstm]\nhidden = 8\n"),
    )
    .unwrap_err()
    .to_string();
    for want in [
        "`objective.holdout`: must be between 20",
        "`objective.groups`: only with `splits = \"cpcv\"`",
        "`objective.categorical`: `nope` is not one of the features",
        "`objective.lightgbm.num_leaves`: must be between 2",
        "`objective.lightgbm.leaves`: is not a setting of the lightgbm model",
        "`objective.lstm`: only with `model = \"lstm\"`",
    ] {
        assert!(e.contains(want), "{want}\n{e}");
    }
    let e = wf(
        "",
        &format!("{base}model = \"ensemble\"\n[objective.ensemble]\nmethod = \"bagging\"\nmembers = [\"ridge\", \"ridge\"]\nweights = [1]\n"),
    )
    .unwrap_err()
    .to_string();
    for want in [
        "`objective.ensemble.method`: must be one of voting, blending, dynamic, stacking",
        "`objective.ensemble.members`: must list two or more different models",
        "`objective.ensemble.weights`: voting weights",
    ] {
        assert!(e.contains(want), "{want}\n{e}");
    }
    let e = wf("", &format!("{base}model = \"ensemble\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs `[objective.ensemble]`"), "{e}");
    // A multi-step head: a lone LSTM, no more outputs than the label has days.
    let ok = wf(
        "",
        &format!("{base}model = \"lstm\"\nhorizon = 5\n[objective.lstm]\noutputs = 5\n"),
    )
    .unwrap();
    let ObjectiveSpec::WalkForward(w) = &ok.objective else {
        panic!()
    };
    assert_eq!(w.model.settings.get("outputs"), Some(&5.0));
    let e = wf(
        "",
        &format!("{base}model = \"lstm\"\nhorizon = 2\n[objective.lstm]\noutputs = 3\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`objective.lstm.outputs`: 3 outputs need a horizon of at least 3 days"),
        "{e}"
    );
    let e = wf(
        "",
        &format!("{base}model = \"ensemble\"\nhorizon = 2\n[objective.ensemble]\nmembers = [\"ridge\", \"lstm\"]\n[objective.lstm]\noutputs = 2\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("a multi-step head needs `model = \"lstm\"`"),
        "{e}"
    );
}

#[test]
fn sampler_defaults_are_the_documented_ones() {
    let tpe = |extra: &str| {
        let s = sampler_pruner(&format!("kind = \"tpe\"\n{extra}"), "kind = \"none\"").unwrap();
        match s.sampler {
            SamplerSpec::Tpe(t) => t,
            other => panic!("{other:?}"),
        }
    };
    // As Optuna 5.0: multivariate with constant liar, 24 candidates; univariate TPE takes 8
    // (both chosen on held-out problems, docs/benchmarks.md).
    assert_eq!(tpe(""), TpeSpec::default());
    assert!(tpe("").multivariate && tpe("").constant_liar);
    assert_eq!(tpe("").n_ei_candidates, 24);
    assert_eq!(tpe("multivariate = false").n_ei_candidates, 8);
    assert_eq!(
        tpe("multivariate = false\nn_ei_candidates = 24").n_ei_candidates,
        24
    );
    // Several objectives: univariate MOTPE by default, as Optuna's.
    let text = "[study]\nname = \"mo\"\ndirections = [\"minimize\", \"maximize\"]\nn_trials = 5\n[sampler]\nkind = \"tpe\"\n[space]\nx = { type = \"float\", low = 0.0, high = 1.0 }\n[objective]\nkind = \"command\"\ncommand = [\"true\"]\n";
    match parse(text, "mo.toml").unwrap().sampler {
        SamplerSpec::Tpe(t) => {
            assert!(!t.multivariate && t.constant_liar && t.n_ei_candidates == 8)
        }
        other => panic!("{other:?}"),
    }
    let cma = |extra: &str| {
        let s = sampler_pruner(&format!("kind = \"cmaes\"\n{extra}"), "kind = \"none\"").unwrap();
        match s.sampler {
            SamplerSpec::CmaEs(c) => c,
            other => panic!("{other:?}"),
        }
    };
    assert!(cma("").active && cma("").orthogonal && cma("").independent == Independent::Tpe);
    let c = cma("active = false\northogonal = false\nindependent = \"random\"");
    assert!(!c.active && !c.orthogonal && c.independent == Independent::Random);
    let e = sampler_pruner("kind = \"cmaes\"\nindependent = \"gp\"", "kind = \"none\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("independent") && e.contains("random"), "{e}");
}
