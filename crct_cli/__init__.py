"""crct: robust 68-point facial landmark tracking."""

__version__ = "0.1.0"
