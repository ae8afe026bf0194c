import warnings

import numpy as np
import pytest
from scipy import sparse
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier
from sklearn.utils._param_validation import InvalidParameterError

from skbackprop import BackpropMLPClassifier, check_gradients
from skbackprop import _activations, _fast


def fitted(X, y, **params):
    clf = BackpropMLPClassifier(max_iter=3, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clf.fit(X, y)


@pytest.fixture(scope="module")
def data():
    return make_classification(
        n_samples=30, n_features=4, n_informative=3, n_redundant=0, n_classes=3,
        random_state=0,
    )


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("hidden", [(4,), (4, 3), (3, 3, 3)])
def test_correct_gradients_pass(data, activation, hidden):
    X, y = data
    clf = fitted(X, y, hidden_layer_sizes=hidden, activation=activation, alpha=0.1)
    assert check_gradients(clf, X, y) < 1e-4


def test_binary_targets(data):
    X, y = data
    clf = fitted(X, y == 1, hidden_layer_sizes=(4,), activation="tanh")
    assert check_gradients(clf, X, y == 1) < 1e-4


def test_a_wrong_derivative_is_caught(data, monkeypatch):
    X, y = data
    clf = fitted(X, y, hidden_layer_sizes=(4,), activation="tanh")
    monkeypatch.setitem(_activations.DERIVATIVES, "tanh", lambda A: 1 - A)  # not 1 - A**2
    assert check_gradients(clf, X, y) > 1e-2


@pytest.mark.parametrize("to_kind", [np.asarray, sparse.csr_matrix], ids=["dense", "sparse"])
def test_a_wrong_derivative_in_the_training_code_is_caught(data, monkeypatch, to_kind):
    """fit runs the fused code of _fast, not the reference: a slip there must
    show too (it used to pass with an error of 3e-7)."""
    X, y = data
    X = to_kind(X)
    clf = fitted(X, y, hidden_layer_sizes=(4,), activation="tanh")
    assert check_gradients(clf, X, y) < 1e-4

    def wrong_tanh_times(dA, A, scratch, zero):
        np.subtract(1, A, out=scratch)  # 1 - A, not 1 - A**2
        dA *= scratch

    monkeypatch.setitem(_fast.IN_PLACE_DERIVATIVES, "tanh", wrong_tanh_times)
    assert check_gradients(clf, X, y) > 1e-2


def test_a_wrong_activation_in_the_training_code_is_caught(data, monkeypatch):
    """The fused gradient of another function than the objective's."""
    X, y = data
    clf = fitted(X, y, hidden_layer_sizes=(4,), activation="tanh")
    monkeypatch.setitem(_fast.IN_PLACE_ACTIVATIONS, "tanh",
                        lambda Z, zero: np.multiply(Z, 0.5, out=Z))  # not tanh
    assert check_gradients(clf, X, y) > 1e-2


def test_gradients_on_sparse_data_pass(data):
    X, y = data
    clf = fitted(X, y, hidden_layer_sizes=(4,), activation="tanh", alpha=0.1)
    assert check_gradients(clf, sparse.csr_matrix(X), y) < 1e-4


def test_a_missing_penalty_gradient_is_caught(data, monkeypatch):
    X, y = data
    clf = fitted(X, y, hidden_layer_sizes=(4,), activation="tanh", alpha=1.0)
    import skbackprop._estimator as estimator_module

    real_objective = estimator_module.objective

    def objective_without_penalty_gradient(X, Y, coefs, intercepts, activation, output, alpha, w):
        loss, dcoefs, dintercepts = real_objective(X, Y, coefs, intercepts, activation, output, alpha, w)
        dcoefs = [g - alpha / len(X) * W for g, W in zip(dcoefs, coefs)]
        return loss, dcoefs, dintercepts

    monkeypatch.setattr(estimator_module, "objective", objective_without_penalty_gradient)
    assert check_gradients(clf, X, y) > 1e-2


def test_weights_are_left_unchanged(data):
    X, y = data
    clf = fitted(X, y, hidden_layer_sizes=(4,))
    before = [W.copy() for W in clf.coefs_ + clf.intercepts_]
    check_gradients(clf, X, y)
    for a, b in zip(before, clf.coefs_ + clf.intercepts_):
        np.testing.assert_array_equal(a, b)


def test_needs_a_fitted_estimator(data):
    X, y = data
    with pytest.raises(NotFittedError):
        check_gradients(BackpropMLPClassifier(), X, y)


def test_epsilon_must_be_positive(data):
    X, y = data
    clf = fitted(X, y, hidden_layer_sizes=(2,))
    with pytest.raises(ValueError, match="epsilon"):
        check_gradients(clf, X, y, epsilon=0)


@pytest.mark.parametrize("epsilon", [np.inf, -np.inf, np.nan, -1e-6, "a", "1e-6", None, True,
                                     [1e-6]])
def test_epsilon_must_be_a_positive_finite_number(data, epsilon):
    """An infinite step used to give a meaningless error with RuntimeWarnings,
    and a non-number a TypeError about ``>``."""
    X, y = data
    clf = fitted(X, y, hidden_layer_sizes=(2,))
    with pytest.raises(InvalidParameterError,
                       match=r"'epsilon' parameter .* must be a positive finite number"):
        check_gradients(clf, X, y, epsilon=epsilon)


@pytest.mark.parametrize("epsilon", [1e-6, np.float32(1e-3), 1])
def test_epsilon_may_be_any_positive_real_number(data, epsilon):
    X, y = data
    clf = fitted(X, y, hidden_layer_sizes=(2,), activation="tanh")
    assert np.isfinite(check_gradients(clf, X, y, epsilon=epsilon))


@pytest.mark.parametrize("make_estimator", [
    lambda X, y: MLPClassifier((2,), max_iter=3, random_state=0).fit(X, y),
    lambda X, y: None,
], ids=["MLPClassifier", "None"])
def test_needs_a_backprop_classifier(data, make_estimator):
    """scikit-learn's own MLPClassifier used to fail with ``AttributeError:
    _loss_function``."""
    X, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator = make_estimator(X, y)
    with pytest.raises(TypeError, match="must be a fitted BackpropMLPClassifier"):
        check_gradients(estimator, X, y)
