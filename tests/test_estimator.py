import re
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    cross_val_score,
    train_test_split,
)
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbackprop import BackpropMLPClassifier
from helpers import quiet_fit


@pytest.fixture(scope="module")
def digits_split():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def fitted_state(clf):
    return {k: v for k, v in vars(clf).items() if k.endswith("_") and not k.startswith("_")}


# ----------------------------------------------------------- fitted attributes


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_every_public_name_of_mlpclassifier_exists_here(iris, solver):
    """Switching is a one-word change: every public attribute of a fitted
    MLPClassifier (its parameters, ``loss`` and the fitted attributes) and
    every public method or property is here too."""
    X, y = iris
    theirs = quiet_fit(MLPClassifier((5,), solver=solver, max_iter=5, random_state=0), X, y)
    ours = quiet_fit(BackpropMLPClassifier((5,), solver=solver, max_iter=5, random_state=0),
                     X, y)
    names = {name for name in vars(theirs) if not name.startswith("_")}
    assert "loss" in names and "coefs_" in names
    assert sorted(name for name in names if not hasattr(ours, name)) == []
    assert ours.loss == theirs.loss == "log_loss"
    methods = {name for name in dir(MLPClassifier) if not name.startswith("_")}
    assert sorted(methods - set(dir(BackpropMLPClassifier))) == []


def test_multiclass_attributes(iris):
    X, y = iris
    clf = quiet_fit(BackpropMLPClassifier((7, 5), max_iter=20, random_state=0), X, y)
    assert_array_equal(clf.classes_, [0, 1, 2])
    assert [W.shape for W in clf.coefs_] == [(4, 7), (7, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(7,), (5,), (3,)]
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 3
    assert clf.out_activation_ == "softmax"
    assert clf.n_features_in_ == 4
    assert clf.n_iter_ == 20 == len(clf.loss_curve_)
    assert clf.loss_ == clf.loss_curve_[-1]
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.t_ == 20 * len(X)


def test_object_and_pandas_string_labels_give_classes_of_mlpclassifier_dtype(iris):
    """Strings in an object array (as pandas hands them over) are sorted into
    a str array, as MLPClassifier does; predictions come out the same way."""
    pd = pytest.importorskip("pandas")
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    for labels in (names.astype(object), pd.Series(names), pd.Series(names, dtype="category"),
                   list(names)):
        ours = quiet_fit(BackpropMLPClassifier((5,), max_iter=5, random_state=0), X, labels)
        theirs = quiet_fit(MLPClassifier((5,), max_iter=5, random_state=0), X, labels)
        assert ours.classes_.dtype == theirs.classes_.dtype
        assert_array_equal(ours.classes_, theirs.classes_)
        assert ours.predict(X).dtype == theirs.predict(X).dtype
    partial = BackpropMLPClassifier((5,), random_state=0).partial_fit(
        X, names.astype(object), classes=np.unique(names).astype(object))
    assert partial.classes_.dtype.kind == "U"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_two_class_predict_takes_the_larger_probability_even_at_a_tiny_logit(iris, dtype):
    """For tiny z > 0, sigmoid(z) rounds to 1/2 while sigmoid(-z) stays
    below: predict must follow predict_proba's argmax, not a test against 1/2."""
    X, y = iris
    X = X.astype(dtype)
    clf = quiet_fit(BackpropMLPClassifier((5,), random_state=0), X, y == 0)
    clf.coefs_[-1][...] = 0  # the output logit is the output bias alone
    eps = np.finfo(dtype).eps
    for z in [0.0, eps / 4, eps / 2, eps, 2 * eps, -eps / 4, -eps, 1e30, -1e30]:
        clf.intercepts_[-1][...] = z
        proba = clf.predict_proba(X[:3])
        assert_array_equal(clf.predict(X[:3]), clf.classes_[np.argmax(proba, axis=1)],
                           err_msg=f"output logit {z}")


def test_binary_has_one_logistic_unit_and_string_labels_round_trip(iris):
    X, y = iris
    labels = np.where(y == 0, "setosa", "other")
    clf = quiet_fit(BackpropMLPClassifier((5,), learning_rate_init=0.01, random_state=0), X, labels)
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "logistic"
    assert clf.coefs_[-1].shape == (5, 1)
    assert_array_equal(clf.classes_, ["other", "setosa"])
    pred = clf.predict(X)
    assert pred.dtype.kind == "U"
    assert set(pred) <= {"other", "setosa"}
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.score(X, labels) == 1.0


def test_probabilities_predictions_and_logs_agree(iris):
    X, y = iris
    for labels in (y, y == 1):
        clf = quiet_fit(BackpropMLPClassifier((6,), max_iter=30, random_state=1), X, labels)
        proba = clf.predict_proba(X)
        assert np.all((proba >= 0) & (proba <= 1))
        assert_allclose(proba.sum(axis=1), 1.0)
        assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
        assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-10, atol=1e-300)


