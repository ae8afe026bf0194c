"""Numerical robustness at the edges of the floating-point range.

Logits near ``+-max`` (where even their differences overflow), huge tied
logits, blocks of logits spread too far for one shift, and saturated
logistic units: the losses, probabilities and gradients stay what the
mathematics says (``inf`` only where the true value overflows, never NaN),
the fused code of ``_fast`` agrees with the reference of ``_losses`` and
``_network``, and no RuntimeWarning comes from an overflow whose result is
the intended one (``exp(-inf) = 0``). RuntimeWarnings are errors in the
tests (``pyproject.toml``), so a stray one fails.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning

from skbackprop import BackpropMLPClassifier, check_gradients
from skbackprop._fast import (
    SHIFT_SPREAD,
    FusedObjective,
    _softmax_loss_and_delta,
    flatten,
)
from skbackprop._fast import softmax as fast_softmax
from skbackprop._losses import logsumexp, softmax, softmax_cross_entropy
from skbackprop._network import init_params, objective

DTYPES = [np.float64, np.float32]


def fused_softmax_loss(Z, Y):
    """Per-sample losses and the delta ``P - Y`` of the fused code."""
    Z = Z.copy()
    column = np.empty(Z.shape[0], dtype=Z.dtype)
    _softmax_loss_and_delta(Z, Y, column, np.empty_like(Z), np.ones(Z.shape[1], dtype=Z.dtype))
    return column, Z


def one_hot(labels, n_classes, dtype):
    return np.eye(n_classes, dtype=dtype)[labels]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1e20, 1e30, "max"])
def test_the_cross_entropy_of_huge_tied_logits_is_log_2(dtype, scale):
    """The loss depends on the logits' differences only: two tied logits
    give log 2, however large. Computed as ``logsumexp(Z) - Z[y]`` the two
    huge terms cancelled to 0."""
    big = float(np.finfo(dtype).max) if scale == "max" else scale
    Z = np.array([[big, big, 0.0]], dtype=dtype)
    Y = one_hot([0], 3, dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        reference = softmax_cross_entropy(Z, Y)
    fused, delta = fused_softmax_loss(Z, Y)
    assert reference.dtype == dtype
    assert_allclose(reference, [np.log(2)], rtol=1e-6)
    assert_allclose(fused, reference, rtol=1e-6)
    assert_allclose(delta, [[-0.5, 0.5, 0.0]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_logits_spread_beyond_the_range_give_zero_inf_or_the_exact_loss(dtype):
    """Logits ``[max, -max, 0]``: their spread overflows, so the shifted
    second logit is ``-inf``. The loss is 0 for the first class, ``inf``
    (its true value, 2 max, overflows) for the second, ``max`` for the
    third; never the NaN of ``0 * -inf``, in the reference or the fused
    code, and without a warning."""
    top = float(np.finfo(dtype).max)
    Z = np.array([[top, -top, 0.0]] * 3, dtype=dtype)
    Y = one_hot([0, 1, 2], 3, dtype)
    expected = np.array([0.0, np.inf, top], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reference = softmax_cross_entropy(Z, Y)
        fused, delta = fused_softmax_loss(Z, Y)
        P = softmax(Z)
    np.testing.assert_array_equal(reference, expected)
    np.testing.assert_array_equal(fused, expected)
    np.testing.assert_array_equal(P, [[1.0, 0.0, 0.0]] * 3)
    np.testing.assert_array_equal(delta, P - Y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_of_logits_spread_beyond_the_range_does_not_warn(dtype):
    top = float(np.finfo(dtype).max)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = logsumexp(np.array([[top / 2, -top / 2], [-top, top]], dtype=dtype))
    assert_allclose(value, [top / 2, top], rtol=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", ["dense", "csr"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_fused_objective_is_finite_where_the_reference_is(dtype, kind, weighted):
    """A network without hidden layers whose logits are ``[max, -max, 0]`` or
    ``[-max, max, 0]``, spread beyond the range: every sample's true class is
    the largest logit, so each loss is 0. The fused objective took the row
    maxima (the spread is far beyond one shift) and then multiplied the 0
    targets by ``-inf``: a NaN loss, which the divergence guard would have
    taken for an explosion."""
    top = float(np.finfo(dtype).max)
    X = np.array([[top / 2], [-top / 2]] * 20, dtype=dtype)  # 40 rows
    Y = one_hot([0, 1] * 20, 3, dtype)
    coefs, intercepts = [np.array([[2.0, -2.0, 0.0]], dtype=dtype)], [np.zeros(3, dtype=dtype)]
    w = np.linspace(0.5, 1.5, 40).astype(dtype) if weighted else None
    data = sparse.csr_matrix(X) if kind == "csr" else X
    with np.errstate(over="ignore", invalid="ignore"):  # as fit runs it
        loss, dcoefs, dintercepts = objective(X, Y, coefs, intercepts, "identity", "softmax",
                                              0.0, w)
        fused_loss, (gradient,) = FusedObjective([1, 3], "identity", "softmax", 0.0, dtype)(
            [flatten(coefs, intercepts, dtype)], data, Y, w)
    assert loss == 0.0
    assert fused_loss == 0.0  # was NaN
    assert_allclose(gradient, flatten(dcoefs, dintercepts, dtype), atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_prediction_softmax_of_logits_spread_beyond_the_range(dtype):
    """From 16 rows on the prediction softmax is the fused one: rows whose
    logits' spread overflows are still probabilities, without a warning."""
    top = float(np.finfo(dtype).max)
    Z = np.array([[top, -top, 0.0], [0.0, -top, top], [1.0, 2.0, 3.0]] * 12, dtype=dtype)
    expected = softmax(Z.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P = fast_softmax(Z)
    assert_allclose(P, expected, rtol=1e-6)
    assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(P[:2], [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_block_shift_never_loses_a_row(dtype):
    """Blocks whose rows sit at very different heights, around the spread at
    which one shift gives way to the row maxima, and far beyond it: every
    row of probabilities sums to 1 and matches the reference (each row
    shifted by its own maximum), and the loss is finite."""
    rng = np.random.RandomState(0)
    spread = SHIFT_SPREAD[np.dtype(dtype)]
    for trial in range(60):
        n, k = 40, 3
        heights = rng.uniform(-1, 1, (n, 1)) * spread * (0.5 + trial / 20)
        Z = (rng.normal(size=(n, k)) + heights).astype(dtype)
        Z[0] = Z.max() + 1  # one row at the block's maximum, the others far below it
        Y = one_hot(rng.randint(0, k, n), k, dtype)
        expected_P, expected_loss = softmax(Z), softmax_cross_entropy(Z, Y)
        loss, delta = fused_softmax_loss(Z, Y)
        P = fast_softmax(Z.copy())
        tol = dict(rtol=1e-10, atol=1e-300) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-37)
        assert np.isfinite(P).all() and np.isfinite(loss).all() and np.isfinite(delta).all()
        assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)
        assert_allclose(P, expected_P, **tol)
        assert_allclose(delta + Y, expected_P, **tol)
        assert_allclose(loss, expected_loss, rtol=1e-4 if dtype == np.float32 else 1e-10,
                        atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output, n_outputs", [("softmax", 3), ("logistic", 1), ("logistic", 3)],
                         ids=["multiclass", "binary", "multilabel"])
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_the_fused_objective_equals_the_reference_at_extreme_logits(activation, output,
                                                                     n_outputs, dtype):
    """The output layer scaled by up to 1e300 (1e36 in float32): huge logits,
    saturated units. The fused objective agrees with the reference, neither
    is NaN."""
    rng = np.random.RandomState(0)
    sizes = [4, 5, n_outputs]
    X = (rng.normal(size=(40, 4)) * 30).astype(dtype)
    if output == "softmax":
        Y = one_hot(rng.randint(0, n_outputs, 40), n_outputs, dtype)
    else:
        Y = rng.randint(0, 2, (40, n_outputs)).astype(dtype)
    w = rng.uniform(0, 2, 40).astype(dtype)
    largest = 300 if dtype == np.float64 else 36
    for exponent in (0, 3, 30, largest):
        coefs, intercepts = init_params(sizes, activation, np.random.RandomState(exponent), dtype)
        coefs[-1] *= dtype(10.0**exponent)
        intercepts[-1] *= dtype(10.0**exponent)
        with np.errstate(over="ignore"):  # the reference's forward pass may overflow honestly
            loss, dcoefs, dintercepts = objective(X, Y, coefs, intercepts, activation, output,
                                                  1e-4, w)
        assert not np.isnan(loss)
        if not np.isfinite(loss):
            continue  # the penalty or a sum overflowed: nothing to compare
        fused = FusedObjective(sizes, activation, output, 1e-4, dtype)
        # as fit calls it: a saturated sigmoid's exp(-z) may overflow (to the
        # correct 0), and nothing else may warn
        with warnings.catch_warnings(), np.errstate(over="ignore"):
            warnings.simplefilter("error")
            fused_loss, (gradient,) = fused([flatten(coefs, intercepts, dtype)], X, Y, w)
        reference = flatten(dcoefs, dintercepts, dtype)
        assert fused_loss == pytest.approx(loss, rel=1e-4 if dtype == np.float32 else 1e-9)
        assert_allclose(gradient, reference, rtol=1e-3 if dtype == np.float32 else 1e-8,
                        atol=1e-6 * np.abs(reference).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_check_gradients_of_saturated_logistic_units_does_not_warn(n_classes, dtype):
    """check_gradients runs fit's fused code outside fit's np.errstate: a
    logistic unit pushed past z = -709 (-88 in float32) makes exp(-z)
    overflow, to the correct sigmoid 0, with a RuntimeWarning (an error in
    these tests)."""
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(20, 3)).astype(dtype), rng.randint(0, n_classes, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = BackpropMLPClassifier((4,), activation="logistic", max_iter=3,
                                    random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        error = check_gradients(clf, X * 1000, y)
    assert error < 1e-4


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_penalty_means_no_nan_from_weights_whose_square_overflows(dtype):
    """With ``alpha=0`` the objective has no penalty term, however large the
    weights: ``0 * ||W||^2`` was NaN once ``||W||^2`` overflowed (weights
    beyond 1.3e154, or 1.8e19 in float32), though the outputs were fine."""
    big = dtype(np.sqrt(np.finfo(dtype).max) * 2)
    X = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    Y = one_hot([0, 1], 2, dtype)
    coefs = [np.array([[1.0, -1.0], [-1.0, 1.0]], dtype=dtype),
             np.array([[1.0, 0.0], [0.0, 1.0]], dtype=dtype)]
    coefs[0] *= big  # saturates tanh: outputs +-1, logits +-1
    intercepts = [np.zeros(2, dtype=dtype), np.zeros(2, dtype=dtype)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dcoefs, dintercepts = objective(X, Y, coefs, intercepts, "tanh", "softmax", 0.0)
    assert loss == pytest.approx(np.logaddexp(0, -2.0), rel=1e-6)
    assert all(np.isfinite(g).all() for g in dcoefs + dintercepts)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fit_computes_no_penalty_either_without_alpha(dtype):
    """The fused objective of fit, on the weights of the test above: the
    same finite loss, not the NaN of ``0 * inf``."""
    big = dtype(np.sqrt(np.finfo(dtype).max) * 2)
    X = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    Y = one_hot([0, 1], 2, dtype)
    coefs = [np.array([[1.0, -1.0], [-1.0, 1.0]], dtype=dtype) * big,
             np.array([[1.0, 0.0], [0.0, 1.0]], dtype=dtype)]
    intercepts = [np.zeros(2, dtype=dtype), np.zeros(2, dtype=dtype)]
    fused = FusedObjective([2, 2, 2], "tanh", "softmax", 0.0, dtype)
    with warnings.catch_warnings(), np.errstate(over="ignore"):  # as in fit
        warnings.simplefilter("error")
        loss, (gradient,) = fused([flatten(coefs, intercepts, dtype)], X, Y, None)
    assert loss == pytest.approx(np.logaddexp(0, -2.0), rel=1e-6)
    assert np.isfinite(gradient).all()


def _fitted_relu_model():
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(30, 3)), rng.randint(0, 3, 30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BackpropMLPClassifier((4,), max_iter=5, random_state=0).fit(X, y), X, y


@pytest.mark.parametrize("spoil", ["huge input", "nan weight", "huge weight"])
def test_a_non_finite_objective_is_an_error_not_a_nan(spoil):
    """loss_gradient and check_gradients raise where the objective or its
    gradient is not finite, as predict does for non-finite outputs: they
    used to return NaN (with NumPy's warnings), and check_gradients called
    a NaN gradient a perfect match (0.0)."""
    clf, X, y = _fitted_relu_model()
    if spoil == "huge input":
        X = X.copy()
        X[0] = np.finfo(np.float64).max
    elif spoil == "nan weight":
        clf.coefs_[0][0, 0] = np.nan
    else:
        clf.coefs_[0][0, 0] = 1e200
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one clear error, no NumPy warnings first
        with pytest.raises(ValueError, match="or its gradient is not finite"):
            clf.loss_gradient(X, y)
        with pytest.raises(ValueError, match="or its gradient is not finite"):
            check_gradients(clf, X[:5], y[:5])


def test_check_gradients_around_values_that_overflow_does_not_warn():
    """Where the objective is finite at the weights but a finite difference
    around them overflows, check_gradients reports it (an error of inf), as
    loss_gradient reports the centre, without NumPy's warnings."""
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(6, 2)), np.array([0, 1, 2, 0, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = BackpropMLPClassifier((3,), activation="tanh", max_iter=2, random_state=0).fit(X, y)
    clf.coefs_[0][...] = 1.0
    huge = np.sign(X) * np.finfo(np.float64).max  # saturates every tanh unit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, _, _ = clf.loss_gradient(huge, y)
        error = check_gradients(clf, huge, y)
    assert np.isfinite(loss) and error >= 0
