"""Minibatches, epochs, learning-rate schedules, stopping rules and L-BFGS.

Training here knows nothing about labels or scikit-learn. It receives an
``objective(params, X, Y, sample_weight) -> (loss, grads)`` function and the
parameter arrays, which it updates in place, plus an optimizer from
``_optimizers`` for the minibatch solvers.
"""

from typing import Any, NamedTuple

import numpy as np
from scipy import sparse
from scipy.optimize import minimize

from ._losses import total_weight

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
    power_t: float
    #: the guard compares with the best loss of earlier runs too (partial_fit,
    #: whose calls are one stream); otherwise only with this run's epochs
    guard_carries_over: bool = False


class SolverState(NamedTuple):
    """What one call of :func:`train_minibatch` hands to the next
    (``partial_fit`` keeps it between calls)."""

    optimizer_state: Any
    learning_rate: float
    no_improvement: int  #: epochs in a row without improvement
    best: float  #: best training loss (or best validation score, with validation)
    samples_seen: float  #: training samples seen so far, each counted by its weight
    #: the rate the schedule started from; like the optimizer's state, a
    #: partial_fit stream keeps it from its first call, as MLPClassifier's
    #: does. None: start from ``learning_rate``. (States saved before this
    #: field existed unpickle with None; the estimator fills those in.)
    learning_rate_init: Any = None


class TrainingResult(NamedTuple):
    """What a run of :func:`train_minibatch` or :func:`train_lbfgs` found."""

    loss_curve: list  #: the training loss of each epoch (or L-BFGS iteration)
    validation_scores: list  #: the validation score of each epoch, if validating
    validation_losses: list  #: the validation loss of each epoch, if validating
    state: SolverState
    converged: bool  #: the stopping rule (or L-BFGS's own test) ended training
    diverged: bool  #: the loss exploded; the best parameters were restored
    stopped: bool  #: a callback asked to stop
    interrupted: bool = False  #: KeyboardInterrupt; the best parameters were restored
    restarted: bool = False  #: diverged, and the starting parameters beat the best
    #: epoch's (saved as the explosion began): they were restored
    unimproved: bool = False  #: diverged before any epoch improved: the starting ones kept
    #: diverged in the first epoch, whose first minibatch, before any step, was
    #: already past the guard's threshold: new data, or an earlier run's last step
    high_from_start: bool = False


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


def minibatch_source(X, Y, sample_weight, rows, batch_size, shuffle, rng):
    """Return ``next_epoch()``, which lists the next epoch's minibatches as
    ``(X, Y, sample_weight)`` triples.

    ``rows`` selects the training rows (None: all of them). Memory: a dense
    ``X`` that has to be reordered (shuffled, or restricted to ``rows``) is
    copied, once per epoch, into one buffer allocated once, so every
    minibatch is a contiguous view of it; otherwise minibatches are slices of
    ``X`` itself. A full batch is never shuffled: its gradient does not
    depend on the order. A sparse ``X`` is indexed batch by batch.
    """
    n_samples = X.shape[0] if rows is None else len(rows)
    reorder = shuffle and batch_size < n_samples
    buffered = not sparse.issparse(X) and (reorder or rows is not None)
    if buffered:
        buffers = [np.empty((n_samples,) + a.shape[1:], dtype=a.dtype)
                   for a in (X, Y, sample_weight) if a is not None]
    state = {"order": np.arange(n_samples), "filled": False}

    def next_epoch():
        if reorder:
            state["order"] = epoch_order(n_samples, True, rng, state["order"])
        index = state["order"] if rows is None else rows[state["order"]]
        if buffered and (reorder or not state["filled"]):
            for source, buffer in zip((X, Y, sample_weight), buffers):
                np.take(source, index, axis=0, out=buffer, mode="clip")
            state["filled"] = True
        if buffered:
            X_, Y_, *w_ = buffers
            return _slices(X_, Y_, w_[0] if w_ else None, n_samples, batch_size)
        if not reorder and rows is None:
            return _slices(X, Y, sample_weight, n_samples, batch_size)
        return [
            (X[batch], Y[batch], None if sample_weight is None else sample_weight[batch])
            for batch in minibatches(index, batch_size)
        ]

    return next_epoch


def _slices(X, Y, sample_weight, n_samples, batch_size):
    return [
        (X[s], Y[s], None if sample_weight is None else sample_weight[s])
        for s in (slice(start, start + batch_size) for start in range(0, n_samples, batch_size))
    ]


