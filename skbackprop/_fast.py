"""The fused training objective: ``_network.objective``, computed in place.

This is the same mathematics as the reference functions in ``_network``
(``forward``, ``backward``, ``objective``), line for line, with three
changes that make training fast and nothing else:

* all weights and biases live in one flat vector ``theta`` (weights first,
  then biases, layer by layer), so that an optimizer step is a few
  whole-array operations, and the gradient is one flat vector too;
* every activation, delta and gradient is written into a buffer allocated
  once and reused by every minibatch (``out=`` and in-place ufuncs);
* a large batch is processed in blocks of ``block_rows`` rows whose
  gradients are summed: skinny matrix products run faster on blocks that
  fit in cache, and the activations of a full batch never exist at once.

``tests/test_fast.py`` holds it equal to ``_network.objective``. Dense ``X``
only; sparse data trains through the reference functions.
"""

import numpy as np

from ._losses import LOSSES

#: Rows per block of a large batch (a full batch of gradient descent, say).
#: On the benchmark machine 512 to 2048 were equally fast, a whole 15000-row
#: batch 25% slower.
BLOCK_ROWS = 1024

#: Below this many multiply-adds per block (rows times the weights of all
#: layers), matrix products are too small to gain from a second BLAS thread,
#: and lose much to it on a busy machine: training then uses one thread.
ONE_THREAD_WORK = 2e7


def blas_threads(layer_sizes, batch_size):
    """How many BLAS threads training should use: 1 for small products,
    None (the library's default) for large ones."""
    rows = min(batch_size, BLOCK_ROWS)
    work = rows * sum(a * b for a, b in zip(layer_sizes[:-1], layer_sizes[1:]))
    return 1 if work < ONE_THREAD_WORK else None


def flat_layout(layer_sizes):
    """Where each layer's weights and biases sit in the flat vector.

    Returns ``(coef_slots, intercept_slots, n_params)``: lists of
    ``(start, stop, shape)``, weights of every layer first, then the biases,
    so that all the weights form one contiguous block ``theta[:n_weights]``.
    """
    shapes = list(zip(layer_sizes[:-1], layer_sizes[1:]))
    coef_slots, intercept_slots, start = [], [], 0
    for fan_in, fan_out in shapes:
        coef_slots.append((start, start + fan_in * fan_out, (fan_in, fan_out)))
        start += fan_in * fan_out
    for _, fan_out in shapes:
        intercept_slots.append((start, start + fan_out, (fan_out,)))
        start += fan_out
    return coef_slots, intercept_slots, start


def flat_views(theta, layer_sizes):
    """``coefs`` and ``intercepts`` as views into the flat vector ``theta``."""
    coef_slots, intercept_slots, _ = flat_layout(layer_sizes)
    coefs = [theta[a:b].reshape(shape) for a, b, shape in coef_slots]
    intercepts = [theta[a:b].reshape(shape) for a, b, shape in intercept_slots]
    return coefs, intercepts


def flatten(coefs, intercepts, dtype):
    """A new flat vector holding copies of ``coefs`` and ``intercepts``."""
    return np.concatenate([a.ravel() for a in coefs + intercepts]).astype(dtype, copy=False)


# Each activation applied in place to the pre-activation Z, and each
# derivative (from the output A) multiplied in place into the error dA.
# ``scratch`` is a buffer shaped like A.


def _relu(Z):
    np.maximum(Z, 0, out=Z)


def _tanh(Z):
    np.tanh(Z, out=Z)


def _logistic(Z):
    # 1 / (1 + exp(-z)): accurate in both tails; exp(-z) may overflow to inf
    # for z < -709, giving the correct 0 (the caller ignores the warning).
    np.negative(Z, out=Z)
    np.exp(Z, out=Z)
    Z += 1
    np.reciprocal(Z, out=Z)


def _identity(Z):
    pass


def _relu_times(dA, A, scratch):
    np.greater(A, 0, out=scratch)  # step(A), as 0.0/1.0: a multiply beats a boolean mask
    dA *= scratch


