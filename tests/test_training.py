import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils import shuffle as sklearn_shuffle

from skbackprop._optimizers import sgd
from skbackprop._training import (
    epoch_order,
    minibatches,
    no_improvement_count,
    train_minibatch,
)


def test_minibatches_cover_every_sample_once_in_order():
    order = np.random.RandomState(0).permutation(23)
    batches = minibatches(order, 5)
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    assert_array_equal(np.concatenate(batches), order)


def test_epoch_order_without_shuffling_is_unchanged():
    previous = np.arange(10)
    assert epoch_order(10, False, np.random.RandomState(0), previous) is previous


def test_epoch_order_matches_scikit_learns_shuffle_sequence():
    ours, theirs = np.arange(12), np.arange(12)
    rng_ours, rng_theirs = np.random.RandomState(5), np.random.RandomState(5)
    for _ in range(3):
        ours = epoch_order(12, True, rng_ours, ours)
        theirs = sklearn_shuffle(theirs, random_state=rng_theirs)
        assert_array_equal(ours, theirs)


def test_no_improvement_rule():
    assert no_improvement_count(1.0, 2.0, 3, tol=0.5) == 0  # improved by 1 > tol
    assert no_improvement_count(1.6, 2.0, 3, tol=0.5) == 4  # improved by only 0.4
    assert no_improvement_count(2.5, 2.0, 0, tol=0.0) == 1  # got worse


def quadratic_problem():
    """Least squares in one parameter: the mean of (w - y_n)**2 / 2 is
    minimised at w = mean(y)."""
    Y = np.arange(10.0)[:, None]
    X = np.zeros((10, 1))

    def objective(params, X_batch, Y_batch):
        residual = params[0] - Y_batch[:, 0]
        return float(np.mean(residual**2) / 2), [np.array([residual.mean()])]

    return objective, X, Y


def test_full_batch_training_reaches_the_minimum_and_stops():
    objective, X, Y = quadratic_problem()
    params = [np.array([20.0])]
    result = train_minibatch(
        objective, params, X, Y, sgd(0.5), batch_size=10, max_iter=500,
        shuffle=False, rng=np.random.RandomState(0), tol=1e-10, n_iter_no_change=3,
    )
    assert params[0][0] == pytest.approx(4.5, abs=1e-4)
    assert result.converged and not result.diverged
    assert len(result.loss_curve) < 500
    assert result.best_loss == min(result.loss_curve)
    # The loss after the last update was computed before it: curve[k] is
    # the loss at the weights that epoch k started from.
    assert result.loss_curve[0] == pytest.approx(np.mean((20.0 - Y) ** 2) / 2)


def test_epoch_loss_is_the_batch_size_weighted_mean():
    objective, X, Y = quadratic_problem()
    params = [np.array([0.0])]
    # lr = 0: nothing moves, so every batch is evaluated at w = 0.
    result = train_minibatch(
        objective, params, X, Y, sgd(0.0), batch_size=4, max_iter=1,
        shuffle=True, rng=np.random.RandomState(0), tol=0.0, n_iter_no_change=10,
    )
    assert result.loss_curve == [pytest.approx(np.mean(Y**2) / 2)]
    assert not result.converged


def test_non_finite_loss_is_reported_as_divergence():
    objective, X, Y = quadratic_problem()
    params = [np.array([1.0])]
    with np.errstate(over="ignore", invalid="ignore"):
        result = train_minibatch(
            objective, params, X, Y, sgd(10.0), batch_size=10, max_iter=1000,
            shuffle=False, rng=np.random.RandomState(0), tol=0.0, n_iter_no_change=10**6,
        )
    assert result.diverged and not result.converged
    assert not np.isfinite(result.loss_curve[-1])
    assert len(result.loss_curve) < 1000


def test_verbose_prints_each_epoch(capsys):
    objective, X, Y = quadratic_problem()
    train_minibatch(
        objective, [np.array([1.0])], X, Y, sgd(0.1), batch_size=10, max_iter=2,
        shuffle=False, rng=np.random.RandomState(0), tol=0.0, n_iter_no_change=10,
        verbose=True,
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Iteration 1, loss = ")
    assert lines[1].startswith("Iteration 2, loss = ")
    assert_allclose(float(lines[0].split("=")[1]), np.mean((1.0 - Y) ** 2) / 2, rtol=1e-7)