def test_tiny_probabilities_keep_their_precision():
    X = np.array([[-1.0], [1.0]] * 10)
    y = np.array([0, 1] * 10)
    clf = quiet_fit(BackpropMLPClassifier((), max_iter=1, random_state=0), X, y)
    clf.coefs_[0][:] = 50.0
    clf.intercepts_[0][:] = 0.0
    # P(class 1 | x = -1) = sigmoid(-50), not 1 - sigmoid(50), which rounds to 0
    assert_allclose(clf.predict_proba([[-1.0]]), [[1.0, np.exp(-50.0)]], rtol=1e-14)
    assert_allclose(clf.predict_log_proba([[-1.0]]), [[0.0, -50.0]], atol=1e-14)
    clf.coefs_[0][:] = 2000.0  # beyond float64's range: the probability underflows to 0
    assert_array_equal(clf.predict_proba([[-1.0]]), [[1.0, 0.0]])
    assert_array_equal(clf.predict_log_proba([[-1.0]]), [[0.0, -np.inf]])


def test_hidden_layer_sizes_forms(iris):
    X, y = iris
    clf = quiet_fit(BackpropMLPClassifier(5, max_iter=5, random_state=0), X, y)
    assert [W.shape for W in clf.coefs_] == [(4, 5), (5, 3)]
    clf = quiet_fit(BackpropMLPClassifier((), max_iter=5, random_state=0), X, y)
    assert [W.shape for W in clf.coefs_] == [(4, 3)]
    assert clf.n_layers_ == 2


def test_dataframe_feature_names(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = quiet_fit(BackpropMLPClassifier((3,), max_iter=5, random_state=0), frame, y)
    assert_array_equal(clf.feature_names_in_, ["a", "b", "c", "d"])
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)


# --------------------------------------------------- parity with MLPClassifier


@pytest.mark.parametrize(
    "params",
    [
        dict(solver="adam"),
        dict(solver="sgd", learning_rate_init=0.05),
        dict(solver="sgd", learning_rate_init=0.05, nesterovs_momentum=False, activation="tanh"),
        dict(solver="adam", activation="logistic", hidden_layer_sizes=(8, 6), alpha=0.01),
        dict(solver="sgd", momentum=0.0, batch_size=37, activation="identity"),
    ],
)
def test_same_random_state_gives_mlpclassifiers_weights(iris, params):
    """Same initialisation, same shuffling, same updates: same weights."""
    X, y = iris
    ours = quiet_fit(BackpropMLPClassifier(max_iter=8, random_state=3, **params), X, y)
    theirs = quiet_fit(MLPClassifier(max_iter=8, random_state=3, **params), X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-9, atol=1e-12)


