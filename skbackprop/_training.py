"""Minibatches, epochs, learning-rate schedules, stopping rules and L-BFGS.

Training here knows nothing about labels or scikit-learn. It receives an
``objective(params, X, Y, sample_weight) -> (loss, grads)`` function and the
parameter arrays, which it updates in place, plus an optimizer from
``_optimizers`` for the minibatch solvers.
"""

from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import minimize

#: 'adaptive' divides the learning rate by 5 each time training stalls ...
ADAPTIVE_DIVISOR = 5.0
#: ... until it falls to this value; the next stall ends training.
ADAPTIVE_FLOOR = 1e-6
#: The divergence guard: an epoch whose loss exceeds EXPLOSION_FACTOR times
#: the best loss so far (or EXPLOSION_FACTOR, if the best loss is below 1)
#: has exploded.
EXPLOSION_FACTOR = 100.0


class MinibatchConfig(NamedTuple):
    """The settings of :func:`train_minibatch`, fixed for a whole run."""

    batch_size: int
    max_iter: int
    shuffle: bool
    tol: float
    n_iter_no_change: float
    schedule: str  #: "constant", "invscaling" or "adaptive"
    learning_rate_init: float
    power_t: float


class SolverState(NamedTuple):
    """What one call of :func:`train_minibatch` hands to the next
    (``partial_fit`` keeps it between calls)."""

    optimizer_state: Any
    learning_rate: float
    no_improvement: int  #: epochs in a row without improvement
    best: float  #: best training loss (or best validation score, with validation)
    samples_seen: float  #: training samples seen so far, each counted by its weight


class TrainingResult(NamedTuple):
    """What a run of :func:`train_minibatch` or :func:`train_lbfgs` found."""

    loss_curve: list  #: the training loss of each epoch (or L-BFGS iteration)
    validation_scores: list  #: the validation score of each epoch, if validating
    validation_losses: list  #: the validation loss of each epoch, if validating
    state: SolverState
    converged: bool  #: the stopping rule (or L-BFGS's own test) ended training
    diverged: bool  #: the loss exploded; the best parameters were restored
    stopped: bool  #: a callback asked to stop


# ------------------------------------------------------------------ epochs


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


def run_epoch(objective, params, X, Y, sample_weight, optimizer, state, learning_rate, batches):
    """One pass of minibatch steps; returns the epoch's loss and the optimizer state.

    The epoch's loss is the mean of the minibatch losses, each weighted by
    its batch's total sample weight (its size, without sample weights). A
    batch whose weights are all zero holds no information and is skipped.
    """
    total_loss = total_weight = 0.0
    for batch in batches:
        w = None if sample_weight is None else sample_weight[batch]
        weight = len(batch) if w is None else float(w.sum())
        if weight == 0:
            continue
        loss, grads = objective(params, X[batch], Y[batch], w)
        updates, state = optimizer.update(grads, state, learning_rate)
        for p, u in zip(params, updates):
            p += u
        total_loss += loss * weight
        total_weight += weight
    return total_loss / total_weight, state


# --------------------------------------------------- schedules and stopping


def invscaling(learning_rate_init, power_t, samples_seen):
    """``MLPClassifier``'s 'invscaling' schedule: ``lr_init / (t + 1) ** power_t``
    where ``t`` counts the training samples seen so far (by weight)."""
    return learning_rate_init / (samples_seen + 1) ** power_t


def no_improvement_count(improvement, count, tol):
    """``MLPClassifier``'s stopping rule: an epoch counts as *no improvement*
    unless it beats the best so far by more than ``tol``; training stops (or,
    with 'adaptive', slows down) once there are more than ``n_iter_no_change``
    such epochs in a row."""
    return count + 1 if improvement < tol else 0


def exploded(loss, best_loss, params):
    """The divergence guard: the loss (or a parameter) is not finite, or the
    loss is more than ``EXPLOSION_FACTOR`` times the best loss so far (floored
    at 1)."""
    if not np.isfinite(loss) or not all(np.isfinite(p).all() for p in params):
        return True
    return loss > EXPLOSION_FACTOR * max(best_loss, 1.0)


def copy_params(params):
    return [p.copy() for p in params]


def restore_params(params, saved):
    for p, s in zip(params, saved):
        p[...] = s


# ------------------------------------------------------ minibatch training


