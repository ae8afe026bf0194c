"""Reliability: determinism, thread safety, persistence, and properties of
the probabilities that hold for any data."""

import hashlib
import io
import pickle
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from skbackprop import BackpropMLPClassifier

from helpers import quiet_fit

SOLVERS = ["sgd", "adam", "lbfgs"]


def weights(est):
    return est.coefs_ + est.intercepts_


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert len(wa) == len(wb)
    for p, q in zip(wa, wb):
        assert p.dtype == q.dtype and p.shape == q.shape
        assert np.array_equal(p, q), "weights differ"


def digest(est):
    h = hashlib.sha256()
    for p in weights(est):
        h.update(np.ascontiguousarray(p).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def data3():
    X, y = make_classification(
        n_samples=150, n_features=6, n_informative=4, n_redundant=0, n_classes=3,
        random_state=0,
    )
    return StandardScaler().fit_transform(X), y


def model(solver, **params):
    defaults = dict(
        hidden_layer_sizes=(8, 5), solver=solver, max_iter=25, random_state=0,
        learning_rate_init=0.01, batch_size=32,
    )
    defaults.update(params)
    return BackpropMLPClassifier(**defaults)


# ------------------------------------------------------------- determinism


@pytest.mark.parametrize(
    "solver, params",
    [
        ("sgd", {}),
        ("adam", {}),
        ("lbfgs", {}),
        ("sgd", {"learning_rate": "adaptive", "nesterovs_momentum": False}),
        ("adam", {"early_stopping": True, "validation_fraction": 0.2}),
    ],
    ids=["sgd", "adam", "lbfgs", "sgd-adaptive", "adam-early-stopping"],
)
def test_same_random_state_gives_bit_identical_weights(data3, solver, params):
    X, y = data3
    fits = [quiet_fit(model(solver, **params), X, y) for _ in range(3)]
    for other in fits[1:]:
        assert_same_weights(fits[0], other)
        assert other.loss_curve_ == fits[0].loss_curve_
        assert other.n_iter_ == fits[0].n_iter_
        assert_array_equal(other.predict_proba(X), fits[0].predict_proba(X))
    # and a different seed really gives different weights (the seed is used)
    other_seed = quiet_fit(model(solver, random_state=1, **params), X, y)
    assert not np.array_equal(other_seed.coefs_[0], fits[0].coefs_[0])


def test_random_state_instance_with_same_seed_is_also_reproducible(data3):
    X, y = data3
    a = quiet_fit(model("adam", random_state=np.random.RandomState(3)), X, y)
    b = quiet_fit(model("adam", random_state=np.random.RandomState(3)), X, y)
    assert_same_weights(a, b)


_SUBPROCESS_FIT = """
import hashlib, sys, warnings
import numpy as np
from sklearn.datasets import make_classification
from sklearn.preprocessing import StandardScaler
from skbackprop import BackpropMLPClassifier
X, y = make_classification(n_samples=150, n_features=6, n_informative=4, n_redundant=0,
                           n_classes=3, random_state=0)
X = StandardScaler().fit_transform(X)
h = {}
for solver in ["sgd", "adam", "lbfgs"]:
    est = BackpropMLPClassifier(hidden_layer_sizes=(8, 5), solver=solver, max_iter=25,
                                random_state=0, learning_rate_init=0.01, batch_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    d = hashlib.sha256()
    for p in est.coefs_ + est.intercepts_:
        d.update(np.ascontiguousarray(p).tobytes())
    print(solver, d.hexdigest())
"""


def test_same_random_state_is_bit_identical_across_processes(data3):
    """A fresh interpreter (other hash seed) reproduces the same weights."""
    X, y = data3
    expected = {s: digest(quiet_fit(model(s), X, y)) for s in SOLVERS}
    out = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_FIT], capture_output=True, text=True, check=True,
        env={**__import__("os").environ, "PYTHONHASHSEED": "12345"},
    ).stdout
    got = dict(line.split() for line in out.strip().splitlines())
    assert got == expected