def _tanh_times(dA, A, scratch):
    np.multiply(A, A, out=scratch)
    np.subtract(1, scratch, out=scratch)  # 1 - A**2
    dA *= scratch


def _logistic_times(dA, A, scratch):
    np.subtract(1, A, out=scratch)
    scratch *= A  # A (1 - A)
    dA *= scratch


def _identity_times(dA, A, scratch):
    pass


IN_PLACE_ACTIVATIONS = {"relu": _relu, "tanh": _tanh, "logistic": _logistic, "identity": _identity}
IN_PLACE_DERIVATIVES = {
    "relu": _relu_times, "tanh": _tanh_times, "logistic": _logistic_times,
    "identity": _identity_times,
}


def predict_logits(X, coefs, intercepts, activation):
    """The output logits, as ``_network.predict_logits`` computes them, with
    each layer's bias and activation applied in place: one new array per
    layer instead of three (which matters for large ``X``). Every call
    allocates its own arrays, so concurrent predictions share nothing."""
    activate = IN_PLACE_ACTIVATIONS[activation]
    A = X
    with np.errstate(over="ignore"):  # exp(-z) -> inf gives the correct sigmoid 0
        for i, (W, b) in enumerate(zip(coefs, intercepts)):
            Z = A @ W
            Z += b
            if i < len(coefs) - 1:
                activate(Z)
            A = Z
    return A


def _softmax_loss_and_delta(Z, Y, column, scratch):
    """Per-sample cross-entropy into ``column``; ``Z`` becomes ``P - Y``.

    One fused pass over the logits: with ``Z`` shifted by its row maximum,
    ``l = log(sum(exp(Z))) - sum(Y Z)`` (log-sum-exp, never ``log(0)``), and
    ``exp(Z) / sum(exp(Z)) - Y`` is the softmax-cross-entropy delta.
    """
    np.maximum.reduce(Z, axis=1, out=column)
    Z -= column[:, None]
    np.multiply(Y, Z, out=scratch)
    target_logit = np.add.reduce(scratch, axis=1)
    np.exp(Z, out=Z)
    np.add.reduce(Z, axis=1, out=column)
    Z /= column[:, None]
    np.log(column, out=column)
    column -= target_logit
    Z -= Y  # P - Y: the canonical-link shortcut


def _logistic_loss_and_delta(Z, Y, column, scratch):
    """Per-sample binary log-loss (summed over units) into ``column``; ``Z``
    becomes ``sigmoid(Z) - Y``."""
    np.logaddexp(0, Z, out=scratch)  # log(1 + exp(z)), without overflow
    scratch -= Y * Z
    np.add.reduce(scratch, axis=1, out=column)
    _logistic(Z)
    Z -= Y  # P - Y: the canonical-link shortcut


OUTPUT_LOSS_AND_DELTA = {"softmax": _softmax_loss_and_delta, "logistic": _logistic_loss_and_delta}


