"""The version of the ``caasl`` distribution: the one place it is written.

``setup.cfg`` reads it (``version = attr: caasl_envs._version.__version__``), and
``caasl_envs.__version__`` and ``caasl_agent.__version__`` are this string.
"""

__version__ = "0.1.0"
