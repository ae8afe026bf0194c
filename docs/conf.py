"""Sphinx configuration of the skbackprop documentation (a stub for now)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import skbackprop  # noqa: E402

project = "skbackprop"
author = "skbackprop developers"
copyright = "skbackprop developers"
release = skbackprop.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "numpydoc",
]

root_doc = "index"
exclude_patterns = ["_build"]

autodoc_default_options = {"members": True}
numpydoc_show_class_members = False

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
}

html_theme = "alabaster"
