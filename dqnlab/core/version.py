"""dqnlab's version, in the ground layer so that any module can name it in the files it writes."""

__version__ = "0.2.0"
