import numpy as np
import pytest
from numpy.testing import assert_allclose

from skbackprop._activations import ACTIVATIONS, DERIVATIVES


def random_preactivations(seed=0, shape=(7, 5)):
    """Random points away from 0, where relu has its kink."""
    rng = np.random.RandomState(seed)
    Z = rng.uniform(0.05, 3.0, shape) * rng.choice([-1.0, 1.0], shape)
    return Z


def test_tables_cover_the_same_activations():
    assert set(ACTIVATIONS) == set(DERIVATIVES) == {"identity", "logistic", "tanh", "relu"}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivative_from_output_matches_finite_differences(name):
    f, f_prime = ACTIVATIONS[name], DERIVATIVES[name]
    Z = random_preactivations()
    h = 1e-6
    numeric = (f(Z + h) - f(Z - h)) / (2 * h)
    assert_allclose(f_prime(f(Z)), numeric, rtol=1e-7, atol=1e-9)


def test_derivatives_are_the_tutorials_formulas():
    Z = random_preactivations(1)
    A = ACTIVATIONS["logistic"](Z)
    assert_allclose(DERIVATIVES["logistic"](A), A * (1 - A))
    A = np.tanh(Z)
    assert_allclose(DERIVATIVES["tanh"](A), 1 - A**2)
    A = np.maximum(Z, 0)
    assert_allclose(DERIVATIVES["relu"](A), (Z > 0).astype(float))
    assert_allclose(DERIVATIVES["identity"](Z), np.ones_like(Z))


def test_forward_values():
    Z = random_preactivations(2)
    assert_allclose(ACTIVATIONS["logistic"](Z), 1 / (1 + np.exp(-Z)), rtol=1e-12)
    assert_allclose(ACTIVATIONS["tanh"](Z), np.tanh(Z))
    assert_allclose(ACTIVATIONS["relu"](Z), np.where(Z > 0, Z, 0))
    assert ACTIVATIONS["identity"](Z) is Z


def test_logistic_saturates_without_overflow():
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        out = ACTIVATIONS["logistic"](np.array([-1e4, -800.0, 0.0, 800.0, 1e4]))
    assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0])


def test_logistic_keeps_relative_precision_in_the_lower_tail():
    Z = np.array([-40.0, -100.0, -700.0])
    assert_allclose(ACTIVATIONS["logistic"](Z), np.exp(Z) / (1 + np.exp(Z)), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_dtype_is_preserved(name, dtype):
    Z = random_preactivations().astype(dtype)
    A = ACTIVATIONS[name](Z)
    assert A.dtype == dtype
    assert DERIVATIVES[name](A).dtype == dtype
