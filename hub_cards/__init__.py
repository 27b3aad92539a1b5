"""Model cards for the folders FiftyNet saves, built with huggingface_hub's ModelCard, and `fiftynet push`.

The names below come from `.card`, imported on first use: it imports transformers, and the `fiftynet` dispatcher,
which imports `fiftynet.hub_cards.errors` (and so this package), must start without it.
"""

import importlib


__all__ = ["CARD_RECORD_FILE", "CardRecord", "Measurement", "build_model_card", "hub_model_id", "source_name"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module(".card", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
