"""scikit-learn's own estimator checks, over several configurations.

Not among them: ``early_stopping=True`` and ``class_weight='balanced'``. Both
make a weighted fit differ from a fit on repeated rows by design (the
validation split and the class frequencies see rows, not weights), which
``check_sample_weight_equivalence_on_dense_data`` would flag; their own tests
are in ``test_training_options.py``.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skbackprop import BackpropMLPClassifier

CONFIGURATIONS = [
    BackpropMLPClassifier(random_state=0),
    BackpropMLPClassifier(
        hidden_layer_sizes=(20,), activation="logistic", solver="sgd",
        learning_rate_init=0.1, random_state=0,
    ),
    BackpropMLPClassifier(
        hidden_layer_sizes=(10, 10), activation="tanh", solver="sgd",
        momentum=0.5, nesterovs_momentum=False, learning_rate_init=0.05, random_state=0,
    ),
    BackpropMLPClassifier(
        hidden_layer_sizes=(16, 8, 8), activation="relu", solver="adam",
        learning_rate_init=0.01, random_state=0,
    ),
    BackpropMLPClassifier(
        hidden_layer_sizes=(8,), activation="identity", solver="adam",
        learning_rate_init=0.01, random_state=0,
    ),
    BackpropMLPClassifier(hidden_layer_sizes=(10,), solver="lbfgs", random_state=0),
    BackpropMLPClassifier(
        hidden_layer_sizes=(20,), solver="sgd", learning_rate="adaptive",
        learning_rate_init=0.05, random_state=0,
    ),
    BackpropMLPClassifier(
        hidden_layer_sizes=(20,), solver="sgd", learning_rate="invscaling", power_t=0.25,
        learning_rate_init=0.2, random_state=0,
    ),
]


@parametrize_with_checks(CONFIGURATIONS)
def test_sklearn_compatible(estimator, check):
    check(estimator)
