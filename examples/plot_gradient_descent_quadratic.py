"""
===========================================
Gradient descent on a quadratic, J = x² + x
===========================================

Before trusting gradient descent with a network, the tutorial suggests trying
it on a function whose minimum you already know: ``J = x**2 + x``, whose
gradient is ``dJ/dx = 2x + 1``, so that the minimum is at ``x = -1/2``
(where ``J = -1/4``).

The update is the tutorial's ``x <- x - learning_rate * dJ/dx``. Here it is
taken by the same optimizer that trains :class:`~skbackprop.BackpropMLPClassifier`
(``skbackprop._optimizers.sgd`` with ``momentum=0``, an internal module), through its
``init`` / ``update(grads, state, learning_rate)`` interface.

Because the gradient is linear, one step multiplies the distance to the
minimum by ``1 - 2 * learning_rate``:

* a **small** step (0.05) multiplies it by 0.9: the path crawls down one side
  of the valley;
* a **good** step (0.4) multiplies it by 0.2: a handful of steps suffice;
* a **too large** step (0.9) multiplies it by -0.8: every step jumps over
  the minimum to the other side, and the path bounces across the valley,
  getting there only slowly. Above 1 the factor is below -1 and the bounces
  grow: gradient descent diverges.
"""

# %%
# Run gradient descent with the package's optimizer
# -------------------------------------------------

import matplotlib.pyplot as plt
import numpy as np

from skbackprop._optimizers import sgd


def J(x):
    return x**2 + x


def dJ_dx(x):
    return 2 * x + 1


def descend(learning_rate, x0=2.0, n_steps=25):
    """The iterates x_0, x_1, ..., x_n of plain gradient descent on J."""
    optimizer = sgd(momentum=0.0)
    params = (np.array(x0),)
    state = optimizer.init(params)
    path = [float(params[0])]
    for _ in range(n_steps):
        grads = (dJ_dx(params[0]),)
        updates, state = optimizer.update(grads, state, learning_rate)
        params = tuple(p + u for p, u in zip(params, updates))
        path.append(float(params[0]))
    return np.array(path)


step_sizes = {"small (0.05)": 0.05, "good (0.4)": 0.4, "too large (0.9)": 0.9}
paths = {label: descend(rate) for label, rate in step_sizes.items()}
for label, path in paths.items():
    print(f"{label:>16}: x after {len(path) - 1} steps = {path[-1]: .6f}")

# %%
# The paths on the curve, and the distance to the minimum
# -------------------------------------------------------
#
# Top: each step as an arrow on the curve ``J(x)``. Bottom: the distance
# ``|x_t + 1/2|`` to the minimum on a log scale, where a constant factor per
# step is a straight line.

colors = dict(zip(step_sizes, ["tab:blue", "tab:green", "tab:red"]))
fig, axes = plt.subplot_mosaic(
    [list(step_sizes), ["distance"] * len(step_sizes)],
    figsize=(10, 6.5),
    height_ratios=[1.2, 1],
    layout="constrained",
)
grid = np.linspace(-2.5, 2.2, 200)
for label, path in paths.items():
    ax = axes[label]
    ax.plot(grid, J(grid), color="0.6")
    ax.plot(path, J(path), "o-", color=colors[label], markersize=3, linewidth=1)
    ax.plot(-0.5, J(-0.5), "k*", markersize=12, label="minimum, x = -1/2")
    ax.set_title(f"step {label}")
    ax.set_xlabel("x")
    ax.set_ylim(-0.6, 7)
axes[next(iter(step_sizes))].set_ylabel("J(x) = x² + x")
axes[next(iter(step_sizes))].legend(loc="upper left")

ax = axes["distance"]
for label, path in paths.items():
    ax.semilogy(np.abs(path + 0.5), "o-", color=colors[label], markersize=3, label=label)
ax.set_xlabel("step t")
ax.set_ylabel("|x_t + 1/2|")
ax.legend(title="step size")
fig.suptitle("Gradient descent on J = x² + x")
plt.show()
