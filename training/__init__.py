"""Training, evaluation and corpus utilities for FiftyNet, and the `fiftynet` command line."""