def test_binary_parity_with_mlpclassifier(iris):
    X, y = iris
    ours = quiet_fit(BackpropMLPClassifier((5,), max_iter=6, random_state=0), X, y == 2)
    theirs = quiet_fit(MLPClassifier((5,), max_iter=6, random_state=0), X, y == 2)
    for a, b in zip(ours.coefs_, theirs.coefs_):
        assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_accuracy_matches_mlpclassifier_on_digits(digits_split):
    """Default parameters, three seeds: no more than 1 point below MLPClassifier."""
    X_train, X_test, y_train, y_test = digits_split
    ours, theirs = [], []
    for seed in range(3):
        ours.append(quiet_fit(BackpropMLPClassifier(random_state=seed), X_train, y_train).score(X_test, y_test))
        theirs.append(quiet_fit(MLPClassifier(random_state=seed), X_train, y_train).score(X_test, y_test))
    assert np.mean(ours) >= np.mean(theirs) - 0.01
    assert np.mean(ours) > 0.95


# ------------------------------------------------------------------- training


def test_convergence_warning_when_max_iter_ends_training(iris):
    """The warnings open with MLPClassifier's words, so that filters and
    ``pytest.warns(match=...)`` written for it keep matching."""
    X, y = iris
    with pytest.warns(ConvergenceWarning, match=r"^Stochastic Optimizer: Maximum iterations "
                                                r"\(3\) reached and the optimization hasn't "
                                                r"converged yet"):
        BackpropMLPClassifier((5,), max_iter=3, random_state=0).fit(X, y)
    with pytest.warns(ConvergenceWarning, match=r"^lbfgs failed to converge after 3 "
                                                r"iteration\(s\)"):
        BackpropMLPClassifier((5,), solver="lbfgs", max_iter=3, random_state=0).fit(X, y)
    for solver in ("adam", "lbfgs"):  # the same opening as MLPClassifier's own warning
        with warnings.catch_warnings(record=True) as theirs:
            warnings.simplefilter("always")
            MLPClassifier((5,), solver=solver, max_iter=3, random_state=0).fit(X, y)
        with warnings.catch_warnings(record=True) as ours:
            warnings.simplefilter("always")
            BackpropMLPClassifier((5,), solver=solver, max_iter=3, random_state=0).fit(X, y)
        opening = str(theirs[0].message).split("(")[0]
        assert str(ours[0].message).startswith(opening)


def test_stops_when_loss_stops_improving(iris):
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = BackpropMLPClassifier((5,), tol=0.05, n_iter_no_change=2, max_iter=500, random_state=0).fit(X, y)
    assert 3 <= clf.n_iter_ < 500
    # the rule: the last n_iter_no_change + 1 epochs did not beat the best before them by tol
    curve = clf.loss_curve_
    best_before = min(curve[: -(clf.n_iter_no_change + 1)])
    assert all(loss > best_before - clf.tol for loss in curve[-(clf.n_iter_no_change + 1):])


def test_full_batch_gradient_descent_ignores_shuffling(iris):
    X, y = iris
    params = dict(hidden_layer_sizes=(4,), solver="sgd", batch_size=len(X), momentum=0.0,
                  learning_rate_init=0.3, max_iter=10, random_state=0)
    a = quiet_fit(BackpropMLPClassifier(shuffle=True, **params), X, y)
    b = quiet_fit(BackpropMLPClassifier(shuffle=False, **params), X, y)
    for p, q in zip(a.coefs_, b.coefs_):
        assert_allclose(p, q, rtol=1e-10)


def test_loss_gradient_is_what_fit_descends(iris):
    X, y = iris
    clf = quiet_fit(BackpropMLPClassifier((5,), solver="sgd", momentum=0.0, batch_size=len(X),
                                          learning_rate_init=0.2, max_iter=3, random_state=0,
                                          warm_start=True), X, y)
    before = [W.copy() for W in clf.coefs_ + clf.intercepts_]
    loss, coef_grads, intercept_grads = clf.loss_gradient(X, y)
    clf.set_params(max_iter=1)
    quiet_fit(clf, X, y)
    assert clf.loss_curve_[-1] == pytest.approx(loss, rel=1e-12)
    for w0, g, w1 in zip(before, coef_grads + intercept_grads, clf.coefs_ + clf.intercepts_):
        assert_allclose(w1, w0 - 0.2 * g, rtol=1e-12, atol=1e-15)


