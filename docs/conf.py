"""Sphinx configuration of the skbackprop documentation.

Build the site from the repository root with::

    pip install '.[docs]'
    sphinx-build -W --keep-going -b html docs docs/_build/html

and run every ``>>>`` example of the pages (and of the API docstrings they
pull in) with :mod:`sphinx.ext.doctest`, as CI does (the examples need the
test extra too, for ``rich``)::

    pip install '.[docs,test]'
    sphinx-build -W --keep-going -b doctest -D plot_gallery=0 docs docs/_build/doctest
"""

import doctest
import os
import re
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sphinx.util import logging

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # document (and run the examples of) this source tree

import skbackprop  # noqa: E402

logger = logging.getLogger("skbackprop.docs")

# -- Project ----------------------------------------------------------------

project = "skbackprop"
author = "skbackprop developers"
copyright = "skbackprop developers"
release = skbackprop.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    # sphinx-gallery writes these next to the generated pages; they are not
    # documents of their own.
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.md5",
    "auto_examples/*.codeobj.json",
]
# `name` in single backquotes, as numpydoc docstrings write it, is a
# cross-reference to a Python object, rendered as code.
default_role = "py:obj"

# -- API pages: autodoc, autosummary, numpydoc -------------------------------

autosummary_generate = True  # writes docs/generated/*.rst from api.rst
autodoc_default_options = {"members": True}
autodoc_typehints = "none"  # the numpydoc "Parameters" sections say it all
# The class template lists the methods itself (see _templates/autosummary).
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- Doctests: sphinx.ext.doctest ---------------------------------------------

# Plain ``>>>`` blocks in the pages are tests too (no ``.. doctest::``
# directive needed), run with the flags README gives ``python -m doctest``.
doctest_test_doctest_blocks = "default"
doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.IGNORE_EXCEPTION_DETAIL

# -- Gallery: sphinx-gallery ---------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Run the plot_*.py scripts at build time (pass ``-D plot_gallery=0`` to
    # skip running them, as the doctest build does).
    "filename_pattern": r"/plot_",
    # examples/stream_memmap.py is a command-line script that prints and draws
    # nothing (and writes a file to disk); tests/test_examples.py covers it.
    "ignore_pattern": r"(__init__|stream_memmap)\.py$",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("skbackprop",),
    "backreferences_dir": "generated/backreferences",
    "image_scrapers": ("matplotlib",),
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 1,
    "download_all_examples": False,
}

# -- Intersphinx ----------------------------------------------------------------
#
# Links into the documentation of Python, NumPy, SciPy, scikit-learn and
# Matplotlib need each project's objects.inv. Sphinx fetches them itself, but
# when a site cannot be reached (as in CI, which has no internet) it logs
# "failed to reach any of the inventories ..." as a WARNING, which -W turns
# into a failed build. That warning has no type or subtype (Sphinx 7.3 to 9.0:
# a bare ``LOGGER.warning`` in sphinx/ext/intersphinx; an upstream pull
# request to type it, #14613, was still open when this was written), so
# ``suppress_warnings`` cannot silence it; a logging filter keyed on the
# message text would depend on Sphinx's wording and internals.
#
# So conf.py fetches each inventory itself -- only when asked to, with
# SKBACKPROP_DOCS_ONLINE=1 (a documentation host sets it; a build never
# touches the network by default) -- once, with a short timeout, into
# docs/_build/intersphinx/, and hands Sphinx the *local copy* as the inventory
# location (``intersphinx_mapping = {name: (url, local_file)}``): links still
# point at the online URL, and Sphinx never touches the network. If a fetch
# fails, the last copy fetched is used whatever its age; if there is none, that
# project is left out of the mapping with an INFO message, and references to it
# render as plain, unlinked text (they are not warnings, since the build is not
# nitpicky). By default, and offline, the build is therefore clean and
# reproducible; with SKBACKPROP_DOCS_ONLINE=1 the links work too.

INTERSPHINX_URLS = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "scipy": "https://docs.scipy.org/doc/scipy/",
    "sklearn": "https://scikit-learn.org/stable/",
    "matplotlib": "https://matplotlib.org/stable/",
}
INTERSPHINX_CACHE = DOCS / "_build" / "intersphinx"
INTERSPHINX_TIMEOUT = 5  # seconds per inventory; the fetches run in parallel
INTERSPHINX_MAX_AGE = 5 * 86400  # re-fetch copies older than this (seconds)


def _local_inventory(name, url):
    """The path of an up-to-date local copy of ``url``'s objects.inv, or None."""
    path = INTERSPHINX_CACHE / f"{name}-objects.inv"
    fresh = path.is_file() and time.time() - path.stat().st_mtime < INTERSPHINX_MAX_AGE
    if fresh or not os.environ.get("SKBACKPROP_DOCS_ONLINE"):
        return path if path.is_file() else None
    try:
        with urllib.request.urlopen(url + "objects.inv", timeout=INTERSPHINX_TIMEOUT) as response:
            data = response.read()
        if not data.startswith(b"# Sphinx inventory version"):
            raise ValueError("not a Sphinx inventory")
    except Exception as exc:  # offline, timed out, moved, ...: fall back
        if path.is_file():
            logger.info("intersphinx: using an old copy of %s's inventory (%s)", name, exc)
            return path
        logger.info("intersphinx: no links to %s's documentation (%s)", name, exc)
        return None
    INTERSPHINX_CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


with ThreadPoolExecutor(max_workers=len(INTERSPHINX_URLS)) as _pool:
    _copies = {
        name: _pool.submit(_local_inventory, name, url) for name, url in INTERSPHINX_URLS.items()
    }
    _copies = {name: future.result() for name, future in _copies.items()}

intersphinx_mapping = {
    name: (url, str(_copies[name]))
    for name, url in INTERSPHINX_URLS.items()
    if _copies[name] is not None
}

# -- HTML ------------------------------------------------------------------------

# Furo: its left sidebar shows the whole table of contents of index.rst, with
# its captions (Getting started, User guide, Reference, Examples), on every
# page.
html_theme = "furo"
html_title = f"skbackprop {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}
# In a page's table of contents, "fit()" rather than "BackpropMLPClassifier.fit()".
toc_object_entries_show_parents = "hide"


# -- Hooks ------------------------------------------------------------------------


# Methods that BackpropMLPClassifier inherits from scikit-learn (score,
# get_params, set_params, get_metadata_routing, set_fit_request, ...) are
# documented on its page with scikit-learn's docstrings, which cite
# scikit-learn's user guide and glossary with :ref: and :term:. Those targets
# exist only in scikit-learn's inventory; unlike unresolved Python objects,
# unresolved :ref:/:term: targets are warnings even outside nitpicky mode. So
# when that inventory could not be had (offline, see Intersphinx above), such
# references in docstrings written by scikit-learn become their plain text,
# as unresolved object references do. Online they are left alone and link to
# scikit-learn's site. Our own docstrings and pages are never rewritten.
_GUIDE_ROLE = re.compile(r":(?:ref|term|doc):`(?:([^`<]*?)\s*<[^`>]*>|([^`<]*))`")


def _unlink_sklearn_guide_references(app, what, name, obj, options, lines):
    if "sklearn" in intersphinx_mapping:
        return
    if not (getattr(obj, "__module__", None) or "").startswith("sklearn"):
        return
    text = "\n".join(lines)
    plain = _GUIDE_ROLE.sub(lambda m: (m.group(1) or m.group(2)).strip(), text)
    if plain != text:
        lines[:] = plain.split("\n")


def setup(app):
    app.connect("autodoc-process-docstring", _unlink_sklearn_guide_references)
