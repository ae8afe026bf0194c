"""Multilabel targets, sparse input, float32, memory use, and Ctrl-C."""

import copy
import os
import signal
import threading
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.neural_network import MLPClassifier

import skbackprop._estimator as estimator_module
from skbackprop import BackpropMLPClassifier, check_gradients
from helpers import assert_same_weights, quiet_fit


@pytest.fixture(scope="module")
def multilabel():
    X, Y = make_multilabel_classification(n_samples=120, n_features=8, n_classes=4,
                                          random_state=0)
    return (X - X.mean(axis=0)) / X.std(axis=0), Y


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=150, n_features=10, n_informative=6, n_classes=3,
                               random_state=0)
    return X, y


# ----------------------------------------------------------------- multilabel


def test_multilabel_has_one_logistic_unit_per_label(multilabel):
    X, Y = multilabel
    clf = quiet_fit(BackpropMLPClassifier((10,), learning_rate_init=0.01, random_state=0), X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 4
    assert_array_equal(clf.classes_, [0, 1, 2, 3])
    proba = clf.predict_proba(X)
    assert proba.shape == (120, 4)
    assert np.all((proba >= 0) & (proba <= 1))
    assert not np.allclose(proba.sum(axis=1), 1)  # labels are independent
    pred = clf.predict(X)
    assert pred.shape == Y.shape
    assert_array_equal(pred, (proba > 0.5).astype(int))
    assert clf.score(X, Y) > 0.5  # subset accuracy


def test_multilabel_matches_mlpclassifier(multilabel):
    X, Y = multilabel
    ours = quiet_fit(BackpropMLPClassifier((6,), max_iter=10, random_state=0), X, Y)
    theirs = quiet_fit(MLPClassifier((6,), max_iter=10, random_state=0), X, Y)
    assert_same_weights(ours, theirs)
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert_array_equal(ours.predict(X), theirs.predict(X))


def test_multilabel_loss_is_summed_over_labels_and_averaged_over_samples(multilabel):
    X, Y = multilabel
    clf = quiet_fit(BackpropMLPClassifier((5,), alpha=0.0, max_iter=3, random_state=0), X, Y)
    P = clf.predict_proba(X)
    expected = -(Y * np.log(P) + (1 - Y) * np.log(1 - P)).sum(axis=1).mean()
    assert clf.loss_gradient(X, Y)[0] == pytest.approx(expected, rel=1e-10)
    assert check_gradients(clf, X[:30], Y[:30]) < 1e-4


def test_multilabel_partial_fit_and_early_stopping(multilabel):
    X, Y = multilabel
    clf = BackpropMLPClassifier((5,), random_state=0)
    clf.partial_fit(X, Y, classes=np.arange(4))
    clf.partial_fit(X, Y)
    assert len(clf.loss_curve_) == 2
    with pytest.raises(ValueError, match="classes must be np.arange"):
        BackpropMLPClassifier().partial_fit(X, Y, classes=[0, 1])
    for wrong in (["a", "b", "c", "d"], [1, 2, 3, 4]):  # the right length is not enough
        with pytest.raises(ValueError, match="classes must be np.arange"):
            BackpropMLPClassifier().partial_fit(X, Y, classes=wrong)
    floats = BackpropMLPClassifier((5,), random_state=0).partial_fit(X, Y, classes=[0., 1, 2, 3])
    assert_array_equal(floats.classes_, np.arange(4))
    assert floats.classes_.dtype.kind == "i"  # as fit's
    stopped = quiet_fit(BackpropMLPClassifier((5,), early_stopping=True, random_state=0), X, Y)
    assert len(stopped.validation_scores_) == stopped.n_iter_


@pytest.mark.parametrize("container", [sparse.csr_matrix, sparse.csr_array, sparse.csc_matrix])
def test_sparse_multilabel_y_trains_as_dense_and_predicts_sparse(multilabel, container):
    """A sparse indicator matrix (as from MultiLabelBinarizer(sparse_output=True))
    trains exactly as the dense one; like MLPClassifier, predict then answers
    with a sparse matrix."""
    X, Y = multilabel
    dense = quiet_fit(BackpropMLPClassifier((6,), max_iter=10, random_state=0), X, Y)
    ours = quiet_fit(BackpropMLPClassifier((6,), max_iter=10, random_state=0), X, container(Y))
    assert_same_weights(ours, dense, rtol=0)
    assert ours.loss_ == dense.loss_
    pred = ours.predict(X)
    theirs = quiet_fit(MLPClassifier((6,), max_iter=10, random_state=0), X, container(Y))
    assert sparse.issparse(pred) and type(pred) is type(theirs.predict(X))
    assert_array_equal(pred.toarray(), dense.predict(X))
    assert ours.score(X, container(Y)) == dense.score(X, Y)
    lbfgs = quiet_fit(BackpropMLPClassifier((6,), solver="lbfgs", max_iter=10, random_state=0),
                      X, container(Y))
    lbfgs_dense = quiet_fit(BackpropMLPClassifier((6,), solver="lbfgs", max_iter=10,
                                                  random_state=0), X, Y)
    assert_same_weights(lbfgs, lbfgs_dense, rtol=0)
    # a first partial_fit call sets up the labels as fit does, and as MLPClassifier's does
    streamed = BackpropMLPClassifier((6,), random_state=0).partial_fit(
        X, container(Y), classes=np.arange(Y.shape[1]))
    theirs = MLPClassifier((6,), random_state=0).partial_fit(
        X, container(Y), classes=np.arange(Y.shape[1]))
    assert type(streamed.predict(X)) is type(theirs.predict(X)) is type(pred)
    dense_stream = BackpropMLPClassifier((6,), random_state=0).partial_fit(
        X, Y, classes=np.arange(Y.shape[1]))
    assert isinstance(dense_stream.predict(X), np.ndarray)


def test_multiclass_multioutput_targets_are_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="multilabel indicator matrix"):
        BackpropMLPClassifier().fit(X, np.column_stack([y, y]))


