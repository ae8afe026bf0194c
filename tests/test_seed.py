"""The tutorial's one-hidden-layer formulas, against the estimator.

The tutorial's network is Z = sigmoid(X W + b), Y = softmax(Z V + c), with
cost J = -sum_n sum_k T[n, k] log Y[n, k] (a sum) and gradients written
index by index. Our objective is the mean of that cost, so one step of our
full-batch gradient descent is ``w - lr * (tutorial gradient) / N``.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import make_classification

from skbackprop import BackpropMLPClassifier

N, D, M, K = 40, 5, 6, 3  # samples, features, hidden units, classes


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def softmax(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cost(T, Y):
    """The tutorial's cost, as printed there."""
    return -(T * np.log(Y)).sum()


def tutorial_gradients(X, T, W, b, V, c):
    """dJ/dV, dJ/dc, dJ/dW, dJ/db exactly as the tutorial writes them, one
    index at a time (einsum spells out the sums over n and k)."""
    Z = sigmoid(X @ W + b)
    Y = softmax(Z @ V + c)
    dV = np.einsum("nk,nm->mk", Y - T, Z)  # sum_n (Y[n,k] - T[n,k]) Z[n,m]
    dc = np.einsum("nk->k", Y - T)  # sum_n (Y[n,k] - T[n,k])
    dW = np.einsum("nk,mk,nm,nd->dm", Y - T, V, Z * (1 - Z), X)
    db = np.einsum("nk,mk,nm->m", Y - T, V, Z * (1 - Z))
    return dW, db, dV, dc


@pytest.fixture
def problem():
    X, y = make_classification(
        n_samples=N, n_features=D, n_informative=4, n_redundant=0, n_classes=K,
        random_state=0,
    )
    T = np.eye(K)[y]  # the indicator matrix of the targets
    rng = np.random.RandomState(1)
    weights = [rng.normal(size=(D, M)), rng.normal(size=M), rng.normal(size=(M, K)), rng.normal(size=K)]
    return X, y, T, weights


def seed_estimator(lr, max_iter):
    """The tutorial's method: full-batch gradient descent, no momentum, no penalty."""
    return BackpropMLPClassifier(
        hidden_layer_sizes=(M,), activation="logistic", solver="sgd", batch_size=N,
        momentum=0.0, alpha=0.0, learning_rate_init=lr, max_iter=max_iter,
        shuffle=False, tol=0.0, n_iter_no_change=np.inf, warm_start=True, random_state=0,
    )


def start_from(clf, X, y, weights):
    """Fit once to set up the estimator, then put the given weights in place."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    W, b, V, c = (w.copy() for w in weights)
    clf.coefs_, clf.intercepts_ = [W, V], [b, c]
    return clf


def test_vectorised_forms_equal_the_index_forms(problem):
    X, _, T, (W, b, V, c) = problem
    Z = sigmoid(X @ W + b)
    Y = softmax(Z @ V + c)
    dW, db, dV, dc = tutorial_gradients(X, T, W, b, V, c)
    assert_allclose(dV, Z.T @ (Y - T))
    assert_allclose(dc, (Y - T).sum(axis=0))
    assert_allclose(dW, X.T @ (((Y - T) @ V.T) * Z * (1 - Z)))
    assert_allclose(db, (((Y - T) @ V.T) * Z * (1 - Z)).sum(axis=0))


def test_our_loss_is_the_tutorials_cost_divided_by_n(problem):
    X, y, T, weights = problem
    clf = start_from(seed_estimator(0.1, 1), X, y, weights)
    W, b, V, c = weights
    Y = softmax(sigmoid(X @ W + b) @ V + c)
    loss, coef_grads, intercept_grads = clf.loss_gradient(X, y)
    assert loss == pytest.approx(cost(T, Y) / N, rel=1e-12)
    dW, db, dV, dc = tutorial_gradients(X, T, W, b, V, c)
    for ours, tutorial in zip(coef_grads + intercept_grads, [dW, dV, db, dc]):
        assert_allclose(ours, tutorial / N, rtol=1e-10, atol=1e-14)


def test_one_full_batch_step_is_the_tutorials_update(problem):
    X, y, T, weights = problem
    lr = 0.5
    clf = start_from(seed_estimator(lr, 1), X, y, weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    W, b, V, c = weights
    dW, db, dV, dc = tutorial_gradients(X, T, W, b, V, c)
    assert_allclose(clf.coefs_[0], W - lr * dW / N, rtol=1e-12)
    assert_allclose(clf.intercepts_[0], b - lr * db / N, rtol=1e-12)
    assert_allclose(clf.coefs_[1], V - lr * dV / N, rtol=1e-12)
    assert_allclose(clf.intercepts_[1], c - lr * dc / N, rtol=1e-12)


def test_many_steps_follow_the_tutorials_loop(problem):
    X, y, T, weights = problem
    lr, n_steps = 2.0, 25
    clf = start_from(seed_estimator(lr, n_steps), X, y, weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    assert clf.n_iter_ == n_steps
    W, b, V, c = (w.copy() for w in weights)
    costs = []
    for _ in range(n_steps):
        costs.append(cost(T, softmax(sigmoid(X @ W + b) @ V + c)))
        dW, db, dV, dc = tutorial_gradients(X, T, W, b, V, c)
        W, b, V, c = W - lr * dW / N, b - lr * db / N, V - lr * dV / N, c - lr * dc / N
    assert_allclose(clf.coefs_[0], W, rtol=1e-9)
    assert_allclose(clf.coefs_[1], V, rtol=1e-9)
    assert_allclose(clf.intercepts_[0], b, rtol=1e-9)
    assert_allclose(clf.intercepts_[1], c, rtol=1e-9)
    # loss_curve_ records the cost / N at the start of each epoch
    assert_allclose(clf.loss_curve_[-n_steps:], np.array(costs) / N, rtol=1e-10)
    assert costs[-1] < costs[0]
