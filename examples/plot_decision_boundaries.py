"""
=======================================
Decision boundaries of each activation
=======================================

The hidden activation decides which shapes a network can draw. This example
fits the same two-hidden-layer network to the two interleaving half circles
of :func:`~sklearn.datasets.make_moons`, once per activation of
:class:`~skbackprop.BackpropMLPClassifier`, and shades the predicted
probability of the second class over the plane:

* ``"identity"``: a stack of linear layers is still linear, so the boundary
  is a straight line, whatever the number of layers (the network is a
  logistic regression in disguise);
* ``"logistic"``: the tutorial's sigmoid ``1 / (1 + exp(-a))``, a smooth
  curved boundary;
* ``"tanh"``: a rescaled sigmoid centred on zero, ``tanh(a) = 2 sigmoid(2a) - 1``,
  also smooth;
* ``"relu"``: ``max(0, a)``, piecewise linear, so the boundary is made of
  straight segments.

Each network is trained with L-BFGS, which converges quickly on a data set
this small.
"""

# %%
# Fit one network per activation
# ------------------------------

import matplotlib.pyplot as plt
from sklearn.datasets import make_moons
from sklearn.inspection import DecisionBoundaryDisplay
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbackprop import BackpropMLPClassifier

X, y = make_moons(n_samples=300, noise=0.25, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)

activations = ["identity", "logistic", "tanh", "relu"]
models = {}
for activation in activations:
    models[activation] = make_pipeline(
        StandardScaler(),
        BackpropMLPClassifier(
            hidden_layer_sizes=(10, 10),
            activation=activation,
            solver="lbfgs",
            alpha=1e-2,
            max_iter=2000,
            random_state=0,
        ),
    ).fit(X_train, y_train)
    print(f"{activation:>8}: test accuracy {models[activation].score(X_test, y_test):.3f}")

# %%
# Draw the boundaries
# -------------------
#
# The colour is the predicted probability of class 1 (red); the black line
# is where it equals 1/2. Training points are circles, test points triangles.

fig, axes = plt.subplots(2, 2, figsize=(9, 8), sharex=True, sharey=True, layout="constrained")
for ax, (activation, model) in zip(axes.flat, models.items()):
    display = DecisionBoundaryDisplay.from_estimator(
        model, X, response_method="predict_proba", plot_method="pcolormesh",
        cmap="RdBu_r", alpha=0.6, vmin=0, vmax=1, ax=ax, grid_resolution=200,
    )
    DecisionBoundaryDisplay.from_estimator(
        model, X, response_method="predict_proba", plot_method="contour", levels=[0.5],
        colors="k", linewidths=1.5, ax=ax, grid_resolution=200,
    )
    ax.scatter(*X_train.T, c=y_train, cmap="RdBu_r", edgecolors="k", s=20)
    ax.scatter(*X_test.T, c=y_test, cmap="RdBu_r", edgecolors="k", s=30, marker="^")
    ax.set_title(f'activation="{activation}"  '
                 f"(test accuracy {model.score(X_test, y_test):.2f})")
fig.colorbar(display.surface_, ax=axes, shrink=0.6, label="predicted probability of class 1")
fig.suptitle("Two hidden layers of 10 units on make_moons")
plt.show()