# --------------------------------------------------------------------- sparse


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize(
    "params",
    [dict(solver="adam"), dict(solver="sgd", early_stopping=True), dict(solver="lbfgs"),
     dict(solver="sgd", batch_size=150, shuffle=False)],
    ids=["adam", "sgd-early-stopping", "lbfgs", "full-batch"],
)
def test_sparse_training_equals_dense_training(data, fmt, params):
    X, y = data
    X = np.where(np.abs(X) < 0.7, 0.0, X)  # about half zeros
    X_sparse = sparse.csr_matrix(X).asformat(fmt)
    common = dict(hidden_layer_sizes=(8,), max_iter=15, random_state=0)
    dense = quiet_fit(BackpropMLPClassifier(**common, **params), X, y)
    sparse_fit = quiet_fit(BackpropMLPClassifier(**common, **params), X_sparse, y)
    assert_same_weights(dense, sparse_fit, rtol=1e-8, atol=1e-10)
    assert_allclose(sparse_fit.predict_proba(X_sparse), dense.predict_proba(X), rtol=1e-8)
    assert_array_equal(dense.predict(X_sparse), dense.predict(X))


def test_sparse_arrays_work_too(data):
    X, y = data
    clf = quiet_fit(BackpropMLPClassifier((8,), max_iter=5, random_state=0),
                    sparse.csr_array(X), y)
    assert clf.predict(sparse.csc_array(X)).shape == (150,)


def test_sparse_x_is_never_densified(data, monkeypatch):
    X, y = data

    def refuse(*args, **kwargs):
        raise AssertionError("X was densified")

    X_sparse = sparse.csr_matrix(X)
    monkeypatch.setattr(type(X_sparse), "toarray", refuse)
    monkeypatch.setattr(type(X_sparse), "todense", refuse)
    clf = quiet_fit(BackpropMLPClassifier((8,), max_iter=3, random_state=0), X_sparse, y)
    clf.predict_proba(X_sparse)


# -------------------------------------------------------------------- float32


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_float32_end_to_end(data, solver):
    X, y = data
    X32 = X.astype(np.float32)
    clf = quiet_fit(BackpropMLPClassifier((8,), solver=solver, max_iter=20, random_state=0),
                    X32, y)
    assert all(p.dtype == np.float32 for p in clf.coefs_ + clf.intercepts_)
    assert clf.predict_proba(X32).dtype == np.float32
    _, coef_grads, intercept_grads = clf.loss_gradient(X32, y)
    assert all(g.dtype == np.float32 for g in coef_grads + intercept_grads)
    reference = quiet_fit(BackpropMLPClassifier((8,), solver=solver, max_iter=20, random_state=0),
                          X, y)
    assert_allclose(clf.predict_proba(X32), reference.predict_proba(X), atol=1e-3)
    # the gradient check runs in float64 whatever the model's dtype
    assert check_gradients(clf, X[:40], y[:40]) < 1e-3


@pytest.mark.parametrize("model_dtype, chunk_dtype", [(np.float64, np.float32),
                                                      (np.float32, np.float64)])
@pytest.mark.parametrize("how", ["partial_fit", "warm_start"])
def test_training_goes_on_in_the_dtype_of_the_model(data, model_dtype, chunk_dtype, how):
    """As MLPClassifier's: a float32 chunk does not turn a float64 model into
    float32 (and lose its precision for good), nor a float64 chunk a float32
    model into float64. The chunk is converted to the model's dtype."""
    X, y = data
    clf = BackpropMLPClassifier((5,), max_iter=3, random_state=0, warm_start=how == "warm_start")
    quiet_fit(clf, X.astype(model_dtype), y)
    converted = copy.deepcopy(clf)
    if how == "partial_fit":
        clf.partial_fit(X.astype(chunk_dtype), y)
        converted.partial_fit(X.astype(chunk_dtype).astype(model_dtype), y)
    else:
        quiet_fit(clf, X.astype(chunk_dtype), y)
        quiet_fit(converted, X.astype(chunk_dtype).astype(model_dtype), y)
    assert all(a.dtype == model_dtype for a in clf.coefs_ + clf.intercepts_)
    assert_same_weights(clf, converted, rtol=0)


