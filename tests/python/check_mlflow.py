"""Reads a study exported to an MLflow tracking server back through MLflow's own client and
checks it against mlt-cluster's listing of the same study.

    python check_mlflow.py TRACKING_URI EXPERIMENT TRIALS_JSON TRIAL_JSON ARTIFACT_FILE MODEL_NAME

TRIALS_JSON: `mlt-cluster trials STUDY --json`; TRIAL_JSON: `mlt-cluster trial STUDY N --json`
of one complete trial; ARTIFACT_FILE: that trial's model text (`artifact STUDY N --out`);
MODEL_NAME: a registered name whose production version is that trial. Prints one JSON line of
what it saw; any difference raises.
"""
import json
import math
import sys
import tempfile

from mlflow.tracking import MlflowClient

STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED", "lost": "FAILED"}


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main():
    uri, experiment, trials_json, trial_json, artifact_file, model_name = sys.argv[1:7]
    ours = json.load(open(trials_json))
    one = json.load(open(trial_json))
    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name(experiment)
    check(exp is not None, f"no experiment {experiment}")
    runs = c.search_runs([exp.experiment_id], max_results=10000)
    parents = [r for r in runs if r.data.tags.get("mlt.kind") == "study"]
    check(len(parents) == 1, f"{len(parents)} parent runs")
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    check(len(children) == len(ours), f"{len(children)} child runs for {len(ours)} trials")
    by_trial = {int(r.data.tags["mlt.trial"]): r for r in children}
    for o in ours:
        r = by_trial[o["number"]]
        where = f"trial {o['number']}"
        check(r.info.status == STATUS[o["state"]], f"{where}: status {r.info.status}")
        want = {k: str(v) for k, v in o["params"].items()}
        check(r.data.params == want, f"{where}: params {r.data.params} != {want}")
        for k, v in o["metrics"].items():
            if math.isfinite(v):
                check(r.data.metrics.get(k) == v, f"{where}: metric {k} {r.data.metrics.get(k)} != {v}")
        for k, v in o["tags"].items():
            check(r.data.tags.get(k) == v, f"{where}: tag {k}")
        if o["notes"]:
            check(o["notes"][0]["text"] in r.data.tags.get("mlflow.note.content", ""), f"{where}: notes")
        steps = {int(s): v[0] for s, v in o["intermediate"].items()}
        if steps:
            hist = c.get_metric_history(r.info.run_id, "intermediate/sharpe")
            got = {m.step: m.value for m in hist}
            check(got == steps, f"{where}: intermediate {got} != {steps}")
    # One trial's lineage and curves.
    n = one["trial"]["number"]
    r = by_trial[n]
    run = one["lineage"]["run"]
    check(r.data.tags["mlt.commit"] == run["commit"], "lineage: commit")
    check(r.data.tags["mlt.node"] == run["node"], "lineage: node")
    fold = run["folds"][0]
    curve = fold["curve"]
    key = f"fold{fold['fold']}/train_{curve['metric']}"
    hist = sorted(c.get_metric_history(r.info.run_id, key), key=lambda m: m.step)
    check([m.value for m in hist] == curve["train"], f"curve {key}: {[m.value for m in hist]} != {curve['train']}")
    check([m.step for m in hist] == [(i + 1) * curve["every"] for i in range(len(curve["train"]))], "curve steps")
    # The model, byte for byte.
    with tempfile.TemporaryDirectory() as d:
        path = c.download_artifacts(r.info.run_id, "model/model.txt", d)
        check(open(path).read() == open(artifact_file).read(), "model text differs")
    # The registered production version: its alias, its run.
    mv = c.get_model_version_by_alias(model_name, "production")
    check(mv.run_id == r.info.run_id, f"production version's run {mv.run_id} != {r.info.run_id}")
    check(mv.tags.get("mlt.stage") == "production", f"tags {mv.tags}")
    print(json.dumps({
        "runs": len(children),
        "parent_metrics": sorted(parent.data.metrics),
        "curve_points": len(hist),
        "model_version": mv.version,
        "mlt_version": mv.tags.get("mlt.version"),
    }))


if __name__ == "__main__":
    main()
