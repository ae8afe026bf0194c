"""
=================================================
Choosing the learning rate by cross-validation
=================================================

"Just try it" is the tutorial's rule for the learning rate, and
:class:`~sklearn.model_selection.GridSearchCV` tries it systematically:
because :class:`~skbackprop.BackpropMLPClassifier` is a scikit-learn
estimator, it can sit in a pipeline behind a
:class:`~sklearn.preprocessing.StandardScaler` and have its
``learning_rate_init`` tuned by cross-validation like any other parameter
(a pipeline step's parameter is addressed as ``step__parameter``).

The rates are spaced evenly on a log scale, the natural scale of a learning
rate, and the cross-validated accuracy is drawn against them. With a fixed
budget of epochs (30 epochs of minibatch gradient descent with Nesterov
momentum here), small rates have not learned enough yet, and the largest one
diverges: the divergence guard stops it and restores the starting weights,
which score little better than chance. The best rates form a broad plateau
between the two.
"""

# %%
# The grid search
# ---------------

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbackprop import BackpropMLPClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

model = make_pipeline(
    StandardScaler(),
    BackpropMLPClassifier(hidden_layer_sizes=(32,), solver="sgd", max_iter=30,
                          random_state=0),
)
learning_rates = np.logspace(-4, 0.5, 10)
search = GridSearchCV(
    model,
    {"backpropmlpclassifier__learning_rate_init": learning_rates},
    cv=3,
    n_jobs=1,
)
with warnings.catch_warnings():
    # 30 epochs are a deliberately small budget: most fits stop at max_iter,
    # and the largest rate trips the divergence guard; both warn.
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X_train, y_train)

best_rate = search.best_params_["backpropmlpclassifier__learning_rate_init"]
print(f"best learning_rate_init: {best_rate:.2g}")
print(f"cross-validated accuracy: {search.best_score_:.3f}")
print(f"test accuracy of the refitted best pipeline: {search.score(X_test, y_test):.3f}")

# %%
# Cross-validated accuracy against the learning rate
# --------------------------------------------------
#
# The band is one standard deviation of the score over the three folds.

mean = search.cv_results_["mean_test_score"]
std = search.cv_results_["std_test_score"]

fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
ax.semilogx(learning_rates, mean, "o-", label="mean over 3 folds")
ax.fill_between(learning_rates, mean - std, mean + std, alpha=0.25, label="± 1 std")
ax.axvline(best_rate, color="k", linestyle="--", linewidth=1,
           label=f"best: {best_rate:.2g}")
ax.set_xlabel("learning_rate_init (log scale)")
ax.set_ylabel("cross-validated accuracy")
ax.set_title("SGD with momentum, 30 epochs, 32 ReLU units, digits")
ax.legend(loc="lower center")
plt.show()
