"""Model cards for the folders FiftyNet saves, built with huggingface_hub's ModelCard, and `fiftynet push`."""

from .card import CARD_RECORD_FILE, CardRecord, Measurement, build_model_card, hub_model_id, source_name


__all__ = ["CARD_RECORD_FILE", "CardRecord", "Measurement", "build_model_card", "hub_model_id", "source_name"]