def train_minibatch(
    objective,
    params,
    X,
    Y,
    sample_weight,
    optimizer,
    config,
    state,
    rng,
    *,
    validate=None,
    hooks=None,
    verbose=False,
):
    """Run up to ``config.max_iter`` epochs of minibatch descent on ``params``, in place.

    Parameters
    ----------
    objective : callable
        ``objective(params, X, Y, sample_weight) -> (loss, grads)``.
    params : list of ndarray
        Updated in place.
    X, Y, sample_weight : ndarray (``sample_weight`` may be None)
    optimizer : Optimizer
    config : MinibatchConfig
    state : SolverState
        Where the previous run stopped, or a fresh state.
    rng : numpy.random.RandomState
        Shuffles the samples.
    validate : callable or None
        ``validate(params) -> (score, loss)`` on held-out data. When given,
        the stopping rule watches the score (higher is better) instead of the
        training loss, and the best-scoring parameters are restored at the end.
    hooks : object or None
        ``hooks.begin(epoch)`` and ``hooks.end(epoch, params) -> stop`` around
        every epoch; a true ``stop`` ends training after that epoch.
    verbose : bool
        Print the loss (and validation score) of each epoch.

    Returns
    -------
    TrainingResult
    """
    n_samples = X.shape[0]
    # Samples count by weight, so that integer weights act like repeated rows
    # (in the 'invscaling' schedule too).
    epoch_weight = n_samples if sample_weight is None else float(sample_weight.sum())
    optimizer_state, learning_rate, count, best, samples_seen = state
    best_params = copy_params(params)
    best_loss = best if validate is None else np.inf
    order = np.arange(n_samples)
    losses, scores, validation_losses = [], [], []
    converged = diverged = stopped = False
    for epoch in range(config.max_iter):
        if hooks is not None:
            hooks.begin(epoch)
        order = epoch_order(n_samples, config.shuffle, rng, order)
        batches = minibatches(order, config.batch_size)
        loss, optimizer_state = run_epoch(
            objective, params, X, Y, sample_weight, optimizer, optimizer_state,
            learning_rate, batches,
        )
        samples_seen += epoch_weight
        losses.append(loss)
        if verbose:
            print(f"Iteration {len(losses)}, loss = {loss:.8f}")
        if exploded(loss, best_loss, params):
            restore_params(params, best_params)
            diverged = True
            break
        if validate is None:  # watch the training loss
            count = no_improvement_count(best - loss, count, config.tol)
            if loss < best:
                best = best_loss = loss
                best_params = copy_params(params)
        else:  # watch the validation score; remember the best weights
            score, validation_loss = validate(params)
            scores.append(score)
            validation_losses.append(validation_loss)
            if verbose:
                print(f"Validation score: {score:f}")
            count = no_improvement_count(score - best, count, config.tol)
            best_loss = min(best_loss, loss)
            if score > best:
                best = score
                best_params = copy_params(params)
        if config.schedule == "invscaling":
            learning_rate = invscaling(config.learning_rate_init, config.power_t, samples_seen)
        if count > config.n_iter_no_change:
            watched = "Validation score" if validate else "Training loss"
            message = (
                f"{watched} did not improve more than tol={config.tol:f} for "
                f"{config.n_iter_no_change} consecutive epochs."
            )
            if config.schedule == "adaptive" and learning_rate > ADAPTIVE_FLOOR:
                learning_rate /= ADAPTIVE_DIVISOR
                count = 0
                if verbose:
                    print(f"{message} Setting learning rate to {learning_rate:f}")
            else:
                if verbose:
                    print(f"{message} Stopping.")
                converged = True
        if hooks is not None and hooks.end(epoch, params):
            stopped = True
        if converged or stopped:
            break
    if validate is not None:
        restore_params(params, best_params)
    state = SolverState(optimizer_state, learning_rate, count, best, samples_seen)
    return TrainingResult(losses, scores, validation_losses, state, converged, diverged, stopped)


# ----------------------------------------------------------------- L-BFGS


def pack(arrays):
    """One flat float64 vector of all the arrays, in order."""
    return np.concatenate([a.ravel() for a in arrays]).astype(np.float64, copy=False)


def unpack(vector, like):
    """Arrays shaped (and typed) like ``like``, read in order from ``vector``."""
    arrays, start = [], 0
    for a in like:
        arrays.append(vector[start : start + a.size].reshape(a.shape).astype(a.dtype, copy=False))
        start += a.size
    return arrays


def train_lbfgs(
    objective, params, X, Y, sample_weight, *, max_iter, max_fun, tol, hooks=None, verbose=False
):
    """Minimise the full-batch objective with ``scipy.optimize``'s L-BFGS-B, in place.

    ``max_iter`` bounds the iterations and ``max_fun`` the evaluations of the
    objective; ``tol`` is L-BFGS-B's ``gtol``. The loss after each iteration
    is recorded, and ``hooks`` are called around each iteration as it
    completes (a true ``hooks.end`` stops the optimiser).
    """

    def fun(vector):
        loss, grads = objective(unpack(vector, params), X, Y, sample_weight)
        return loss, pack(grads)

    losses = []
    stop_requested = []

    def on_iteration(intermediate_result):
        losses.append(float(intermediate_result.fun))
        if verbose:
            print(f"Iteration {len(losses)}, loss = {losses[-1]:.8f}")
        if hooks is not None:
            hooks.begin(len(losses) - 1)
            if hooks.end(len(losses) - 1, unpack(intermediate_result.x, params)):
                stop_requested.append(True)
                raise StopIteration  # scipy ends the optimisation after this iteration

    start = pack(params)
    result = minimize(
        fun, start, method="L-BFGS-B", jac=True, callback=on_iteration,
        options={"maxiter": max_iter, "maxfun": max_fun, "gtol": tol},
    )
    diverged = not (np.isfinite(result.fun) and np.isfinite(result.x).all())
    restore_params(params, unpack(start if diverged else result.x, params))
    state = SolverState(None, None, 0, min(losses, default=np.inf), 0)
    return TrainingResult(
        losses, [], [], state, converged=bool(result.success), diverged=diverged,
        stopped=bool(stop_requested),
    )
