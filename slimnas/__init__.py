"""slimnas: neural architecture search and automated model compression under a deployment budget."""

__version__ = "0.1.0"
