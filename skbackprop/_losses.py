"""Output layers, their losses, and the output delta ``P - Y``.

The network's last layer produces *logits* ``Z``. An output function turns
them into probabilities ``P``; the loss compares ``Z`` with the targets ``Y``
(0/1 indicator rows). Each loss is computed from the logits, never as
``log(P)``, so that it is finite however confident the network is.

Both pairs below are canonical links: the derivative of the per-sample loss
with respect to the logits is ``P - Y``. That one fact, the tutorial's "the
error at ``y`` is always ``y - t``", is :func:`output_delta`.

This module uses NumPy only.
"""

import numpy as np

from ._activations import logistic


def total_weight(X, sample_weight):
    """``S``, the denominator of a batch's mean loss: its number of rows, or
    its total sample weight."""
    return X.shape[0] if sample_weight is None else float(sample_weight.sum())


def _row_max_and_shifted(Z):
    """Each row's maximum, and ``Z`` minus it: every value at most 0, so that
    no ``exp`` overflows.

    Where a row spreads beyond the dtype's range (logits near ``+-max``), the
    difference overflows to ``-inf``, whose ``exp`` is the correct 0: that
    overflow is the intended result, and is not warned about.
    """
    Z_max = Z.max(axis=1, keepdims=True)
    with np.errstate(over="ignore"):
        return Z_max, Z - Z_max


def logsumexp(Z):
    """Row-wise ``log(sum(exp(Z)))``, shifted by the row maximum so that no
    ``exp`` overflows."""
    Z_max, shifted = _row_max_and_shifted(Z)
    return (Z_max + np.log(np.exp(shifted).sum(axis=1, keepdims=True)))[:, 0]


def softmax(Z):
    """Row-wise softmax ``exp(Z) / sum(exp(Z))``, with the row maximum
    subtracted first (it cancels, and keeps every ``exp`` at most 1)."""
    E = np.exp(_row_max_and_shifted(Z)[1])
    return E / E.sum(axis=1, keepdims=True)


def softmax_cross_entropy(Z, Y):
    """Per-sample multiclass cross-entropy ``-sum_k Y[n, k] log P[n, k]``.

    With ``log P = Z - logsumexp(Z)`` and one-hot rows of ``Y`` this is
    ``logsumexp(Z[n]) - sum_k Y[n, k] Z[n, k]``: no ``log(0)`` can occur.

    Both terms are taken of the logits less their row maximum ``m``, as
    ``logsumexp(Z[n] - m) - sum_k Y[n, k] (Z[n, k] - m)``: the loss depends
    only on the differences of the logits, and huge logits (``[1e20, 1e20]``,
    loss ``log 2``) would otherwise cancel to nothing. A logit so far below
    its row's maximum that the difference overflows to ``-inf`` has
    probability 0: it costs ``inf`` for its own class, and nothing for the
    others (not the ``0 * inf = NaN`` of a plain product).
    """
    _, shifted = _row_max_and_shifted(Z)
    target = np.multiply(Y, shifted, out=np.zeros_like(shifted), where=Y != 0).sum(axis=1)
    return logsumexp(shifted) - target


def binary_log_loss(Z, Y):
    """Per-sample binary log-loss ``-[y log p + (1 - y) log(1 - p)]``, summed
    over output columns.

    With ``p = sigmoid(z)`` this equals ``log(1 + exp(z)) - y z``, which
    ``logaddexp(0, z)`` computes without overflow.
    """
    return (np.logaddexp(0, Z) - Y * Z).sum(axis=1)


def output_delta(P, Y):
    """``dl/dZ = P - Y`` for both losses here.

    Softmax with cross-entropy, and the sigmoid with binary log-loss, are
    canonical-link pairs: the Jacobian of the output function cancels against
    the derivative of the loss, leaving the tutorial's ``Y - T``.
    """
    return P - Y


#: Probabilities from logits, by output activation name.
OUTPUTS = {"softmax": softmax, "logistic": logistic}

#: Per-sample loss from logits and 0/1 targets, by output activation name.
LOSSES = {"softmax": softmax_cross_entropy, "logistic": binary_log_loss}
