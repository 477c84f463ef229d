"""The algorithms, each one module that reads top to bottom, and the registry that finds them."""
