"""skbackprop: a scikit-learn multilayer-perceptron classifier whose
backpropagation is derived by hand and written in NumPy."""

from ._display import LossCurveDisplay
from ._estimator import BackpropMLPClassifier
from ._gradient_check import check_gradients

__version__ = "0.2.0.dev0"

__all__ = ["BackpropMLPClassifier", "LossCurveDisplay", "check_gradients", "__version__"]
