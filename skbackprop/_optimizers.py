"""Update rules, each an ``init``/``update`` pair with small immutable state.

An optimizer turns gradients into *updates*: the amounts to add to the
parameters. It neither prints nor decides when to stop. The learning rate
is passed to every call, so that the training loop can follow a schedule::

    opt = sgd(momentum=0.9, nesterov=True)
    state = opt.init(params)
    for ...:
        updates, state = opt.update(grads, state, learning_rate)
        params = [p + u for p, u in zip(params, updates)]

``update`` is the reference: pure, it changes neither its arguments nor the
state. ``apply(params, grads, state, learning_rate) -> state`` computes the
same step in place, without temporaries: it adds the update to ``params``,
overwrites the state's arrays, and uses ``grads`` as its scratch space
(their values are lost: training computes new ones for the next step).
Touching one array less, and multiplying in place, saves time: a C2 fit of
the benchmark (Adam, 320,000 parameters) took 1 to 4% less than with a
scratch buffer of the optimizer's own. Training uses ``apply``; the tests
hold it equal to ``update``.

``params``, ``grads`` and ``updates`` are sequences of arrays of matching
shapes (for the network: one flat vector of all weights and biases).

This module uses NumPy only.
"""

from typing import Callable, NamedTuple

import numpy as np


class Optimizer(NamedTuple):
    """An update rule: ``init(params) -> state``,
    ``update(grads, state, learning_rate) -> (updates, state)``, and its
    in-place twin ``apply(params, grads, state, learning_rate) -> state``."""

    init: Callable
    update: Callable
    apply: Callable


def _map_arrays(state, function):
    """A state of the same kind with ``function`` applied to each of its
    arrays (the fields that are tuples, one array per parameter array);
    counters such as Adam's step are kept."""
    return type(state)(*(
        tuple(function(a) for a in field) if isinstance(field, tuple) else field
        for field in state
    ))


def copy_state(state):
    """A copy of an optimizer state whose arrays ``apply`` may overwrite."""
    return _map_arrays(state, lambda a: a.copy())


def state_slice(state, start, stop):
    """The state of the parameters ``[start:stop]`` of one flat vector:
    views of its arrays, so that ``apply`` on them updates the whole state."""
    return _map_arrays(state, lambda a: a[start:stop])


def whole_state(state, part_state):
    """The state after ``apply`` updated parts of it, each through a
    :func:`state_slice`: ``state``'s whole arrays (updated in place), with
    the counters, such as Adam's step, of ``part_state``, any one part's new
    state."""
    return type(state)(*(old if isinstance(old, tuple) else new
                         for old, new in zip(state, part_state)))


class SGDState(NamedTuple):
    """State of :func:`sgd`: one velocity array per parameter array."""

    velocity: tuple


class AdamSums(NamedTuple):
    """State of :func:`adam`: the step count, the decaying sums of the
    gradients and of their squares (Adam's two moment estimates divided by
    ``1 - beta_1`` and ``1 - beta_2``), and the betas they were summed with."""

    step: int
    grad_sum: tuple
    square_sum: tuple
    beta_1: float
    beta_2: float


class AdamState(NamedTuple):
    """The state of :func:`adam` in skbackprop 0.1.0: the step count and the
    two moment estimates themselves. Only a model saved by that version holds
    one; :func:`resume_adam` turns it into an :class:`AdamSums`."""

    step: int
    m: tuple
    v: tuple


def resume_adam(state, beta_1, beta_2):
    """The state from which :func:`adam` with ``beta_1`` and ``beta_2`` goes
    on where ``state`` left off: Adam goes on from the same moment estimates
    ``m`` and ``v``, whichever betas made them, as classic Adam would.

    An :class:`AdamSums` summed with other betas is rescaled, and 0.1.0's
    :class:`AdamState` (the moments themselves) converted, into new arrays;
    any other state is returned as it is."""
    beta_1, beta_2 = _python_float(beta_1), _python_float(beta_2)
    if isinstance(state, AdamState):
        moments, m_scale, v_scale = (state.m, state.v), 1.0, 1.0
    elif isinstance(state, AdamSums) and (state.beta_1, state.beta_2) != (beta_1, beta_2):
        moments = (state.grad_sum, state.square_sum)
        m_scale, v_scale = 1 - state.beta_1, 1 - state.beta_2  # m = (1 - beta_1) M
    else:
        return state
    return AdamSums(
        step=state.step,
        grad_sum=tuple(m * (m_scale / (1 - beta_1)) for m in moments[0]),
        square_sum=tuple(v * (v_scale / (1 - beta_2)) for v in moments[1]),
        beta_1=beta_1,
        beta_2=beta_2,
    )


def overflowed_sums(state):
    """How many of the sums of squared gradients in ``state`` are not finite
    (0 for a state other than :class:`AdamSums`). ``V`` is ``1 / (1 -
    beta_2)`` times Adam's second moment, and overflows that much sooner;
    where it is inf, the step ``M / (sqrt(V) + eps)`` is 0 for ever."""
    if not isinstance(state, AdamSums):
        return 0
    return sum(int(V.size - np.count_nonzero(np.isfinite(V))) for V in state.square_sum)


