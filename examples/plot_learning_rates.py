"""
=================================================
Too large, too small: learning rates on a network
=================================================

The tutorial warns that a learning rate that is too small makes gradient
descent take a very long time, and that there are few rules for choosing
one: "just try it". This example tries it. It trains the same network on the
standardized digits with the tutorial's plain full-batch gradient descent
(``solver="sgd"``, ``batch_size=n_samples``, ``momentum=0``) and five
learning rates, and draws the training loss of every epoch:

* **0.03** crawls and **0.3** is still slow: the loss goes down steadily, but
  after 100 epochs it is far from where the larger rates got;
* **1.0** falls fast and smoothly;
* **3.0** is on the edge: the first steps overshoot, and for some ten epochs
  the loss bounces up and down across the valley. Once the weights reach a
  flatter region it settles, and it ends lowest of all: the fastest rate is
  often just below one that is too large;
* **10.0** is too large: the bounces grow, the loss explodes within a few
  epochs, and the estimator's divergence guard stops training, restores the
  weights that fit best and warns that ``learning_rate_init`` is probably too
  large.

So plot the loss curve: a curve that crawls asks for a larger rate, one that
bounces for a smaller one.

The objective is the *mean* cross-entropy, so these rates are ``n_samples``
times those one would use on the tutorial's *summed* objective (1.0 here is
about 5.6e-4 there).
"""

# %%
# Train with each learning rate
# -----------------------------

import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from skbackprop import BackpropMLPClassifier

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)
n_samples = len(X)

learning_rates = [0.03, 0.3, 1.0, 3.0, 10.0]
curves = {}
for learning_rate in learning_rates:
    clf = BackpropMLPClassifier(
        hidden_layer_sizes=(30,),
        solver="sgd",
        batch_size=n_samples,  # full batch: one step per epoch
        momentum=0.0,  # the tutorial's plain gradient descent
        alpha=0.0,
        learning_rate_init=learning_rate,
        max_iter=100,
        n_iter_no_change=100,  # run all 100 epochs unless the loss explodes
        random_state=0,
    )
    with warnings.catch_warnings(record=True) as caught:
        # 100 epochs do not converge (a ConvergenceWarning), and the largest
        # rate trips the divergence guard (another one): keep them quiet here
        # and print the guard's message below.
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(X, y)
    curves[learning_rate] = clf.loss_curve_
    diverged = [str(w.message) for w in caught if "diverged" in str(w.message)]
    print(f"learning rate {learning_rate:>5}: {len(clf.loss_curve_):>3} epochs, "
          f"training accuracy {clf.score(X, y):.3f}")
    for message in diverged:
        print("   ", message)

# %%
# The loss curves
# ---------------
#
# The loss is on a log scale. The run with the largest rate stops after a few
# epochs; its cross marks the epoch where the guard stopped it.

fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
colors = ["tab:blue", "tab:cyan", "tab:green", "tab:orange", "tab:red"]
for color, (learning_rate, curve) in zip(colors, curves.items()):
    epochs = range(1, len(curve) + 1)
    ax.semilogy(epochs, curve, color=color, label=f"{learning_rate:g}")
    if len(curve) < 100:  # stopped by the divergence guard
        ax.semilogy(len(curve), curve[-1], "x", color=color, markersize=10, mew=2)
ax.set_xlabel("epoch (one full-batch gradient step)")
ax.set_ylabel("training loss (mean cross-entropy)")
ax.set_title("Full-batch gradient descent on the digits, 30 ReLU units")
ax.legend(title="learning_rate_init")
ax.set_ylim(top=1e4)
plt.show()
