"""
===========================================
Early stopping on a held-out validation set
===========================================

The training loss only ever tells how well the network fits the data it
learns from. With ``early_stopping=True``,
:class:`~skbackprop.BackpropMLPClassifier` holds out ``validation_fraction``
of the training data, records after every epoch the loss on it
(``validation_loss_curve_``) and the accuracy on it (``validation_scores_``),
stops once that accuracy has not improved by at least ``tol`` for more than
``n_iter_no_change`` epochs, and keeps the weights of the epoch that scored
best.

To make the effect plain, a fifth of the training labels of the digits are
replaced by random ones: a network with enough units can learn those by
heart, and as it does, its training loss keeps falling while its loss on the
held-out data turns and rises, and its held-out accuracy slides.
:class:`~skbackprop.LossCurveDisplay` draws all three curves and marks the
epoch whose weights were kept.
"""

# %%
# Train with early stopping on noisy labels
# -----------------------------------------

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skbackprop import BackpropMLPClassifier, LossCurveDisplay

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

rng = np.random.default_rng(0)
noisy = rng.random(len(y_train)) < 0.2  # replace 20% of the labels by random ones
y_noisy = y_train.copy()
y_noisy[noisy] = rng.integers(0, 10, noisy.sum())

clf = BackpropMLPClassifier(
    hidden_layer_sizes=(200,),
    alpha=0.0,
    learning_rate_init=3e-3,
    early_stopping=True,
    validation_fraction=0.25,
    n_iter_no_change=40,  # patient, so that the curves show what comes after the best epoch
    max_iter=300,
    random_state=0,
).fit(X_train, y_noisy)

best_epoch = int(np.argmax(clf.validation_scores_)) + 1
print(f"trained for {clf.n_iter_} epochs; kept the weights of epoch {best_epoch}")
print(f"best validation accuracy (noisy labels): {clf.best_validation_score_:.3f}")
print(f"test accuracy (clean labels):            {clf.score(X_test, y_test):.3f}")

# %%
# The learning curves
# -------------------
#
# Training loss and validation loss share the left axis; the validation
# accuracy is on the right. The dashed line is the epoch whose weights the
# classifier kept.

fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
display = LossCurveDisplay.from_estimator(clf, ax=ax)
ax.set_title("Early stopping: 200 ReLU units, digits with 20% random labels")
plt.show()