def steps_in_turn(objective, params, batches, optimizer, state, learning_rate):
    """A step on each of ``batches``: the objective's gradient, then the
    optimizer's update (in place). Returns the minibatch losses (each before
    its step) and the optimizer state."""
    losses = []
    for X, Y, w in batches:
        loss, grads = objective(params, X, Y, w)
        losses.append(loss)
        state = optimizer.apply(params, grads, state, learning_rate)
    return losses, state


def run_epoch(objective, params, batches, optimizer=None, state=None, learning_rate=None,
              batch_losses=None, steps=steps_in_turn):
    """One pass of minibatch steps; returns the epoch's loss and the optimizer state.

    The epoch's loss is the mean of the minibatch losses, each weighted by
    its batch's total sample weight (its size, without sample weights). A
    batch whose weights are all zero holds no information and is skipped.
    Without an optimizer, the pass only evaluates the loss. Each minibatch's
    loss, measured before its step, is appended to the list ``batch_losses``
    if one is given.

    ``steps`` takes the steps, with the signature and the numbers of
    :func:`steps_in_turn` (the estimator's two-shard objective gives
    ``FusedObjective.steps_in_lockstep``, whose two threads run through the
    whole epoch together).
    """
    weighed = [((X, Y, w), total_weight(X, w)) for X, Y, w in batches]
    weighed = [(batch, weight) for batch, weight in weighed if weight != 0]
    batches = [batch for batch, _ in weighed]
    if optimizer is None:
        losses = [objective(params, X, Y, w)[0] for X, Y, w in batches]
    else:
        losses, state = steps(objective, params, batches, optimizer, state, learning_rate)
    assert len(losses) == len(batches)
    if batch_losses is not None:
        batch_losses.extend(losses)
    loss_sum = weight_sum = 0.0
    for loss, (_, weight) in zip(losses, weighed):
        loss_sum += loss * weight
        weight_sum += weight
    return loss_sum / weight_sum, state


# --------------------------------------------------- schedules and stopping


def invscaling(learning_rate_init, power_t, samples_seen):
    """``MLPClassifier``'s 'invscaling' schedule: ``lr_init / (t + 1) ** power_t``
    where ``t`` counts the training samples seen so far (by weight)."""
    try:
        return learning_rate_init / (samples_seen + 1) ** power_t
    except OverflowError:  # (t + 1) ** power_t is beyond the float range: the rate is 0
        return 0.0


def no_improvement_count(value, best, count, tol, *, higher_is_better=False):
    """``MLPClassifier``'s stopping rule: an epoch counts as *no improvement*
    unless its ``value`` beats the ``best`` so far by at least ``tol``;
    training stops (or, with 'adaptive', slows down) once there are more than
    ``n_iter_no_change`` such epochs in a row.

    ``value`` is a training loss (lower is better) or, with
    ``higher_is_better``, a validation score. The comparison is written as
    ``MLPClassifier`` writes it, ``loss > best - tol`` and
    ``score < best + tol``, not as a difference with ``tol``: the two round
    differently, and validation accuracies are multiples of ``1/n_val``, so
    with a ``tol`` of such a multiple (``tol=1/n_val``: "one more sample
    right") a difference rule would count many real improvements of one
    sample as none, and stop at another epoch than ``MLPClassifier``.
    """
    if higher_is_better:
        stalled = value < best + tol
    else:
        stalled = value > best - tol
    return count + 1 if stalled else 0


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


