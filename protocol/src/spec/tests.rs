use super::*;

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
    let s = Spec::parse(GOOD, "good.toml").unwrap();
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
    Spec::parse(&GOOD.replace(from, to), "bad.toml").unwrap_err()
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
    let e = Spec::parse(&text, "bad.toml").unwrap_err();
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
    let e = Spec::parse(&text, "bad.toml").unwrap_err();
    assert!(e.to_string().contains("cycle"), "{e}");
}

#[test]
fn activity_follows_parent_values() {
    let s = Spec::parse(GOOD, "good.toml").unwrap();
    let depth = s.space.params.iter().find(|p| p.name == "depth").unwrap();
    let mut decided = Params::new();
    decided.insert("model".into(), ParamValue::Str("a".into()));
    assert!(!SearchSpace::is_active(depth, &decided));
    decided.insert("model".into(), ParamValue::Str("b".into()));
    assert!(SearchSpace::is_active(depth, &decided));
}