def test_loss_gradient_shapes_and_labels(iris):
    X, y = iris
    names = np.array(["a", "b", "c"])[y]
    clf = quiet_fit(BackpropMLPClassifier((5, 4), max_iter=5, random_state=0), X, names)
    loss, coef_grads, intercept_grads = clf.loss_gradient(X, names)
    assert isinstance(loss, float) and loss > 0
    assert [g.shape for g in coef_grads] == [W.shape for W in clf.coefs_]
    assert [g.shape for g in intercept_grads] == [b.shape for b in clf.intercepts_]
    with pytest.raises(ValueError, match=re.escape("labels not seen during fit: ['z']")):
        clf.loss_gradient(X[:2], ["a", "z"])
    with pytest.raises(NotFittedError):
        BackpropMLPClassifier().loss_gradient(X, names)


def test_warm_start_continues_from_current_weights(iris):
    X, y = iris
    clf = quiet_fit(BackpropMLPClassifier((5,), max_iter=4, random_state=0, warm_start=True), X, y)
    first_curve = list(clf.loss_curve_)
    first_weights = [W.copy() for W in clf.coefs_]
    quiet_fit(clf, X, y)
    assert clf.loss_curve_[:4] == first_curve
    assert len(clf.loss_curve_) == 8 and clf.n_iter_ == 4
    assert clf.t_ == 8 * len(X)
    assert clf.loss_curve_[4] < first_curve[0]  # did not restart from fresh weights
    assert not np.allclose(clf.coefs_[0], first_weights[0])
    # without warm_start, fit starts over
    cold = quiet_fit(BackpropMLPClassifier((5,), max_iter=4, random_state=0), X, y)
    assert cold.loss_curve_ == first_curve


@pytest.mark.parametrize("early_stopping", [False, True])
def test_warm_start_keeps_counting_epochs_without_improvement(early_stopping):
    """As in MLPClassifier, a warm refit of a converged model goes on counting
    where the last fit stopped: it stops again after an epoch or so, with the
    same n_iter_ and loss curve as MLPClassifier's."""
    # (two classes: with more, early stopping holds out other rows than MLPClassifier)
    X, y = make_classification(n_samples=230, n_features=6, n_informative=4, n_classes=2,
                               random_state=0)
    params = dict(warm_start=True, max_iter=2000, learning_rate_init=0.01, random_state=0,
                  early_stopping=early_stopping)
    ours = quiet_fit(BackpropMLPClassifier(**params), X, y)
    theirs = quiet_fit(MLPClassifier(**params), X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 2000  # converged
    for _ in range(3):
        quiet_fit(ours, X, y)
        quiet_fit(theirs, X, y)
        assert ours.n_iter_ == theirs.n_iter_
    assert ours.n_iter_ <= 2
    if not early_stopping:  # with it, MLPClassifier's weights drift (see docs/parity.rst)
        assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)


def test_warm_start_rejects_other_classes_and_shapes_and_changes_nothing(iris):
    X, y = iris
    clf = quiet_fit(BackpropMLPClassifier((5,), max_iter=3, random_state=0, warm_start=True), X, y)
    before = fitted_state(clf)
    with pytest.raises(ValueError, match="classes"):
        clf.fit(X[y < 2], y[y < 2])
    clf.set_params(hidden_layer_sizes=(6,))
    with pytest.raises(ValueError, match="layer shapes"):
        clf.fit(X, y)
    after = fitted_state(clf)
    assert after.keys() == before.keys()
    for key in before:
        assert after[key] is before[key]


# ------------------------------------------------------------------ bad input


