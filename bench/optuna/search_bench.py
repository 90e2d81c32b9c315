"""Optuna's side of `mlt-bench search`: the same problems, budgets and seeds, run with a pinned
Optuna in its own virtual environment (see bench/optuna/requirements.txt). Prints one JSON
object on stdout; mlt-bench puts the numbers next to ours.

    python search_bench.py quality --trials 200 --seeds 10 --samplers tpe,tpe-mv,cmaes,gp,random
    python search_bench.py cost --sizes 100,1000,10000
    python search_bench.py pruning --trials 200 --seeds 10 --steps 27
    python search_bench.py proposals --trials 100 --seeds 20 --asks 100
    python search_bench.py parallel --trials 200 --seeds 10 --workers 1,4,16 --samplers tpe,tpe-nolie

The problems and the synthetic learning curves are defined exactly as in bench/src/search.rs.
"""
import argparse
import json
import math
import os
import sys
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.ERROR)


def branin(p):
    x, y = p["x0"], p["x1"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


HA = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
HP = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]
HALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(p):
    x = [p[f"x{i}"] for i in range(6)]
    return -sum(HALPHA[i] * math.exp(-sum(HA[i][j] * (x[j] - HP[i][j]) ** 2 for j in range(6))) for i in range(4))


def rosenbrock(p):
    x = [p[f"x{i}"] for i in range(10)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(9))


def styblinski_tang(p):
    return sum(p[f"x{i}"] ** 4 - 16 * p[f"x{i}"] ** 2 + 5 * p[f"x{i}"] for i in range(10)) / 2


def mixed(p):
    base = (p["x"] - 0.3) ** 2 + 0.1 * (p["n"] - 3) ** 2
    k = p["kind"]
    return base + ((p["y"] - 0.7) ** 2 if k == "a" else 0.5 if k == "b" else 1.0)


def space_branin(t):
    return {"x0": t.suggest_float("x0", -5, 10), "x1": t.suggest_float("x1", 0, 15)}


def space_unit(d):
    return lambda t: {f"x{i}": t.suggest_float(f"x{i}", 0, 1) for i in range(d)}


def space_box(d, lo, hi):
    return lambda t: {f"x{i}": t.suggest_float(f"x{i}", lo, hi) for i in range(d)}


def space_mixed(t):
    p = {"x": t.suggest_float("x", 0, 1), "n": t.suggest_int("n", 0, 10), "kind": t.suggest_categorical("kind", ["a", "b", "c"])}
    if p["kind"] == "a":
        p["y"] = t.suggest_float("y", 0, 1)
    return p


# The held-out problems (bench/src/search/heldout.rs): used to choose our defaults, never in
# the quality table.
def hartmann3(x):
    a = [[3.0, 10.0, 30.0], [0.1, 10.0, 35.0], [3.0, 10.0, 30.0], [0.1, 10.0, 35.0]]
    p = [[0.3689, 0.1170, 0.2673], [0.4699, 0.4387, 0.7470], [0.1091, 0.8732, 0.5547], [0.0381, 0.5743, 0.8828]]
    return -sum(HALPHA[i] * math.exp(-sum(a[i][j] * (x[j] - p[i][j]) ** 2 for j in range(3))) for i in range(4))


def ackley(x):
    d = len(x)
    sq = sum(v * v for v in x) / d
    cs = sum(math.cos(2 * math.pi * v) for v in x) / d
    return -20 * math.exp(-0.2 * math.sqrt(sq)) - math.exp(cs) + 20 + math.e


def levy(x):
    w = [1 + (v - 1) / 4 for v in x]
    s = math.sin(math.pi * w[0]) ** 2
    for wi in w[:-1]:
        s += (wi - 1) ** 2 * (1 + 10 * math.sin(math.pi * wi + 1) ** 2)
    return s + (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)


def rastrigin(x):
    return 10 * len(x) + sum(v * v - 10 * math.cos(2 * math.pi * v) for v in x)


def six_hump_camel(x):
    a, b = x
    return (4 - 2.1 * a * a + a**4 / 3) * a * a + a * b + (-4 + 4 * b * b) * b * b


