"""Hidden-layer activations and their derivatives, in one table.

Every derivative is written from the layer's *output* ``A = f(Z)``, as in the
tutorial: sigmoid ``A(1 - A)``, tanh ``1 - A**2``, relu ``step(A)``. The
backward pass never needs the pre-activation ``Z``, so the forward pass keeps
only the outputs.

This module uses NumPy only.
"""

import numpy as np


def identity(Z):
    """Return ``Z`` unchanged: ``f(z) = z``."""
    return Z


def logistic(Z):
    """Sigmoid ``f(z) = 1 / (1 + exp(-z))``, computed without overflow.

    With ``E = exp(-|z|)``, which lies in (0, 1], the sigmoid is ``1 / (1 + E)``
    for ``z >= 0`` and ``E / (1 + E)`` for ``z < 0``: no ``exp`` overflows, and
    tiny values in the lower tail keep their full relative precision.
    """
    E = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1, E) / (1 + E)


def tanh(Z):
    """Hyperbolic tangent ``f(z) = tanh(z)``."""
    return np.tanh(Z)


def relu(Z):
    """Rectified linear unit ``f(z) = max(z, 0)``."""
    return np.maximum(Z, 0)


def identity_derivative(A):
    """``f'(z) = 1`` for the identity."""
    return np.ones_like(A)


def logistic_derivative(A):
    """``f'(z) = A (1 - A)`` where ``A`` is the sigmoid's output."""
    return A * (1 - A)


def tanh_derivative(A):
    """``f'(z) = 1 - A**2`` where ``A`` is tanh's output."""
    return 1 - A**2


def relu_derivative(A):
    """``f'(z) = step(A)``: 1 where the unit is active, 0 where it is not.

    ``A > 0`` exactly when ``z > 0``, so the output tells the step. At ``z = 0``
    the derivative is taken as 0, as scikit-learn does.
    """
    return (A > 0).astype(A.dtype)


#: Forward function of each hidden activation, by the name users pass.
ACTIVATIONS = {
    "identity": identity,
    "logistic": logistic,
    "tanh": tanh,
    "relu": relu,
}

#: Derivative of each activation, as a function of the activation's output.
DERIVATIVES = {
    "identity": identity_derivative,
    "logistic": logistic_derivative,
    "tanh": tanh_derivative,
    "relu": relu_derivative,
}
