"""The fused objective equals the reference one, for every network it serves."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skbackprop._fast import FusedObjective, flat_layout, flat_views, flatten
from skbackprop._network import init_params, objective


def problem(output, n_outputs, activation, dtype, seed=0, n_samples=37, sizes=(6, 5, 4)):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, sizes[0])).astype(dtype)
    if output == "softmax":
        Y = np.eye(n_outputs)[rng.randint(0, n_outputs, n_samples)]
    else:
        Y = rng.randint(0, 2, (n_samples, n_outputs)).astype(float)
    layer_sizes = list(sizes) + [n_outputs]
    coefs, intercepts = init_params(layer_sizes, activation, rng, dtype)
    return X, Y.astype(dtype), layer_sizes, coefs, intercepts


def test_flat_layout_puts_all_weights_first():
    coef_slots, intercept_slots, n = flat_layout([3, 4, 2])
    assert coef_slots == [(0, 12, (3, 4)), (12, 20, (4, 2))]
    assert intercept_slots == [(20, 24, (4,)), (24, 26, (2,))]
    assert n == 26


def test_flat_views_share_memory_with_the_vector():
    coefs, intercepts = init_params([3, 4, 2], "relu", np.random.RandomState(0))
    theta = flatten(coefs, intercepts, np.float64)
    views = flat_views(theta, [3, 4, 2])
    for a, b in zip(views[0] + views[1], coefs + intercepts):
        np.testing.assert_array_equal(a, b)
    theta[:] = 0
    assert not views[0][0].any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("block_rows", [1024, 10])
@pytest.mark.parametrize(
    "output, n_outputs", [("softmax", 3), ("logistic", 1), ("logistic", 3)],
    ids=["multiclass", "binary", "multilabel"],
)
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_fused_objective_equals_the_reference(activation, output, n_outputs, block_rows,
                                              weighted, dtype):
    X, Y, layer_sizes, coefs, intercepts = problem(output, n_outputs, activation, dtype)
    w = np.random.RandomState(1).uniform(0, 2, len(X)).astype(dtype) if weighted else None
    loss, dcoefs, dintercepts = objective(X, Y, coefs, intercepts, activation, output, 0.3, w)
    fused = FusedObjective(layer_sizes, activation, output, 0.3, dtype, block_rows=block_rows)
    theta = flatten(coefs, intercepts, dtype)
    for _ in range(2):  # the reused buffers give the same answer twice
        fused_loss, (gradient,) = fused([theta], X, Y, w)
        rtol = 1e-12 if dtype == np.float64 else 2e-5
        assert fused_loss == pytest.approx(loss, rel=rtol)
        assert gradient.dtype == dtype
        assert_allclose(gradient, flatten(dcoefs, dintercepts, dtype), rtol=rtol * 10,
                        atol=rtol * 1e-2)


def test_batches_of_several_sizes_share_one_objective():
    X, Y, layer_sizes, coefs, intercepts = problem("softmax", 3, "tanh", np.float64,
                                                   n_samples=50)
    fused = FusedObjective(layer_sizes, "tanh", "softmax", 0.0, np.float64, block_rows=16)
    theta = flatten(coefs, intercepts, np.float64)
    for rows in (50, 7, 16, 50):
        loss, dcoefs, dintercepts = objective(X[:rows], Y[:rows], coefs, intercepts, "tanh",
                                              "softmax", 0.0)
        fused_loss, (gradient,) = fused([theta], X[:rows], Y[:rows], None)
        assert fused_loss == pytest.approx(loss, rel=1e-12)
        assert_allclose(gradient, flatten(dcoefs, dintercepts, np.float64), rtol=1e-11,
                        atol=1e-14)


def test_no_hidden_layer():
    X, Y, layer_sizes, coefs, intercepts = problem("softmax", 3, "relu", np.float64, sizes=(6,))
    loss, dcoefs, dintercepts = objective(X, Y, coefs, intercepts, "relu", "softmax", 0.1)
    fused_loss, (gradient,) = FusedObjective(layer_sizes, "relu", "softmax", 0.1, np.float64)(
        [flatten(coefs, intercepts, np.float64)], X, Y, None)
    assert fused_loss == pytest.approx(loss, rel=1e-12)
    assert_allclose(gradient, flatten(dcoefs, dintercepts, np.float64), rtol=1e-11)


def test_extreme_logits_stay_finite():
    X, Y, layer_sizes, coefs, intercepts = problem("softmax", 3, "logistic", np.float64)
    coefs[-1] *= 1e4  # saturated units, huge logits
    with np.errstate(over="ignore"):
        loss, (gradient,) = FusedObjective(layer_sizes, "logistic", "softmax", 0.0, np.float64)(
            [flatten(coefs, intercepts, np.float64)], X * 100, Y, None)
    reference = objective(X * 100, Y, coefs, intercepts, "logistic", "softmax", 0.0)[0]
    assert np.isfinite(loss) and np.isfinite(gradient).all()
    assert loss == pytest.approx(reference, rel=1e-10)


def test_small_products_train_on_one_blas_thread():
    from skbackprop._fast import blas_threads

    assert blas_threads([64, 100, 10], 200) == 1  # digits: tiny products
    assert blas_threads([50, 100, 5], 15000) == 1  # a full batch goes in blocks of 1024 rows
    assert blas_threads([100, 512, 512, 10], 256) is None  # wide layers: let BLAS decide


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_prediction_logits_equal_the_reference(activation, dtype):
    from scipy import sparse

    from skbackprop._fast import predict_logits as fast_logits
    from skbackprop._network import predict_logits

    X, _, _, coefs, intercepts = problem("softmax", 3, activation, dtype)
    expected = predict_logits(X, coefs, intercepts, activation)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    assert_allclose(fast_logits(X, coefs, intercepts, activation), expected, **tol)
    assert_allclose(fast_logits(sparse.csr_matrix(X), coefs, intercepts, activation), expected,
                    **tol)
    assert fast_logits(X, coefs, intercepts, activation).dtype == dtype
