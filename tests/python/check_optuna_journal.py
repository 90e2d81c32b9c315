"""Reads an exported Optuna journal with the real Optuna and optuna-dashboard, and checks it
against mlt-cluster's own JSON export of the same study.

    python check_optuna_journal.py JOURNAL TRIALS_JSON STUDY_NAME DIRECTIONS

DIRECTIONS: comma-separated `minimize`/`maximize`. Prints one JSON line of what it saw; any
difference raises (a non-zero exit with the trial and the field).
"""
import io
import json
import math
import sys
from wsgiref.util import setup_testing_defaults

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

STATES = {
    "waiting": TrialState.WAITING,
    "running": TrialState.RUNNING,
    "complete": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "failed": TrialState.FAIL,
    "lost": TrialState.FAIL,
}


def close(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, rel_tol=0, abs_tol=0))


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def get(app, path):
    environ = {"PATH_INFO": path.split("?")[0], "QUERY_STRING": path.partition("?")[2]}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda s, h, exc=None: status.append(s)))
    check(status and status[0].startswith("200"), f"optuna-dashboard GET {path}: {status} {body[:300]!r}")
    return body


def main():
    journal, trials_json, name, directions = sys.argv[1:5]
    ours = [t for t in json.load(open(trials_json)) if not str(t["origin"]).startswith("holdout")]
    storage = JournalStorage(JournalFileBackend(journal))
    study = optuna.load_study(study_name=name, storage=storage)
    want_dirs = [optuna.study.StudyDirection.MINIMIZE if d == "minimize" else optuna.study.StudyDirection.MAXIMIZE for d in directions.split(",")]
    check(study.directions == want_dirs, f"directions {study.directions} != {want_dirs}")
    trials = study.get_trials(deepcopy=False)
    check(len(trials) == len(ours), f"{len(trials)} trials in the journal, {len(ours)} in the study")
    for t, o in zip(trials, ours):
        where = f"trial {o['number']}"
        check(t.number == o["number"], f"{where}: number {t.number}")
        check(t.state == STATES[o["state"]], f"{where}: state {t.state} != {o['state']}")
        check(t.params == o["params"], f"{where}: params {t.params} != {o['params']}")
        for k, d in t.distributions.items():
            check(d._contains(d.to_internal_repr(t.params[k])), f"{where}: {k}={t.params[k]} outside {d}")
        if o["state"] == "complete":
            want = o["values"]
            check(t.values == want, f"{where}: values {t.values} != {want}")
        else:
            check(t.values is None, f"{where}: values {t.values} for a {o['state']} trial")
        want_iv = {int(k): v[0] for k, v in o["intermediate"].items()}
        check(t.intermediate_values == want_iv, f"{where}: intermediate values {t.intermediate_values} != {want_iv}")
        for k, v in o["metrics"].items():
            check(t.user_attrs.get(k) == v, f"{where}: user_attrs[{k}] {t.user_attrs.get(k)} != {v}")
        check(t.user_attrs["mlt.state"] == o["state"], f"{where}: mlt.state")
        for k, v in o.get("tags", {}).items():
            check(t.user_attrs.get(f"tag.{k}") == v, f"{where}: tag {k}")
        notes = [n["text"] for n in o.get("notes", [])]
        check(t.user_attrs.get("notes", []) == notes, f"{where}: notes {t.user_attrs.get('notes')} != {notes}")
        if o["message"] is not None:
            check(t.system_attrs.get("fail_reason") == o["message"], f"{where}: fail_reason")
        if o["started_ms"] is not None:
            check(abs(t.datetime_start.timestamp() * 1000 - o["started_ms"]) < 1, f"{where}: datetime_start {t.datetime_start}")
        if o["finished_ms"] is not None and t.state.is_finished():
            check(abs(t.datetime_complete.timestamp() * 1000 - o["finished_ms"]) < 1, f"{where}: datetime_complete {t.datetime_complete}")
    seen = {
        "trials": len(trials),
        "states": sorted({t.state.name for t in trials}),
        "study_user_attrs": study.user_attrs,
        "tagged": sorted(t.number for t in trials if any(k.startswith("tag.") for k in t.user_attrs)),
    }
    if len(want_dirs) == 1 and any(t.state == TrialState.COMPLETE for t in trials):
        seen["best_number"] = study.best_trial.number
        seen["best_value"] = study.best_value
    else:
        seen["pareto"] = sorted(t.number for t in study.best_trials)

    # optuna-dashboard's own app, unchanged, on the same file (its WSGI app, no socket).
    from optuna_dashboard import wsgi

    app = wsgi(JournalStorage(JournalFileBackend(journal)))
    studies = json.loads(get(app, "/api/studies"))["study_summaries"]
    check([s["study_name"] for s in studies] == [name], f"dashboard studies: {studies}")
    sid = studies[0]["study_id"]
    detail = json.loads(get(app, f"/api/studies/{sid}?after=0"))
    check(len(detail["trials"]) == len(ours), f"dashboard shows {len(detail['trials'])} trials")
    seen["dashboard_trials"] = len(detail["trials"])
    seen["dashboard_best"] = sorted(t["number"] for t in detail["best_trials"])
    csv = get(app, f"/csv/{sid}").decode()
    seen["dashboard_csv_rows"] = len(csv.strip().splitlines()) - 1
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