def test_single_class_is_a_clear_error_and_leaves_no_fitted_state(iris):
    X, _ = iris
    clf = BackpropMLPClassifier()
    with pytest.raises(ValueError, match="only one class"):
        clf.fit(X, np.zeros(len(X)))
    assert fitted_state(clf) == {}
    with pytest.raises(NotFittedError):
        clf.predict(X)


@pytest.mark.parametrize(
    "params, name",
    [
        (dict(hidden_layer_sizes=0), "hidden_layer_sizes"),
        (dict(activation="softplus"), "activation"),
        (dict(solver="newton"), "solver"),
        (dict(alpha=-1.0), "alpha"),
        (dict(learning_rate_init=0.0), "learning_rate_init"),
        (dict(max_iter=0), "max_iter"),
        (dict(batch_size=0), "batch_size"),
        (dict(momentum=1.5), "momentum"),
        (dict(beta_1=1.0), "beta_1"),
        (dict(epsilon=0.0), "epsilon"),
        (dict(n_iter_no_change=0), "n_iter_no_change"),
        (dict(tol=-1.0), "tol"),
    ],
)
def test_invalid_parameters_raise_value_errors_naming_them(iris, params, name):
    X, y = iris
    with pytest.raises(ValueError, match=name):
        BackpropMLPClassifier(**params).fit(X, y)


@pytest.mark.parametrize("sizes", [(5, 0), (5, -2), (2.5,), ("10",)])
def test_hidden_layer_sizes_must_be_positive_integers(iris, sizes):
    X, y = iris
    with pytest.raises(ValueError, match="hidden_layer_sizes must hold positive integers"):
        BackpropMLPClassifier(hidden_layer_sizes=sizes).fit(X, y)


def test_batch_size_above_n_samples_warns_and_clips(iris):
    X, y = iris
    with pytest.warns(UserWarning, match="batch_size=1000 is larger"):
        clf = quiet_fit(BackpropMLPClassifier((3,), batch_size=1000, max_iter=2, random_state=0), X, y)
    assert clf.n_iter_ == 2


def test_verbose_prints_the_loss(iris, capsys):
    X, y = iris
    clf = quiet_fit(BackpropMLPClassifier((3,), max_iter=2, verbose=True, random_state=0), X, y)
    out = capsys.readouterr().out
    assert f"Iteration 2, loss = {clf.loss_curve_[1]:.8f}" in out


# ------------------------------------------------- pipelines and model search


def test_grid_search_over_learning_rate_in_a_pipeline_on_digits():
    X, y = load_digits(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), BackpropMLPClassifier(random_state=0))
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    search = GridSearchCV(
        pipe, {"backpropmlpclassifier__learning_rate_init": [1e-3, 1e-2]}, cv=cv, n_jobs=2
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert search.best_score_ >= 0.95
    assert search.best_params_["backpropmlpclassifier__learning_rate_init"] in (1e-3, 1e-2)
    assert search.cv_results_["mean_test_score"].shape == (2,)


def test_cross_val_score(iris):
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(
            BackpropMLPClassifier((10,), learning_rate_init=0.01, random_state=0), X, y, cv=5
        )
    assert scores.shape == (5,)
    assert scores.mean() > 0.9


def test_the_fast_prediction_lane_agrees_with_full_validation(iris):
    X, y = iris
    clf = quiet_fit(BackpropMLPClassifier((5,), max_iter=20, random_state=0), X, y)
    fast = clf.predict_proba(X)  # a float ndarray: validation is skipped
    validated = clf.predict_proba(X.tolist())  # a list: full validation
    assert_array_equal(fast, validated)
    assert_array_equal(clf.predict_proba(np.asfortranarray(X)), fast)
    assert_array_equal(clf.predict_proba(X.astype(np.float32)),
                       clf.predict_proba(X.astype(np.float32).tolist()))
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.predict_proba(bad)
    with pytest.raises(ValueError, match="features"):
        clf.predict_proba(X[:, :3])
    with pytest.raises(ValueError, match="2D array"):
        clf.predict_proba(X[0])
