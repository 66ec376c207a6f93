"""logsvc: a central log service built on Twisted."""

__version__ = "0.1.0"
