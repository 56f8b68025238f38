"""Training of every shipped weight file (``crct train``)."""
