import numpy as np
import pytest
from numpy.testing import assert_allclose

from skbackprop._network import backward, forward, init_params, objective


def random_problem(n_hidden_layers, n_classes, activation, seed=0, n_samples=12, n_features=4):
    """Random data, targets and random (never zero) weights."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, n_features))
    n_outputs = 1 if n_classes == 2 else n_classes
    labels = rng.randint(0, n_classes, n_samples)
    Y = np.eye(n_classes)[labels]
    Y = Y[:, 1:] if n_classes == 2 else Y
    sizes = [n_features] + [5, 4, 3][:n_hidden_layers] + [n_outputs]
    coefs, intercepts = init_params(sizes, activation, rng)
    return X, Y, coefs, intercepts


def numeric_gradients(f, params):
    """Central differences of the scalar ``f()`` with respect to each array in ``params``."""
    h = 1e-6
    grads = []
    for p in params:
        g = np.zeros_like(p)
        for index in np.ndindex(p.shape):
            saved = p[index]
            p[index] = saved + h
            up = f()
            p[index] = saved - h
            down = f()
            p[index] = saved
            g[index] = (up - down) / (2 * h)
        grads.append(g)
    return grads


@pytest.mark.parametrize("alpha", [0.0, 0.3])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("n_hidden_layers", [1, 2, 3])
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_backward_pass_matches_finite_differences(activation, n_hidden_layers, n_classes, alpha):
    X, Y, coefs, intercepts = random_problem(n_hidden_layers, n_classes, activation)
    output = "logistic" if n_classes == 2 else "softmax"

    def J():
        return objective(X, Y, coefs, intercepts, activation, output, alpha)[0]

    _, dcoefs, dintercepts = objective(X, Y, coefs, intercepts, activation, output, alpha)
    assert all(np.any(W != 0) for W in coefs)
    numeric = numeric_gradients(J, coefs + intercepts)
    for analytic, approx in zip(dcoefs + dintercepts, numeric):
        assert_allclose(analytic, approx, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_weighted_objective_matches_finite_differences(n_classes):
    X, Y, coefs, intercepts = random_problem(2, n_classes, "tanh", seed=3)
    output = "logistic" if n_classes == 2 else "softmax"
    s = np.random.RandomState(4).uniform(0, 3, len(X))

    def J():
        return objective(X, Y, coefs, intercepts, "tanh", output, 0.1, s)[0]

    _, dcoefs, dintercepts = objective(X, Y, coefs, intercepts, "tanh", output, 0.1, s)
    for analytic, approx in zip(dcoefs + dintercepts, numeric_gradients(J, coefs + intercepts)):
        assert_allclose(analytic, approx, rtol=1e-5, atol=1e-8)


def test_objective_is_the_documented_mean_plus_penalty():
    X, Y, coefs, intercepts = random_problem(1, 3, "logistic", seed=5)
    s = np.arange(1.0, len(X) + 1)
    loss, _, _ = objective(X, Y, coefs, intercepts, "logistic", "softmax", 0.7, s)
    _, Z = forward(X, coefs, intercepts, "logistic")
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    per_sample = -(Y * np.log(P)).sum(axis=1)
    S = s.sum()
    expected = (s @ per_sample) / S + 0.7 / (2 * S) * sum((W**2).sum() for W in coefs)
    assert loss == pytest.approx(expected, rel=1e-12)


def test_unit_weights_equal_no_weights():
    X, Y, coefs, intercepts = random_problem(2, 3, "relu", seed=6)
    plain = objective(X, Y, coefs, intercepts, "relu", "softmax", 0.2)
    ones = objective(X, Y, coefs, intercepts, "relu", "softmax", 0.2, np.ones(len(X)))
    assert plain[0] == pytest.approx(ones[0], rel=1e-14)
    for a, b in zip(plain[1] + plain[2], ones[1] + ones[2]):
        assert_allclose(a, b, rtol=1e-14)


def test_forward_shapes_and_layers():
    X, Y, coefs, intercepts = random_problem(3, 3, "tanh")
    activations, Z = forward(X, coefs, intercepts, "tanh")
    assert [A.shape for A in activations] == [(12, 4), (12, 5), (12, 4), (12, 3)]
    assert activations[0] is X
    assert Z.shape == (12, 3)
    assert_allclose(activations[1], np.tanh(X @ coefs[0] + intercepts[0]))


def test_network_without_hidden_layers_is_logistic_regression():
    X, Y, coefs, intercepts = random_problem(0, 3, "relu")
    activations, Z = forward(X, coefs, intercepts, "relu")
    assert len(activations) == 1
    assert_allclose(Z, X @ coefs[0] + intercepts[0])
    dcoefs, dintercepts = backward(activations, Z, coefs, "relu")
    assert_allclose(dcoefs[0], X.T @ Z)


@pytest.mark.parametrize("activation, factor", [("relu", 6.0), ("logistic", 2.0)])
def test_glorot_uniform_initialisation(activation, factor):
    sizes = [30, 20, 3]
    coefs, intercepts = init_params(sizes, activation, np.random.RandomState(0))
    assert [W.shape for W in coefs] == [(30, 20), (20, 3)]
    assert [b.shape for b in intercepts] == [(20,), (3,)]
    for (fan_in, fan_out), W, b in zip([(30, 20), (20, 3)], coefs, intercepts):
        bound = np.sqrt(factor / (fan_in + fan_out))
        assert np.abs(W).max() <= bound and np.abs(b).max() <= bound
        assert np.abs(W).max() > 0.8 * bound  # uniform over the whole interval
    # Weights first, then biases, layer by layer, from the one generator:
    rng = np.random.RandomState(0)
    bound = np.sqrt(factor / 50)
    assert_allclose(coefs[0], rng.uniform(-bound, bound, (30, 20)))
    assert_allclose(intercepts[0], rng.uniform(-bound, bound, 20))


def test_init_dtype():
    coefs, intercepts = init_params([3, 2, 1], "tanh", np.random.RandomState(0), np.float32)
    assert all(p.dtype == np.float32 for p in coefs + intercepts)
