"""Minibatches, epochs and the stopping rule.

Training here knows nothing about labels or scikit-learn: it receives an
``objective(params, X, Y) -> (loss, grads)`` function, the parameter arrays
(which it updates in place), and an optimizer from ``_optimizers``.
"""

from typing import NamedTuple

import numpy as np


class TrainingResult(NamedTuple):
    """What a run of :func:`train_minibatch` found."""

    loss_curve: list  #: mean objective over each epoch, one value per epoch
    best_loss: float  #: the lowest value in ``loss_curve`` (or the one passed in)
    converged: bool  #: True when the stopping rule ended training
    diverged: bool  #: True when an epoch's loss was not finite


def epoch_order(n_samples, shuffle, rng, previous):
    """The sample order of the next epoch.

    Like ``MLPClassifier``, each epoch permutes the previous epoch's order
    (``previous[rng.permutation(n)]``), so that with the same ``random_state``
    both visit the samples in the same order. Without shuffling the order is
    ``0 .. n-1`` every epoch.
    """
    if not shuffle:
        return previous
    return previous[rng.permutation(n_samples)]


def minibatches(order, batch_size):
    """Split one epoch's sample order into consecutive minibatches of indices."""
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def no_improvement_count(loss, best_loss, count, tol):
    """``MLPClassifier``'s stopping rule: an epoch counts as *no improvement*
    unless its loss is below the best so far by more than ``tol``; training
    stops once there are more than ``n_iter_no_change`` such epochs in a row."""
    return count + 1 if loss > best_loss - tol else 0


def train_minibatch(
    objective,
    params,
    X,
    Y,
    optimizer,
    *,
    batch_size,
    max_iter,
    shuffle,
    rng,
    tol,
    n_iter_no_change,
    best_loss=np.inf,
    verbose=False,
):
    """Run up to ``max_iter`` epochs of minibatch descent, updating ``params`` in place.

    Each step evaluates ``objective`` on one minibatch (the objective's mean
    form, so its scale does not depend on the batch size) and adds the
    optimizer's updates to ``params``. An epoch's reported loss is the
    batch-size weighted mean of its minibatch losses, as ``MLPClassifier``
    reports it.

    Training stops early when the stopping rule fires (``converged``) or when
    an epoch's loss is not finite (``diverged``); the caller decides what
    either means.
    """
    n_samples = X.shape[0]
    state = optimizer.init(params)
    order = np.arange(n_samples)
    loss_curve = []
    count = 0
    for epoch in range(max_iter):
        order = epoch_order(n_samples, shuffle, rng, order)
        total = 0.0
        for batch in minibatches(order, batch_size):
            loss, grads = objective(params, X[batch], Y[batch])
            updates, state = optimizer.update(grads, state)
            for p, u in zip(params, updates):
                p += u
            total += loss * len(batch)
        epoch_loss = total / n_samples
        loss_curve.append(epoch_loss)
        if verbose:
            print(f"Iteration {epoch + 1}, loss = {epoch_loss:.8f}")
        if not np.isfinite(epoch_loss):
            return TrainingResult(loss_curve, best_loss, converged=False, diverged=True)
        count = no_improvement_count(epoch_loss, best_loss, count, tol)
        best_loss = min(best_loss, epoch_loss)
        if count > n_iter_no_change:
            if verbose:
                print(
                    f"Training loss did not improve more than tol={tol:f} "
                    f"for {n_iter_no_change} consecutive epochs. Stopping."
                )
            return TrainingResult(loss_curve, best_loss, converged=True, diverged=False)
    return TrainingResult(loss_curve, best_loss, converged=False, diverged=False)