class _Progress:
    """The bookkeeping of one :func:`train_minibatch` run: curves, the
    stopping count, the learning rate and the best parameters so far."""

    def __init__(self, state, params, validating, guard_carries_over):
        self.optimizer_state, self.learning_rate, self.count, self.best, self.samples_seen = (
            state[:5])
        self.learning_rate_init = (state.learning_rate if state.learning_rate_init is None
                                   else state.learning_rate_init)
        self.validating = validating
        # The guard's best loss: of this run's epochs, and with
        # guard_carries_over (partial_fit) of the earlier runs' too. A
        # warm_start fit may bring data the model fits far worse than the old,
        # which is no explosion; a partial_fit stream must be watched across
        # its calls, most of which are a single minibatch.
        carried = guard_carries_over and not validating  # (a validation score is no loss)
        self.guard_loss = self.start_guard_loss = self.best if carried else np.inf
        self.start_loss = np.nan  # the first minibatch's, before any step
        self.start_params = copy_params(params)
        self.best_params = self.start_params
        self.losses, self.scores, self.validation_losses = [], [], []

    def after_epoch(self, loss, params, validate, config, verbose):
        """Record an epoch; return "diverged", "converged" or None."""
        self.losses.append(loss)
        if verbose:
            print(f"Iteration {len(self.losses)}, loss = {loss:.8f}")
        if exploded(loss, self.guard_loss, params):
            restore_params(params, self.best_params)
            return "diverged"
        self.guard_loss = min(self.guard_loss, loss)
        if validate is None:  # watch the training loss
            value, improved = loss, loss < self.best
        else:  # watch the validation score
            score, validation_loss = validate(params)
            self.scores.append(score)
            self.validation_losses.append(validation_loss)
            if verbose:
                print(f"Validation score: {score:f}")
            value, improved = score, score > self.best
        self.count = no_improvement_count(
            value, self.best, self.count, config.tol, higher_is_better=validate is not None
        )
        if improved:
            self.best = value
            self.best_params = copy_params(params)
        if config.schedule == "invscaling":
            self.learning_rate = invscaling(
                self.learning_rate_init, config.power_t, self.samples_seen
            )
        if self.count > config.n_iter_no_change:
            return self._stalled(config, verbose)
        return None

    def _stalled(self, config, verbose):
        watched = "Validation score" if self.validating else "Training loss"
        message = (
            f"{watched} did not improve more than tol={config.tol:f} for "
            f"{config.n_iter_no_change} consecutive epochs."
        )
        if config.schedule == "adaptive" and self.learning_rate > ADAPTIVE_FLOOR:
            self.learning_rate /= ADAPTIVE_DIVISOR
            self.count = 0
            if verbose:
                print(f"{message} Setting learning rate to {self.learning_rate:f}")
            return None
        if verbose:
            print(f"{message} Stopping.")
        return "converged"

    @property
    def improved(self):
        """Whether an epoch improved on the best so far (and saved its parameters)."""
        return self.best_params is not self.start_params

    def recover(self, objective, params, next_epoch):
        """After a divergence, the best epoch's parameters are restored; but
        they were saved at the end of that epoch, when the explosion may have
        begun. Keep whichever of them and the starting parameters has the
        lower training loss; return whether that is the starting ones."""
        if not self.improved:  # the best parameters are the starting ones: nothing to compare
            return True
        best_epoch_loss, _ = run_epoch(objective, params, next_epoch())
        start_loss, _ = run_epoch(objective, self.start_params, next_epoch())
        if np.isfinite(best_epoch_loss) and best_epoch_loss <= start_loss:
            return False
        restore_params(params, self.start_params)
        return True

    def result(self, outcome, restarted=False):
        state = SolverState(self.optimizer_state, self.learning_rate, self.count, self.best,
                            self.samples_seen, self.learning_rate_init)
        return TrainingResult(
            self.losses, self.scores, self.validation_losses, state,
            converged=outcome == "converged", diverged=outcome == "diverged",
            stopped=outcome == "stopped", interrupted=outcome == "interrupted",
            restarted=restarted,
            unimproved=outcome == "diverged" and not self.improved,
            high_from_start=(outcome == "diverged" and len(self.losses) == 1
                             and np.isfinite(self.start_guard_loss)  # carried from earlier
                             and exploded(self.start_loss, self.start_guard_loss, [])),
        )


