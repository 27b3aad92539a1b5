"""Model cards for the folders FiftyNet saves, built with huggingface_hub's ModelCard."""

from .card import build_model_card


__all__ = ["build_model_card"]