@pytest.fixture(scope="module")
def grid_runs(data3):
    X, y = data3
    base = model("adam", hidden_layer_sizes=(6,), max_iter=15)
    grid = {"learning_rate_init": [1e-3, 1e-2, 5e-2]}
    runs = []
    for _ in range(2):
        search = GridSearchCV(
            base, grid, cv=StratifiedKFold(3), n_jobs=2, error_score="raise"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(X, y)
        runs.append(search)
    return base, runs


def test_grid_search_with_two_jobs_is_reproducible(grid_runs):
    _, (first, second) = grid_runs
    keys = [k for k in first.cv_results_ if k.startswith("split") or k.endswith("test_score")]
    assert keys, "no test scores in cv_results_"
    for key in keys:
        assert_array_equal(first.cv_results_[key], second.cv_results_[key])
    assert np.isfinite(first.cv_results_["mean_test_score"]).all()
    assert first.best_params_ == second.best_params_
    assert_same_weights(first.best_estimator_, second.best_estimator_)


def test_grid_search_best_estimator_equals_a_direct_fit(data3, grid_runs):
    X, y = data3
    base, (search, _) = grid_runs
    direct = quiet_fit(clone(base).set_params(**search.best_params_), X, y)
    assert_same_weights(search.best_estimator_, direct)
    assert_array_equal(search.best_estimator_.predict_proba(X), direct.predict_proba(X))


# ----------------------------------------------------------- thread safety


@pytest.fixture(scope="module")
def big_fitted():
    X, y = make_classification(
        n_samples=3000, n_features=12, n_informative=6, n_classes=4, random_state=1
    )
    X = StandardScaler().fit_transform(X)
    est = quiet_fit(
        BackpropMLPClassifier((32, 16), max_iter=5, random_state=0, learning_rate_init=0.01),
        X, y,
    )
    return est, X


def test_concurrent_predict_proba_equals_serial(big_fitted):
    est, X = big_fitted
    rng = np.random.RandomState(0)
    edges = np.sort(rng.choice(np.arange(1, len(X)), size=40, replace=False))
    slices = [slice(a, b) for a, b in zip(np.r_[0, edges], np.r_[edges, len(X)])]
    slices += [slice(None)] * 8 + [slice(i, i + 1) for i in range(0, len(X), 500)]
    serial = [est.predict_proba(X[s]) for s in slices]
    serial_labels = [est.predict(X[s]) for s in slices]
    coefs_before = [W.copy() for W in weights(est)]

    tasks = [i for _ in range(6) for i in rng.permutation(len(slices))]

    def work(i):
        return i, est.predict_proba(X[slices[i]]), est.predict(X[slices[i]])

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, tasks))

    assert len(results) == len(tasks)
    for i, proba, labels in results:
        assert proba.dtype == serial[i].dtype
        assert np.array_equal(proba, serial[i]), f"slice {slices[i]} differs under threads"
        assert_array_equal(labels, serial_labels[i])
    for a, b in zip(weights(est), coefs_before):
        assert np.array_equal(a, b)


def test_concurrent_predict_proba_on_same_dataframe(big_fitted):
    """Same input object from every thread, with feature-name checks."""
    _, X = big_fitted
    names = [f"x{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=names)
    est = quiet_fit(BackpropMLPClassifier((16,), max_iter=3, random_state=0), df, np.arange(len(X)) % 3)
    expected = est.predict_proba(df)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: est.predict_proba(df), range(64)))
    for proba in results:
        assert np.array_equal(proba, expected)


# -------------------------------------------------------------- persistence


def pickle_round_trip(est):
    return pickle.loads(pickle.dumps(est, protocol=pickle.HIGHEST_PROTOCOL))


