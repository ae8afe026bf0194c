"""The network as pure functions over lists of weight arrays.

A network with hidden activation ``f`` and ``L`` weight layers computes::

    A[0] = X
    A[i] = f(A[i-1] @ W[i-1] + b[i-1])        for i = 1 .. L-1   (hidden layers)
    Z    = A[L-1] @ W[L-1] + b[L-1]                              (output logits)
    P    = softmax(Z)  or  sigmoid(Z)                            (probabilities)

``coefs[i]`` has shape ``(fan_in, fan_out)`` and ``intercepts[i]`` shape
``(fan_out,)``, as in scikit-learn's ``MLPClassifier``.

The objective (with sample weights ``s`` summing to ``S``) is::

    J = (1/S) sum_n s[n] l(Z[n], Y[n]) + alpha / (2 S) sum_i ||W[i]||_F^2

Nothing here validates input: the estimator does that, once.
"""

import numpy as np

from ._activations import ACTIVATIONS, DERIVATIVES
from ._losses import LOSSES, OUTPUTS, output_delta


def init_params(layer_sizes, activation, rng, dtype=np.float64):
    """Glorot-uniform weights and biases for a network of ``layer_sizes``.

    Each weight and bias of layer ``i`` is drawn from ``U(-r, r)`` with
    ``r = sqrt(6 / (fan_in + fan_out))``, or ``sqrt(2 / (fan_in + fan_out))``
    for the logistic activation. For each layer the weights are drawn first,
    then the biases, from ``rng`` (a ``numpy.random.RandomState``).

    Returns
    -------
    coefs, intercepts : list of ndarray
    """
    factor = 2.0 if activation == "logistic" else 6.0
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        bound = np.sqrt(factor / (fan_in + fan_out))
        W = rng.uniform(-bound, bound, (fan_in, fan_out))
        b = rng.uniform(-bound, bound, fan_out)
        coefs.append(W.astype(dtype, copy=False))
        intercepts.append(b.astype(dtype, copy=False))
    return coefs, intercepts


def forward(X, coefs, intercepts, activation):
    """Run the network on ``X``.

    Returns
    -------
    activations : list of ndarray
        ``[X, A[1], ..., A[L-1]]``: the input and each hidden layer's output,
        which is all the backward pass needs.
    Z : ndarray of shape (n_samples, n_outputs)
        The output logits.
    """
    f = ACTIVATIONS[activation]
    activations = [X]
    for W, b in zip(coefs[:-1], intercepts[:-1]):
        activations.append(f(activations[-1] @ W + b))
    Z = activations[-1] @ coefs[-1] + intercepts[-1]
    return activations, Z


def backward(activations, dZ, coefs, activation):
    """Backpropagate ``dZ = dJ/dZ`` at the output through every layer.

    The loop is the delta recursion: the error at layer ``i`` is the error at
    the layer to its right, sent back through ``W[i]`` and scaled by the
    activation's derivative. With one hidden layer (``W, b`` then ``V, c``)
    it is line for line the tutorial's four formulas: given ``dZ = P - Y``
    (the tutorial's ``Y - T``, for its summed cost) it returns them exactly;
    given the mean objective's ``dZ = (P - Y) / N``, divided by ``N``.

    Returns
    -------
    dcoefs, dintercepts : list of ndarray
        ``dJ/dW[i]`` and ``dJ/db[i]``, shaped like ``coefs`` and ``intercepts``.
    """
    f_prime = DERIVATIVES[activation]
    n_layers = len(coefs)
    dcoefs = [None] * n_layers
    dintercepts = [None] * n_layers
    for i in reversed(range(n_layers)):
        # In the comments, the tutorial's names for the one-hidden-layer case.
        dcoefs[i] = activations[i].T @ dZ  # dJ/dW[i] = A[i]^T dZ (tutorial: Z^T (Y - T))
        dintercepts[i] = dZ.sum(axis=0)  # dJ/db[i] = sum_n dZ[n] (tutorial: sum_n (Y - T))
        if i > 0:
            dA = dZ @ coefs[i].T  # the error sent left, dZ W[i]^T (tutorial: (Y - T) V^T)
            # times f' at the pre-activations, written from the output A[i]
            # (tutorial: Z(1 - Z) for its sigmoid layer Z)
            dZ = dA * f_prime(activations[i])
    return dcoefs, dintercepts


def predict_logits(X, coefs, intercepts, activation):
    """Output logits of the network on ``X``: the forward pass, keeping only
    the current layer (prediction needs no activations for a backward pass)."""
    f = ACTIVATIONS[activation]
    A = X
    for W, b in zip(coefs[:-1], intercepts[:-1]):
        A = f(A @ W + b)
    return A @ coefs[-1] + intercepts[-1]


def _sample_weights(sample_weight, n_samples, dtype):
    """``s`` and ``S``: the weights (all 1 when None) and their sum."""
    s = np.ones(n_samples, dtype=dtype) if sample_weight is None else sample_weight
    return s, s.sum()


def loss_from_logits(Z, Y, coefs, output, alpha, sample_weight=None):
    """``J = (1/S) sum_n s[n] l(Z[n], Y[n]) + alpha / (2 S) sum_i ||W[i]||_F^2``,
    from the output logits ``Z``: the objective without its gradient."""
    s, S = _sample_weights(sample_weight, Z.shape[0], Z.dtype)
    data_term = (s @ LOSSES[output](Z, Y)) / S
    if alpha == 0:  # no penalty at all: not 0 * inf = NaN once ||W||^2 overflows
        return float(data_term)
    penalty = sum(np.vdot(W, W) for W in coefs)  # sum_i ||W[i]||_F^2
    return float(data_term + alpha / (2 * S) * penalty)


def objective(X, Y, coefs, intercepts, activation, output, alpha, sample_weight=None):
    """The training objective ``J`` at the given weights, and its gradient.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
        0/1 targets: one-hot rows for ``output="softmax"``, one column per
        logistic unit for ``output="logistic"``.
    coefs, intercepts : list of ndarray
    activation : {"identity", "logistic", "tanh", "relu"}
    output : {"softmax", "logistic"}
    alpha : float
        L2 penalty on the weights (not the biases).
    sample_weight : ndarray of shape (n_samples,) or None
        ``None`` weighs every sample 1. The weights must not sum to 0.

    Returns
    -------
    loss : float
    dcoefs, dintercepts : list of ndarray
    """
    s, S = _sample_weights(sample_weight, X.shape[0], X.dtype)
    activations, Z = forward(X, coefs, intercepts, activation)
    loss = loss_from_logits(Z, Y, coefs, output, alpha, s)
    P = OUTPUTS[output](Z)
    dZ = output_delta(P, Y) * (s / S)[:, None]  # dJ/dZ[n] = s[n] (P[n] - Y[n]) / S
    dcoefs, dintercepts = backward(activations, dZ, coefs, activation)
    for i, W in enumerate(coefs):
        dcoefs[i] += (alpha / S) * W  # gradient of the penalty alpha/(2S) ||W||^2
    return loss, dcoefs, dintercepts
