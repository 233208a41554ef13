"""The one version number of both packages (read by setup.cfg and recorded in outputs)."""

__version__ = "0.1.0"