def joblib_round_trip(est):
    buffer = io.BytesIO()
    joblib.dump(est, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


def joblib_file_round_trip(est, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(est, path, compress=3)
    return joblib.load(path)


def fitted_attributes(est):
    return {k: v for k, v in vars(est).items() if k.endswith("_") and not k.startswith("_")}


@pytest.mark.parametrize("round_trip", ["pickle", "joblib", "joblib-file"])
@pytest.mark.parametrize("labels", ["int", "str"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_round_trip_gives_identical_predictions(data3, tmp_path, round_trip, labels, solver):
    X, y = data3
    if labels == "str":
        y = np.array(["setosa", "versicolor", "virginica"])[y]
    est = quiet_fit(model(solver), X, y)
    if round_trip == "pickle":
        loaded = pickle_round_trip(est)
    elif round_trip == "joblib":
        loaded = joblib_round_trip(est)
    else:
        loaded = joblib_file_round_trip(est, tmp_path)

    assert type(loaded) is BackpropMLPClassifier
    assert loaded.get_params() == est.get_params()
    assert fitted_attributes(loaded).keys() == fitted_attributes(est).keys()
    assert_array_equal(loaded.classes_, est.classes_)
    assert loaded.classes_.dtype == est.classes_.dtype
    assert_same_weights(loaded, est)
    assert loaded.loss_curve_ == est.loss_curve_
    proba, loaded_proba = est.predict_proba(X), loaded.predict_proba(X)
    assert np.array_equal(loaded_proba, proba)
    assert np.array_equal(loaded.predict_log_proba(X), est.predict_log_proba(X))
    pred = loaded.predict(X)
    assert pred.dtype == est.predict(X).dtype
    assert_array_equal(pred, est.predict(X))
    assert loaded.score(X, y) == est.score(X, y)


@pytest.mark.parametrize("round_trip", ["pickle", "joblib"])
@pytest.mark.parametrize(
    "solver, params",
    [("sgd", {}), ("sgd", {"learning_rate": "invscaling", "nesterovs_momentum": False}),
     ("adam", {})],
    ids=["sgd", "sgd-invscaling", "adam"],
)
def test_unpickled_estimator_continues_partial_fit_identically(data3, round_trip, solver, params):
    """The optimizer state (momentum velocities / Adam moments, the schedule's
    learning rate, samples seen) survives the round trip: continuing training
    on the copy gives bit-identical weights to continuing on the original."""
    X, y = data3
    classes = np.unique(y)
    est = model(solver, **params)
    for chunk in np.array_split(np.arange(len(X)), 3):
        est.partial_fit(X[chunk], y[chunk], classes=classes)
    copy = pickle_round_trip(est) if round_trip == "pickle" else joblib_round_trip(est)
    assert_same_weights(copy, est)

    fresh_optimizer = clone(est)  # a control: same weights, but a fresh optimizer
    fresh_optimizer.partial_fit(X[:40], y[:40], classes=classes)  # creates the attributes
    fresh_optimizer.coefs_ = [W.copy() for W in est.coefs_]
    fresh_optimizer.intercepts_ = [b.copy() for b in est.intercepts_]

    for _ in range(4):
        est.partial_fit(X, y)
        copy.partial_fit(X, y)
    assert_same_weights(copy, est)
    assert copy.t_ == est.t_
    assert copy.loss_curve_ == est.loss_curve_
    assert np.array_equal(copy.predict_proba(X), est.predict_proba(X))

    # the equality above is meaningful only if the optimizer state matters
    for _ in range(4):
        fresh_optimizer.partial_fit(X, y)
    assert not all(np.array_equal(a, b) for a, b in zip(weights(fresh_optimizer), weights(est)))


def test_unpickled_warm_start_fit_continues_identically(data3):
    X, y = data3
    est = quiet_fit(model("sgd", warm_start=True, max_iter=5), X, y)
    copy = pickle_round_trip(est)
    quiet_fit(est, X, y)
    quiet_fit(copy, X, y)
    assert_same_weights(copy, est)
    assert copy.loss_curve_ == est.loss_curve_


# ------------------------------------------------------ property-based tests


@st.composite
def classification_problems(draw):
    n_samples = draw(st.integers(5, 40))
    n_features = draw(st.integers(1, 6))
    n_classes = draw(st.integers(2, 4))
    X = draw(
        arrays(
            np.float64, (n_samples, n_features),
            elements=st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=64),
        )
    )
    codes = draw(
        st.lists(st.integers(0, n_classes - 1), min_size=n_samples, max_size=n_samples)
    )
    codes = np.array(codes)
    assume(len(np.unique(codes)) >= 2)
    # labels that are not 0..k-1, so that an index is never mistaken for a label
    labels = np.array([-3, 7, 10, 42])[codes]
    hidden = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=2)))
    params = dict(
        hidden_layer_sizes=hidden,
        activation=draw(st.sampled_from(["identity", "logistic", "tanh", "relu"])),
        solver=draw(st.sampled_from(SOLVERS)),
        alpha=draw(st.sampled_from([0.0, 1e-4, 1.0])),
        learning_rate_init=draw(st.sampled_from([1e-3, 1e-2, 0.1])),
        max_iter=draw(st.integers(1, 8)),
        random_state=draw(st.integers(0, 2**16)),
    )
    scale = draw(st.sampled_from([1.0, 100.0]))  # 100: saturated outputs
    return X, labels, params, scale


@settings(
    max_examples=25,
    deadline=None,
    database=None,  # write no .hypothesis directory into the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(problem=classification_problems())
def test_probabilities_are_consistent_for_any_data(problem):
    X, y, params, scale = problem
    est = BackpropMLPClassifier(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert_array_equal(est.classes_, np.unique(y))

    X_eval = X * scale
    try:
        proba = est.predict_proba(X_eval)
    except ValueError as exc:  # allowed, but only with a message that says why
        assert "non-finite" in str(exc)
        return
    n_classes = len(est.classes_)
    assert proba.shape == (len(X), n_classes)
    assert proba.dtype == np.float64
    assert not np.isnan(proba).any()
    assert np.all((proba >= 0) & (proba <= 1))
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12, atol=0)

    pred = est.predict(X_eval)
    assert_array_equal(pred, est.classes_[np.argmax(proba, axis=1)])
    assert set(pred) <= set(est.classes_)

    log_proba = est.predict_log_proba(X_eval)
    assert log_proba.shape == proba.shape
    assert not np.isnan(log_proba).any()
    assert np.all(log_proba <= 0)
    assert_allclose(np.exp(log_proba), proba, rtol=1e-12, atol=1e-300)
    positive = proba > 0
    assert_array_equal(log_proba[positive], np.log(proba[positive]))
    assert np.all(np.isneginf(log_proba[~positive]))