def goldstein_price(x):
    a, b = x
    p = 1 + (a + b + 1) ** 2 * (19 - 14 * a + 3 * a * a - 14 * b + 6 * a * b + 3 * b * b)
    q = 30 + (2 * a - 3 * b) ** 2 * (18 - 32 * a + 12 * a * a + 48 * b - 36 * a * b + 27 * b * b)
    return math.log(p * q)


def michalewicz(x):
    return -sum(math.sin(v) * math.sin((i + 1) * v * v / math.pi) ** 20 for i, v in enumerate(x))


def zakharov(x):
    s2 = sum(0.5 * (i + 1) * v for i, v in enumerate(x))
    return sum(v * v for v in x) + s2**2 + s2**4


def ellipsoid(x):
    d = len(x)
    z = list(x)
    for stride in (1, 2):
        y = list(z)
        for i in range(d):
            j = i ^ stride
            if j < d:
                y[i] = (z[i] + z[j]) / math.sqrt(2) if i < j else (z[j] - z[i]) / math.sqrt(2)
        z = y
    return sum(1e3 ** (i / (d - 1)) * v * v for i, v in enumerate(z))


SHIFT = [0.62, -0.35, 0.81, -0.57, 0.44, -0.73, 0.29, -0.48]


def boxed(f, d):
    return lambda p: f([p[f"x{i}"] for i in range(d)])


def shifted(f, d, half):
    return (space_box(d, -half, half), lambda p: f([p[f"x{i}"] - SHIFT[i] * 0.8 * half for i in range(d)]))


def space_ml(t):
    p = {"opt": t.suggest_categorical("opt", ["sgd", "adam", "rmsprop", "adagrad"])}
    p["lr"] = t.suggest_float("lr", 1e-5, 1.0, log=True)
    if p["opt"] in ("sgd", "rmsprop"):
        p["momentum"] = t.suggest_float("momentum", 0.0, 1.0)
    if p["opt"] == "adam":
        p["beta2"] = t.suggest_float("beta2", 0.9, 0.9999)
    p["layers"] = t.suggest_int("layers", 1, 8)
    p["width"] = t.suggest_int("width", 16, 1024, log=True)
    p["act"] = t.suggest_categorical("act", ["relu", "tanh", "gelu", "elu"])
    p["dropout"] = t.suggest_float("dropout", 0.0, 0.7, step=0.05)
    return p


def ml_conditional(p):
    base, best_lr = {"sgd": (0.15, -1.5), "adam": (0.0, -3.2), "rmsprop": (0.05, -2.7)}.get(p["opt"], (0.3, -1.0))
    f = base + 0.08 * (math.log10(p["lr"]) - best_lr) ** 2
    if "momentum" in p:
        f += 0.3 * (p["momentum"] - 0.9) ** 2
    if "beta2" in p:
        f += 50 * (p["beta2"] - 0.995) ** 2
    f += 0.01 * (p["layers"] - 4) ** 2
    f += 0.05 * (math.log(p["width"]) - math.log(256)) ** 2
    f += {"relu": 0.02, "tanh": 0.06, "gelu": 0.0}.get(p["act"], 0.01)
    return f + 0.4 * (p["dropout"] - 0.2) ** 2


CAT_COST = [
    [0.3, 0.0, 0.5, 0.2, 0.4],
    [0.1, 0.6, 0.0, 0.3, 0.2],
    [0.0, 0.2, 0.2, 0.7, 0.1],
    [0.5, 0.4, 0.3, 0.0, 0.6],
    [0.2, 0.1, 0.4, 0.3, 0.0],
    [0.4, 0.0, 0.1, 0.5, 0.3],
]


def space_cat6(t):
    p = {f"c{i}": t.suggest_categorical(f"c{i}", ["a", "b", "c", "d", "e"]) for i in range(6)}
    p.update({f"u{i}": t.suggest_float(f"u{i}", 0.0, 1.0) for i in range(3)})
    return p


def categorical6(p):
    cats = sum(CAT_COST[i]["abcde".index(p[f"c{i}"])] for i in range(6))
    return cats + sum((p[f"u{i}"] - c) ** 2 for i, c in enumerate([0.23, 0.71, 0.52]))