def _python_float(x):
    """``x`` as a Python float, for the scalars that multiply arrays: NumPy
    2 computes ``float32 array * numpy.float64`` in float64, and converts
    back (160,000 values: 50 µs against 6.5 µs), but takes a Python float
    at the array's precision (NumPy 1.26 did so for both). A learning rate
    from ``np.logspace``, or Adam's bias correction computed with
    ``np.sqrt``, is a NumPy float64."""
    return float(x)


def sgd(momentum=0.0, nesterov=False):
    """Gradient descent, with optional (Nesterov) momentum.

    With velocity ``v`` (zero at the start) each step computes::

        v      <- momentum * v - learning_rate * g
        update  = v                                   (classical momentum)
        update  = momentum * v - learning_rate * g    (Nesterov momentum)

    With ``momentum=0`` both reduce to the tutorial's
    ``w <- w - learning_rate * dJ/dw``.
    """
    momentum = _python_float(momentum)

    def init(params):
        return SGDState(velocity=tuple(np.zeros_like(p) for p in params))

    def update(grads, state, learning_rate):
        learning_rate = _python_float(learning_rate)
        velocity = tuple(
            momentum * v - learning_rate * g for v, g in zip(state.velocity, grads)
        )
        if nesterov:  # look ahead: apply the momentum once more, plus the gradient
            updates = tuple(momentum * v - learning_rate * g for v, g in zip(velocity, grads))
        else:
            updates = velocity
        return updates, SGDState(velocity=velocity)

    def apply(params, grads, state, learning_rate):
        learning_rate = _python_float(learning_rate)
        for p, v, g in zip(params, state.velocity, grads):
            g *= learning_rate  # lr g (g is scratch space from here on)
            v *= momentum
            v -= g  # v = momentum v - lr g
            if nesterov:
                p -= g
                np.multiply(v, momentum, out=g)
                p += g  # p += momentum v - lr g
            else:
                p += v
        return state

    return Optimizer(init, update, apply)


def adam(beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """Adam (Kingma and Ba, 2014).

    At step ``t = 1, 2, ...``::

        m      <- beta_1 m + (1 - beta_1) g
        v      <- beta_2 v + (1 - beta_2) g**2
        lr_t    = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        update  = -lr_t * m / (sqrt(v) + epsilon)

    ``lr_t`` folds both bias corrections into the step size, as
    scikit-learn's ``MLPClassifier`` does.

    The state keeps decaying *sums* instead of the averages ``m`` and ``v``:
    ``M = m / (1 - beta_1)`` and ``V = v / (1 - beta_2)``. Then each step
    reads::

        M      <- beta_1 M + g
        V      <- beta_2 V + g**2
        update  = -lr_t (1 - beta_1) / sqrt(1 - beta_2)
                  * M / (sqrt(V) + epsilon / sqrt(1 - beta_2))

    the same update, in which the factors ``1 - beta`` multiply two scalars
    once a step instead of every gradient: ``apply`` makes ten passes over
    the parameters instead of twelve (a C2 fit of the benchmark about 1.3%
    faster)."""
    beta_1, beta_2, epsilon = map(_python_float, (beta_1, beta_2, epsilon))

    def init(params):
        return AdamSums(
            step=0,
            grad_sum=tuple(np.zeros_like(p) for p in params),
            square_sum=tuple(np.zeros_like(p) for p in params),
            beta_1=beta_1,
            beta_2=beta_2,
        )

    def constants(step, learning_rate):
        """The step size and epsilon that apply to the sums at ``step``."""
        lr_t = learning_rate * np.sqrt(1 - beta_2**step) / (1 - beta_1**step)
        root = np.sqrt(1 - beta_2)  # sqrt(V) = sqrt(v) / root
        return _python_float(lr_t * (1 - beta_1) / root), _python_float(epsilon / root)

    def update(grads, state, learning_rate):
        step = state.step + 1
        M = tuple(beta_1 * M + g for M, g in zip(state.grad_sum, grads))
        V = tuple(beta_2 * V + g**2 for V, g in zip(state.square_sum, grads))
        rate, eps = constants(step, learning_rate)
        updates = tuple(-rate * M_i / (np.sqrt(V_i) + eps) for M_i, V_i in zip(M, V))
        return updates, state._replace(step=step, grad_sum=M, square_sum=V)

    def apply(params, grads, state, learning_rate):
        step = state.step + 1
        rate, eps = constants(step, learning_rate)
        for p, M, V, g in zip(params, state.grad_sum, state.square_sum, grads):
            M *= beta_1
            M += g  # M = beta_1 M + g
            g *= g  # (g is scratch space from here on)
            V *= beta_2
            V += g  # V = beta_2 V + g**2
            np.sqrt(V, out=g)
            g += eps
            np.divide(M, g, out=g)
            g *= rate
            p -= g  # p -= rate M / (sqrt(V) + eps)
        return state._replace(step=step)

    return Optimizer(init, update, apply)
