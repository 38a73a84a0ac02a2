"""sertune: distributed hyperparameter and seed sweeps for multi-vector attention LSTM SER."""

__version__ = "0.1.0"