HELD_OUT = {
    "hartmann3": (space_unit(3), boxed(hartmann3, 3)),
    "ackley5": shifted(ackley, 5, 32.768),
    "levy6": shifted(levy, 6, 10.0),
    "rastrigin4": shifted(rastrigin, 4, 5.12),
    "six_hump_camel": (
        lambda t: {"x0": t.suggest_float("x0", -3.0, 3.0), "x1": t.suggest_float("x1", -2.0, 2.0)},
        boxed(six_hump_camel, 2),
    ),
    "goldstein_price": (space_box(2, -2.0, 2.0), boxed(goldstein_price, 2)),
    "michalewicz5": (space_box(5, 0.0, math.pi), boxed(michalewicz, 5)),
    "zakharov8": shifted(zakharov, 8, 10.0),
    "ellipsoid8": shifted(ellipsoid, 8, 5.0),
    "ml_conditional": (space_ml, ml_conditional),
    "categorical6": (space_cat6, categorical6),
}

PROBLEMS = {
    "branin": (space_branin, branin),
    "hartmann6": (space_unit(6), hartmann6),
    "rosenbrock10": (space_box(10, -5, 10), rosenbrock),
    "styblinski_tang10": (space_box(10, -5, 5), styblinski_tang),
    "mixed": (space_mixed, mixed),
    **HELD_OUT,
}


def sampler(kind, seed):
    s = optuna.samplers
    if kind == "tpe":
        # Optuna 5.0's default: multivariate TPE with constant liar.
        return s.TPESampler(seed=seed)
    if kind == "tpe-uni":
        return s.TPESampler(seed=seed, multivariate=False)
    if kind == "tpe-nolie":
        return s.TPESampler(seed=seed, constant_liar=False)
    if kind == "tpe-mv":
        return s.TPESampler(seed=seed, multivariate=True, group=True)
    if kind == "cmaes":
        return s.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if kind == "gp":
        return s.GPSampler(seed=seed)
    if kind == "qmc":
        return s.QMCSampler(seed=seed, warn_independent_sampling=False)
    if kind == "nsga2":
        return s.NSGAIISampler(seed=seed, population_size=20)
    if kind == "random":
        return s.RandomSampler(seed=seed)
    raise SystemExit(f"unknown sampler {kind}")


def available(kind):
    """Whether this Optuna can build the sampler (GPSampler needs PyTorch)."""
    try:
        # A short study: some samplers import their dependencies lazily, after the start-up
        # trials.
        st = optuna.create_study(sampler=sampler(kind, 0))
        st.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=12)
        return True
    except Exception as e:  # ImportError, or a broken PyTorch install
        print(f"optuna {kind}: unavailable ({e})", file=sys.stderr, flush=True)
        return False


def one_run(task):
    """One study: the best-so-far curve and the CPU seconds it took."""
    kind, name, seed, trials = task
    space, f = PROBLEMS[name]
    t0 = time.process_time()
    st = optuna.create_study(sampler=sampler(kind, seed))
    best, curve = math.inf, []
    for _ in range(trials):
        t = st.ask()
        v = f(space(t))
        st.tell(t, v)
        best = min(best, v)
        curve.append(best)
    return curve, time.process_time() - t0


