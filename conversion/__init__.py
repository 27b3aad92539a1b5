"""Conversion of pretrained attention models (GPT-2) into FiftyNet models."""
