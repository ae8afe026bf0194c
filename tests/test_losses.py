import numpy as np
import pytest
from numpy.testing import assert_allclose

from skbackprop._losses import (
    LOSSES,
    OUTPUTS,
    binary_log_loss,
    output_delta,
    softmax,
    softmax_cross_entropy,
)


def one_hot(labels, n_classes):
    return np.eye(n_classes)[labels]


def test_softmax_rows_are_probabilities_even_for_huge_logits():
    Z = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        P = softmax(Z)
    assert_allclose(P.sum(axis=1), 1.0)
    assert_allclose(P[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())
    assert_allclose(P[1], [1.0, 0.0, 0.0])
    assert_allclose(P[2], [1 / 3] * 3)


def test_softmax_cross_entropy_is_the_tutorials_cost():
    rng = np.random.RandomState(0)
    Z = rng.normal(size=(6, 4))
    T = one_hot(rng.randint(0, 4, 6), 4)
    Y = softmax(Z)
    assert_allclose(softmax_cross_entropy(Z, T), -(T * np.log(Y)).sum(axis=1))


def test_binary_log_loss_is_the_logistic_cost():
    rng = np.random.RandomState(1)
    Z = rng.normal(size=(8, 1))
    y = rng.randint(0, 2, (8, 1)).astype(float)
    p = 1 / (1 + np.exp(-Z))
    expected = -(y * np.log(p) + (1 - y) * np.log(1 - p)).sum(axis=1)
    assert_allclose(binary_log_loss(Z, y), expected)


def test_losses_never_take_log_of_zero():
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        hard = softmax_cross_entropy(np.array([[800.0, -800.0]]), np.array([[0.0, 1.0]]))
        soft = binary_log_loss(np.array([[-800.0]]), np.array([[1.0]]))
    assert_allclose(hard, [1600.0])
    assert_allclose(soft, [800.0])


@pytest.mark.parametrize("output", ["softmax", "logistic"])
def test_output_delta_is_the_derivative_of_the_loss(output):
    """P - Y is dl/dZ: the canonical-link shortcut, checked numerically."""
    rng = np.random.RandomState(2)
    n_out = 4 if output == "softmax" else 1
    Z = rng.normal(size=(5, n_out))
    if output == "softmax":
        Y = one_hot(rng.randint(0, n_out, 5), n_out)
    else:
        Y = rng.randint(0, 2, (5, 1)).astype(float)
    loss = LOSSES[output]
    h = 1e-6
    numeric = np.zeros_like(Z)
    for index in np.ndindex(Z.shape):
        E = np.zeros_like(Z)
        E[index] = h
        numeric[index] = (loss(Z + E, Y) - loss(Z - E, Y)).sum() / (2 * h)
    assert_allclose(output_delta(OUTPUTS[output](Z), Y), numeric, rtol=1e-6, atol=1e-9)