def quality(args):
    """Seeds run in parallel, one process per core (as on our side); `seconds` is CPU time
    summed over the seeds."""
    import multiprocessing

    out = {}
    kinds = []
    for kind in args.samplers.split(","):
        if available(kind):
            kinds.append(kind)
        else:
            out[f"{kind}/unavailable"] = True
    # Spawned, not forked: a forked child of a process that has started PyTorch's threads
    # (GPSampler's availability check) can hang.
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for kind in kinds:
            seeds = min(args.seeds, args.gp_seeds) if kind == "gp" else args.seeds
            for name in args.problems.split(","):
                runs = pool.map(one_run, [(kind, name, seed, args.trials) for seed in range(seeds)])
                cpu = sum(r[1] for r in runs)
                out[f"{kind}/{name}"] = {"curves": [r[0] for r in runs], "seconds": cpu}
                print(f"optuna {kind} {name}: {cpu:.1f} s CPU", file=sys.stderr, flush=True)
    # Two objectives for NSGA-II and MOTPE: ZDT1 on 3 variables, hypervolume of the front.
    for kind in [] if args.no_mo else ["nsga2", "tpe", "random"]:
        hvs = []
        for seed in range(args.seeds):
            st = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler(kind, seed))
            pts, hv = [], []
            for i in range(args.trials):
                t = st.ask()
                x = [t.suggest_float(k, 0, 1) for k in ("x", "y", "z")]
                g = 1 + 9 * (x[1] + x[2]) / 2
                v = [x[0], g * (1 - math.sqrt(x[0] / g))]
                st.tell(t, v)
                pts.append(v)
                if i + 1 in (50, 100, 200):
                    hv.append(hypervolume2(pts, (1.1, 10.0)))
            hvs.append(hv)
        out[f"mo-{kind}"] = {"hv": hvs}
    json.dump(out, sys.stdout)


def one_parallel_run(task):
    """One study with `workers` trials in flight: ask that many, then tell the oldest and ask
    one more; the best-so-far curve in the order values are told."""
    kind, name, seed, trials, workers = task
    space, f = PROBLEMS[name]
    st = optuna.create_study(sampler=sampler(kind, seed))
    flying, best, curve, asked = [], math.inf, [], 0
    while len(curve) < trials:
        while len(flying) < workers and asked < trials:
            t = st.ask()
            flying.append((t, f(space(t))))
            asked += 1
        t, v = flying.pop(0)
        st.tell(t, v)
        best = min(best, v)
        curve.append(best)
    return curve


def parallel(args):
    import multiprocessing

    out = {}
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for kind in args.samplers.split(","):
            for name in args.problems.split(","):
                for w in [int(x) for x in args.workers.split(",")]:
                    tasks = [(kind, name, seed, args.trials, w) for seed in range(args.seeds)]
                    out[f"{kind}/{name}/{w}"] = {"curves": pool.map(one_parallel_run, tasks)}
                    print(f"optuna parallel {kind} {name} w={w}", file=sys.stderr, flush=True)
    json.dump(out, sys.stdout)


def system(args):
    """Optuna's default study in memory: `optimize` for `trials` Branin trials, wall time (the
    best of three), with the default TPE and with the random sampler."""
    out = {"version": optuna.__version__}
    space, f = PROBLEMS["branin"]
    for kind in ["tpe", "random"]:
        best = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            st = optuna.create_study(sampler=sampler(kind, 1))
            st.optimize(lambda t: f(space(t)), n_trials=args.trials)
            best = min(best, time.perf_counter() - t0)
        out[kind] = best
        print(f"optuna system {kind}: {best:.2f} s", file=sys.stderr, flush=True)
    json.dump(out, sys.stdout)


def hypervolume2(pts, ref):
    pts = sorted(p for p in pts if p[0] < ref[0] and p[1] < ref[1])
    vol, best_y = 0.0, ref[1]
    for x, y in pts:
        if y < best_y:
            vol += (ref[0] - x) * (best_y - y)
            best_y = y
    return vol


def cost(args):
    import random as pyrandom

    out = {}
    dists = {f"x{i}": optuna.distributions.FloatDistribution(-5, 5) for i in range(10)}
    for kind in args.samplers.split(","):
        if not available(kind):
            continue
        for n in [int(x) for x in args.sizes.split(",")]:
            if kind == "gp" and n > 1000:
                continue
            st = optuna.create_study(sampler=sampler(kind, 0))
            rng = pyrandom.Random(0)
            trials = []
            for _ in range(n):
                p = {k: rng.uniform(-5, 5) for k in dists}
                trials.append(optuna.trial.create_trial(params=p, distributions=dists, value=sum(v * v for v in p.values())))
            st.add_trials(trials)
            k = 20 if n <= 1000 else 3
            if kind == "gp":
                k = 3
            # One untimed ask + tell first (caches), as on our side.
            t = st.ask(dists)
            st.tell(t, sum(v * v for v in t.params.values()))
            t0 = time.perf_counter()
            for _ in range(k):
                t = st.ask(dists)
                st.tell(t, sum(v * v for v in t.params.values()))
            out[f"{kind}/{n}"] = (time.perf_counter() - t0) / k
            print(f"optuna cost {kind} {n}: {out[f'{kind}/{n}'] * 1e3:.2f} ms", file=sys.stderr, flush=True)
    json.dump(out, sys.stdout)


