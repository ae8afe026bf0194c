"""
==================================================
Checking the hand-derived gradients numerically
==================================================

Backpropagation computes every derivative of the objective ``J`` with
respect to the weights from a handful of matrix products, derived by hand
from the chain rule. A slip in that derivation (a missing transpose, a
forgotten activation derivative) still trains, only worse, so it is worth
checking the formulas against the definition of a derivative: nudge one
weight ``w`` by a small ``epsilon`` both ways and take the central difference

.. math::

    \\frac{\\partial J}{\\partial w} \\approx
    \\frac{J(w + \\epsilon) - J(w - \\epsilon)}{2 \\epsilon}.

:meth:`~skbackprop.BackpropMLPClassifier.loss_gradient` returns the analytic
gradient, and :func:`~skbackprop.check_gradients` computes the central
difference for every weight and bias and returns the largest relative error.
This example does the same by hand for a small network, so that the two can be
drawn against each other: one point per parameter.
"""

# %%
# A small network, briefly trained
# --------------------------------
#
# The check costs two evaluations of ``J`` per parameter, so the network is
# small (4 inputs, hidden layers of 6 and 4 tanh units, 3 outputs: 73
# parameters) and so is the data (the standardized iris).

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from skbackprop import BackpropMLPClassifier, check_gradients

X, y = load_iris(return_X_y=True)
X = StandardScaler().fit_transform(X)
clf = BackpropMLPClassifier(hidden_layer_sizes=(6, 4), activation="tanh", max_iter=20,
                            random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # 20 epochs do not converge
    clf.fit(X, y)

# %%
# Analytic and numeric gradients
# ------------------------------
#
# ``loss_gradient`` gives ``J`` and one gradient array per weight matrix and
# bias vector. For the numeric gradient, each parameter of ``coefs_`` and
# ``intercepts_`` is moved by ``+epsilon`` and ``-epsilon`` in turn and ``J`` is
# evaluated again.

loss, coef_grads, intercept_grads = clf.loss_gradient(X, y)
print(f"J = {loss:.4f}")

epsilon = 1e-6
analytic, numeric, kind = [], [], []
for name, params, grads in (("weights", clf.coefs_, coef_grads),
                            ("biases", clf.intercepts_, intercept_grads)):
    for layer, (p, g) in enumerate(zip(params, grads)):
        for index in np.ndindex(p.shape):
            saved = p[index]
            p[index] = saved + epsilon
            loss_plus = clf.loss_gradient(X, y)[0]
            p[index] = saved - epsilon
            loss_minus = clf.loss_gradient(X, y)[0]
            p[index] = saved  # put the weight back
            analytic.append(g[index])
            numeric.append((loss_plus - loss_minus) / (2 * epsilon))
            kind.append(f"{name} of layer {layer + 1}")
analytic, numeric, kind = np.array(analytic), np.array(numeric), np.array(kind)

relative_error = np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), 1e-5)
max_error = check_gradients(clf, X, y)
print(f"{len(analytic)} parameters; largest relative error, by hand: {relative_error.max():.2e}")
print(f"check_gradients(clf, X, y) = {max_error:.2e}")

# %%
# One point per parameter
# -----------------------
#
# Left: the numeric derivative against the analytic one; correct gradients put
# every point on the diagonal. Right: the relative error of each parameter.
# Rounding in the finite differences keeps it from reaching zero, but it stays
# far below the dotted line at 1e-4, the threshold the tests use; a wrong
# formula would give errors of order 0.1 to 1.

fig, (ax_scatter, ax_error) = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
for label in dict.fromkeys(kind):
    mine = kind == label
    ax_scatter.scatter(analytic[mine], numeric[mine], s=18, label=label)
    ax_error.scatter(np.flatnonzero(mine), relative_error[mine], s=12)
lim = 1.05 * np.abs(np.concatenate([analytic, numeric])).max()
ax_scatter.plot([-lim, lim], [-lim, lim], color="0.5", linewidth=1, zorder=0)
ax_scatter.set_xlim(-lim, lim)
ax_scatter.set_ylim(-lim, lim)
ax_scatter.set_aspect("equal")
ax_scatter.set_xlabel("analytic dJ/dw (loss_gradient)")
ax_scatter.set_ylabel("numeric (J(w + ε) - J(w - ε)) / 2ε")
ax_scatter.set_title("Backpropagation against finite differences")
ax_scatter.legend(fontsize="small")

ax_error.set_yscale("log")
ax_error.axhline(1e-4, color="0.3", linestyle=":", label="1e-4")
ax_error.axhline(max_error, color="tab:red", linestyle="--",
                 label=f"check_gradients = {max_error:.1e}")
ax_error.set_ylim(1e-12, 1)
ax_error.set_xlabel("parameter index")
ax_error.set_ylabel("relative error")
ax_error.set_title("Relative error per parameter")
ax_error.legend(loc="upper left")
plt.show()