def test_a_chunk_finite_in_float64_but_not_in_a_float32_model_is_refused(data):
    """Converted to the model's dtype before the check for finite values: a
    value past float32's range is refused, not trained on as inf."""
    X, y = data
    clf = quiet_fit(BackpropMLPClassifier((5,), max_iter=3, random_state=0),
                    X.astype(np.float32), y)
    before = copy.deepcopy(clf)
    big = X.copy()
    big[0, 0] = 1e39
    for call in (lambda: clf.partial_fit(big, y), lambda: clf.loss_gradient(big, y)):
        with pytest.raises(ValueError, match="infinity or a value too large"):
            call()
    assert_same_weights(clf, before, rtol=0)


@pytest.mark.parametrize("dtype", [np.int64, np.float16, bool])
def test_other_dtypes_train_in_float64(data, dtype):
    X, y = data
    clf = quiet_fit(BackpropMLPClassifier((4,), max_iter=2, random_state=0),
                    (X > 0).astype(dtype), y)
    assert clf.coefs_[0].dtype == np.float64


# --------------------------------------------------------------------- memory


def peak_extra_memory(fit):
    tracemalloc.start()
    try:
        fit()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "params",
    [dict(batch_size=200), dict(batch_size=200, early_stopping=True),
     dict(solver="sgd", batch_size=20000, shuffle=True)],
    ids=["shuffled-minibatches", "early-stopping", "full-batch"],
)
def test_fit_needs_at_most_one_extra_copy_of_x(dtype, params):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(20000, 300)).astype(dtype)  # 48 MB in float64
    y = rng.randint(0, 2, 20000)
    clf = BackpropMLPClassifier((4,), max_iter=3, random_state=0, **params)
    peak = peak_extra_memory(lambda: quiet_fit(clf, X, y))
    assert peak < 1.25 * X.nbytes, f"peak {peak / X.nbytes:.2f} x X"
    assert clf.coefs_[0].dtype == dtype


# -------------------------------------------------------------------- Ctrl-C


def interrupt_on_call(monkeypatch, n_calls):
    """Make the training objective raise KeyboardInterrupt on its n-th call."""
    real_objective_factory = estimator_module.BackpropMLPClassifier._objective
    calls = {"n": 0}

    def objective_factory(self, X, net, *threading):
        real_objective = real_objective_factory(self, X, net, *threading)

        def objective(*args):
            calls["n"] += 1
            if calls["n"] == n_calls:
                raise KeyboardInterrupt
            return real_objective(*args)

        return objective

    monkeypatch.setattr(estimator_module.BackpropMLPClassifier, "_objective", objective_factory)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_an_interrupt_keeps_the_best_epoch_so_far(data, monkeypatch, solver):
    X, y = data
    params = dict(hidden_layer_sizes=(8,), solver=solver, batch_size=50, max_iter=100,
                  random_state=0)
    interrupt_on_call(monkeypatch, 3 * 5 + 2)  # 3 batches per epoch: in the middle of epoch 6
    with pytest.warns(UserWarning, match="interrupted"):
        clf = BackpropMLPClassifier(**params).fit(X, y)
    monkeypatch.undo()
    assert clf.n_iter_ == 5 == len(clf.loss_curve_)
    best_epoch = int(np.argmin(clf.loss_curve_)) + 1
    reference = quiet_fit(BackpropMLPClassifier(**{**params, "max_iter": best_epoch}), X, y)
    assert_same_weights(clf, reference, rtol=1e-12)
    assert clf.predict(X).shape == (150,)


def test_an_interrupted_lbfgs_keeps_its_best_iterate(data, monkeypatch):
    X, y = data
    interrupt_on_call(monkeypatch, 12)
    with pytest.warns(UserWarning, match="interrupted"):
        clf = BackpropMLPClassifier((8,), solver="lbfgs", random_state=0).fit(X, y)
    monkeypatch.undo()
    assert 1 <= clf.n_iter_ < 12
    assert clf.loss_ == pytest.approx(min(clf.loss_curve_))


def test_ctrl_c_during_a_long_fit_stops_it_cleanly(data):
    """A real SIGINT, as a notebook's interrupt button sends it."""
    X, y = data
    X = np.tile(X, (20, 1))
    y = np.tile(y, 20)
    timer = threading.Timer(1.0, os.kill, args=(os.getpid(), signal.SIGINT))
    clf = BackpropMLPClassifier((50,), max_iter=100000, tol=0.0, n_iter_no_change=np.inf,
                                random_state=0)
    timer.start()
    try:
        with pytest.warns(UserWarning, match="interrupted"):
            clf.fit(X, y)
    finally:
        timer.cancel()
    assert 1 <= clf.n_iter_ < 100000
    assert all(np.isfinite(p).all() for p in clf.coefs_)
    assert clf.score(X, y) > 0.5