def curve_value(f, x0, t, steps):
    return f + (1 - f) * math.exp(-5.0 * t / steps) * (1 + 0.1 * math.sin(7.3 * t + 13 * x0))


PRUNERS = ["none", "median", "asha", "hyperband"]


def make_pruner(name, steps):
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=steps, reduction_factor=3)


def one_pruning(task):
    """One pruned study: steps used, best complete value, and the random points it judged."""
    name, seed, trials, steps = task
    seen = []
    st = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), pruner=make_pruner(name, steps))
    used, best = 0, math.inf
    for _ in range(trials):
        t = st.ask()
        p = space_unit(6)(t)
        seen.append(p)
        f = hartmann6(p)
        pruned = False
        for s in range(1, steps + 1):
            used += 1
            t.report(curve_value(f, p["x0"], s, steps), s)
            if t.should_prune():
                pruned = True
                break
        if pruned:
            st.tell(t, state=optuna.trial.TrialState.PRUNED)
        else:
            st.tell(t, f)
            best = min(best, f)
    return used, best, seen


def pruning(args):
    """Seeds run in parallel, one process per core."""
    import multiprocessing

    out = {}
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for name in PRUNERS:
            runs = pool.map(one_pruning, [(name, seed, args.trials, args.steps) for seed in range(args.seeds)])
            out[name] = {"steps": [r[0] for r in runs], "best": [r[1] for r in runs]}
            # The random trials are the same for every pruner (the sampler ignores results):
            # hand them over so that both sides judge identical trials.
            if name == "none":
                out["params"] = [r[2] for r in runs]
            print(f"optuna pruning {name}: {args.seeds} seeds", file=sys.stderr, flush=True)
    json.dump(out, sys.stdout)


def proposals(args):
    """TPE's suggestions on one fixed history: `trials` random Styblinski-Tang-10 points (the
    history, handed to our side too), then `asks` suggestions per seed without telling any
    (the constant liar off, so running trials are not evidence), so every suggestion is an
    independent draw from the sampler given that history. Both sides: default (multivariate)
    TPE."""
    import random as pyrandom

    rng = pyrandom.Random(0)
    dists = {f"x{i}": optuna.distributions.FloatDistribution(-5, 5) for i in range(10)}
    history = []
    for _ in range(args.trials):
        p = {k: rng.uniform(-5, 5) for k in dists}
        history.append({"params": p, "value": styblinski_tang(p)})
    out = []
    for seed in range(args.seeds):
        st = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=False))
        st.add_trials(
            [optuna.trial.create_trial(params=h["params"], distributions=dists, value=h["value"]) for h in history]
        )
        for _ in range(args.asks):
            t = st.ask(dists)
            out.append([t.params[f"x{i}"] for i in range(10)])
    json.dump({"history": history, "proposals": out}, sys.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["quality", "cost", "pruning", "proposals", "parallel", "system", "version"])
    ap.add_argument("--asks", type=int, default=100)
    ap.add_argument("--gp-seeds", type=int, default=10)
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=27)
    ap.add_argument("--samplers", default="tpe,tpe-mv,cmaes,gp,qmc,random")
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--no-mo", action="store_true", help="quality: leave out the two-objective runs")
    ap.add_argument("--workers", default="1,4,16", help="parallel: trials in flight")
    args = ap.parse_args()
    if args.mode == "version":
        json.dump({"optuna": optuna.__version__}, sys.stdout)
    else:
        {"quality": quality, "cost": cost, "pruning": pruning, "proposals": proposals, "parallel": parallel, "system": system}[
            args.mode
        ](args)


if __name__ == "__main__":
    main()