class FusedObjective:
    """``objective([theta], X, Y, sample_weight) -> (loss, [gradient])`` on dense data.

    The value and gradient of ``_network.objective`` with respect to the flat
    vector ``theta``. The returned gradient is a buffer that the next call
    overwrites: use it before calling again.
    """

    def __init__(self, layer_sizes, activation, output, alpha, dtype, block_rows=None):
        assert output in LOSSES
        self.layer_sizes = list(layer_sizes)
        self.activate = IN_PLACE_ACTIVATIONS[activation]
        self.times_derivative = IN_PLACE_DERIVATIVES[activation]
        self.loss_and_delta = OUTPUT_LOSS_AND_DELTA[output]
        self.alpha = alpha
        self.dtype = np.dtype(dtype)
        self.block_rows = BLOCK_ROWS if block_rows is None else block_rows
        coef_slots, _, n_params = flat_layout(self.layer_sizes)
        self.n_weights = coef_slots[-1][1]
        self.gradient = np.empty(n_params, dtype=self.dtype)
        self.grad_coefs, self.grad_intercepts = flat_views(self.gradient, self.layer_sizes)
        self.partial_coefs = [np.empty_like(g) for g in self.grad_coefs]  # blocks after the first
        self.partial_intercepts = [np.empty_like(g) for g in self.grad_intercepts]
        self.penalty_scratch = np.empty(self.n_weights, dtype=self.dtype)
        self.buffers = {}
        self.views = (None, None)  # (theta, its coefs and intercepts), reused while theta is

    def _buffers_for(self, rows):
        """Activations, errors and scratch space for a block of ``rows`` rows."""
        if rows not in self.buffers:
            sizes = self.layer_sizes[1:]
            new = lambda *shape: np.empty(shape, dtype=self.dtype)  # noqa: E731
            self.buffers[rows] = {
                "Z": [new(rows, size) for size in sizes],  # A[1..L-1], then the logits
                "dA": [new(rows, size) for size in sizes[:-1]],
                "scratch": [new(rows, size) for size in sizes],
                "column": new(rows),
                "weights": new(rows),
            }
        return self.buffers[rows]

    def __call__(self, params, X, Y, sample_weight):
        (theta,) = params
        if self.views[0] is not theta:  # a minibatch step keeps the same vector
            self.views = (theta, flat_views(theta, self.layer_sizes))
        coefs, intercepts = self.views[1]
        n_samples = X.shape[0]
        S = n_samples if sample_weight is None else float(sample_weight.sum())
        if n_samples <= self.block_rows:  # one block: the usual minibatch
            total = self._block(X, Y, sample_weight, S, coefs, intercepts, first=True)
        else:
            total = 0.0
            for start in range(0, n_samples, self.block_rows):
                block = slice(start, start + self.block_rows)
                w = None if sample_weight is None else sample_weight[block]
                total += self._block(X[block], Y[block], w, S, coefs, intercepts, start == 0)
        weights, grad_weights = theta[: self.n_weights], self.gradient[: self.n_weights]
        loss = total / S + self.alpha / (2 * S) * float(np.dot(weights, weights))
        np.multiply(weights, self.alpha / S, out=self.penalty_scratch)
        grad_weights += self.penalty_scratch  # gradient of the penalty alpha/(2S) ||W||^2
        return loss, [self.gradient]

    def _block(self, X, Y, w, S, coefs, intercepts, first):
        """Forward and backward over one block; adds its gradient; returns
        the block's weighted sum of per-sample losses."""
        buffers = self._buffers_for(X.shape[0])
        Z, dA, scratch = buffers["Z"], buffers["dA"], buffers["scratch"]
        n_layers = len(coefs)
        activations = [X]
        for i in range(n_layers):  # forward: Z = A W + b, then A = f(Z) in place
            np.matmul(activations[-1], coefs[i], out=Z[i])
            Z[i] += intercepts[i]
            if i < n_layers - 1:
                self.activate(Z[i])
            activations.append(Z[i])
        dZ, column = Z[-1], buffers["column"]
        self.loss_and_delta(dZ, Y, column, scratch[-1])  # dZ = P - Y, column = l_n
        if w is None:
            block_loss = float(np.add.reduce(column))
            dZ *= 1.0 / S
        else:
            block_loss = float(np.dot(w, column))
            np.multiply(w, 1.0 / S, out=buffers["weights"])
            dZ *= buffers["weights"][:, None]  # dJ/dZ[n] = s[n] (P[n] - Y[n]) / S
        for i in reversed(range(n_layers)):  # backward: the delta recursion
            dW = self.grad_coefs[i] if first else self.partial_coefs[i]
            db = self.grad_intercepts[i] if first else self.partial_intercepts[i]
            np.matmul(activations[i].T, dZ, out=dW)  # dJ/dW[i] = A[i]^T dZ
            np.add.reduce(dZ, axis=0, out=db)  # dJ/db[i] = sum_n dZ
            if not first:
                self.grad_coefs[i] += dW
                self.grad_intercepts[i] += db
            if i > 0:
                np.matmul(dZ, coefs[i].T, out=dA[i - 1])  # error sent left: dZ W[i]^T
                self.times_derivative(dA[i - 1], activations[i], scratch[i - 1])  # times f'(z)
                dZ = dA[i - 1]
        return block_loss