def train_minibatch(
    objective, params, X, Y, sample_weight, optimizer, config, state, rng,
    *, rows=None, validate=None, hooks=None, verbose=False, steps=steps_in_turn,
):
    """Run up to ``config.max_iter`` epochs of minibatch descent on ``params``, in place.

    Parameters
    ----------
    objective : callable
        ``objective(params, X, Y, sample_weight) -> (loss, grads)``.
    params : list of ndarray
        Updated in place.
    X, Y, sample_weight : arrays (``X`` may be sparse, ``sample_weight`` None)
    optimizer : Optimizer
    config : MinibatchConfig
    state : SolverState
        Where the previous run stopped, or a fresh state.
    rng : numpy.random.RandomState
        Shuffles the samples.
    rows : ndarray of int or None
        The rows of ``X`` to train on (None: all).
    validate : callable or None
        ``validate(params) -> (score, loss)`` on held-out data. When given,
        the stopping rule watches the score (higher is better) instead of the
        training loss, and the best-scoring parameters are restored at the end.
    hooks : object or None
        ``hooks.begin(epoch)`` and ``hooks.end(epoch, params) -> stop`` around
        every epoch; a true ``stop`` ends training after that epoch.
    verbose : bool
        Print the loss (and validation score) of each epoch.
    steps : callable
        Takes each epoch's steps (see :func:`run_epoch`).

    Returns
    -------
    TrainingResult
        A ``KeyboardInterrupt`` ends training too: the parameters of the best
        epoch so far are restored and the result says ``interrupted``.
    """
    next_epoch = minibatch_source(X, Y, sample_weight, rows, config.batch_size, config.shuffle, rng)
    # Samples count by weight, so that integer weights act like repeated rows
    # (in the 'invscaling' schedule too).
    if sample_weight is not None:
        epoch_weight = float((sample_weight if rows is None else sample_weight[rows]).sum())
    else:
        epoch_weight = X.shape[0] if rows is None else len(rows)
    progress = _Progress(state, params, validate is not None, config.guard_carries_over)
    outcome = None
    try:
        for epoch in range(config.max_iter):
            if hooks is not None:
                hooks.begin(epoch)
            first_losses = [] if epoch == 0 else None
            loss, progress.optimizer_state = run_epoch(
                objective, params, next_epoch(), optimizer, progress.optimizer_state,
                progress.learning_rate, batch_losses=first_losses, steps=steps,
            )
            if first_losses:  # at the starting weights: tells a divergence what it was
                progress.start_loss = first_losses[0]
            progress.samples_seen += epoch_weight
            outcome = progress.after_epoch(loss, params, validate, config, verbose)
            if hooks is not None and hooks.end(epoch, params) and outcome is None:
                outcome = "stopped"
            if outcome is not None:
                break
    except KeyboardInterrupt:
        restore_params(params, progress.best_params)
        outcome = "interrupted"
    if validate is not None:
        restore_params(params, progress.best_params)
    restarted = outcome == "diverged" and progress.recover(objective, params, next_epoch)
    if outcome == "diverged":  # the optimizer's memory (momentum, moments) exploded with
        progress.optimizer_state = optimizer.init(params)  # the weights: forget it
    return progress.result(outcome, restarted)


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
    is recorded, and ``hooks`` are called around each iteration: ``begin``
    at its first evaluation of the objective, ``end`` when it completes (a
    true ``hooks.end`` stops the optimiser), ``close`` for an iteration
    that never completed.
    """
    iteration_open = []  # [True] between an iteration's first evaluation and its end

    def fun(vector):
        if hooks is not None and not iteration_open:
            hooks.begin(len(losses))
            iteration_open.append(True)
        loss, grads = objective(unpack(vector, params), X, Y, sample_weight)
        return loss, pack(grads)

    losses = []
    stop_requested = []
    best = {"loss": np.inf, "x": pack(params)}

    def on_iteration(intermediate_result):
        losses.append(float(intermediate_result.fun))
        if losses[-1] < best["loss"]:
            best["loss"], best["x"] = losses[-1], intermediate_result.x.copy()
        if verbose:
            print(f"Iteration {len(losses)}, loss = {losses[-1]:.8f}")
        if hooks is not None:
            iteration_open.clear()
            if hooks.end(len(losses) - 1, unpack(intermediate_result.x, params)):
                stop_requested.append(True)
                raise StopIteration  # scipy ends the optimisation after this iteration

    start = best["x"]
    try:
        result = minimize(
            fun, start, method="L-BFGS-B", jac=True, callback=on_iteration,
            options={"maxiter": max_iter, "maxfun": max_fun, "gtol": tol},
        )
    except KeyboardInterrupt:  # keep the best iterate so far
        restore_params(params, unpack(best["x"], params))
        state = SolverState(None, None, 0, best["loss"], 0)
        return TrainingResult(losses, [], [], state, False, False, False, interrupted=True)
    finally:
        if iteration_open:  # evaluated, but stopped (max_fun, an interrupt) before its end
            hooks.close()
    diverged = not (np.isfinite(result.fun) and np.isfinite(result.x).all())
    restore_params(params, unpack(start if diverged else result.x, params))
    state = SolverState(None, None, 0, min(losses, default=np.inf), 0)
    return TrainingResult(
        losses, [], [], state, converged=bool(result.success), diverged=diverged,
        stopped=bool(stop_requested),
    )
