"""Reference values of Optuna 5.0.0's multivariate Parzen estimator, for our unit test
(scheduler/src/search/tpe/parzen_optuna5.json): the log density of a few fixed mixtures at
fixed points. Regenerate with the pinned venv:

    .venv-optuna/bin/python bench/optuna/parzen_vectors.py > scheduler/src/search/tpe/parzen_optuna5.json
"""
import json

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.sampler import default_weights

# Equal values: numpy's default argsort is not stable (which of two equal observations comes
# first decides which kernel gets which bandwidth, per dimension); ours keeps them in
# observation order. Stable sorting here changes nothing else in Optuna's estimator.
_argsort = np.argsort
np.argsort = lambda a, *args, **kw: _argsort(a, kind="stable")

params = _ParzenEstimatorParameters(
    prior_weight=1.0,
    consider_magic_clip=True,
    consider_endpoints=False,
    weights=default_weights,
    multivariate=True,
)

rng = np.random.RandomState(7)
cases = []
spaces = {
    "cont2": {"a": FloatDistribution(-5, 10), "b": FloatDistribution(0, 1)},
    "log_int_cat": {
        "lr": FloatDistribution(1e-5, 1.0, log=True),
        "n": IntDistribution(0, 10),
        "k": CategoricalDistribution(["x", "y", "z", "w"]),
    },
    "step_logint": {"d": FloatDistribution(0.0, 0.7, step=0.05), "w": IntDistribution(16, 1024, log=True)},
    "one": {"a": FloatDistribution(-5, 10)},
}


def draw(dist, size):
    if isinstance(dist, CategoricalDistribution):
        return rng.randint(0, len(dist.choices), size).astype(float)
    if isinstance(dist, IntDistribution):
        if dist.log:
            return np.round(np.exp(rng.uniform(np.log(dist.low), np.log(dist.high), size)))
        return rng.randint(dist.low, dist.high + 1, size).astype(float)
    if dist.step is not None:
        k = int(round((dist.high - dist.low) / dist.step))
        return dist.low + rng.randint(0, k + 1, size) * dist.step
    if dist.log:
        return np.exp(rng.uniform(np.log(dist.low), np.log(dist.high), size))
    return rng.uniform(dist.low, dist.high, size)


for name, space in spaces.items():
    for n in [0, 1, 2, 5, 30]:
        obs = {p: draw(d, n) for p, d in space.items()}
        if n == 5:
            # Duplicates: bandwidths of zero gaps are clipped.
            for p in obs:
                obs[p][1] = obs[p][0]
        pe = _ParzenEstimator(obs, space, params)
        pts = {p: draw(d, 12) for p, d in space.items()}
        lp = pe.log_pdf(pts)
        cases.append(
            {
                "space": name,
                "obs": {p: v.tolist() for p, v in obs.items()},
                "points": {p: v.tolist() for p, v in pts.items()},
                "log_pdf": lp.tolist(),
            }
        )

print(json.dumps({"optuna": optuna.__version__, "cases": cases}))
