"""Model size presets and FiftyNetConfig fields from the command line or a JSON/YAML file, for `fiftynet train`, and
the check that a described model fits in memory before it is built."""

import difflib
import json
import os
from collections import Counter
from pathlib import Path

import torch
import yaml
from huggingface_hub.errors import StrictDataclassError

from modeling_fiftynet import FiftyNetConfig, FiftyNetForCausalLM

from .errors import UsageError


# Widths and depths only; every other field keeps its FiftyNetConfig default unless set. Head counts divide the width,
# so hybrid stacks with attention layers work from any preset.
PRESETS: dict[str, dict] = {
    "tiny": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4),  # ~1M parameters: CPU, minutes
    "small": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12),  # GPT-2 small's shape
    "medium": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16),  # GPT-2 medium's shape
}


def config_fields() -> set[str]:
    """Every name FiftyNetConfig accepts, its GPT-2 style aliases included."""
    return set(FiftyNetConfig().to_dict()) | set(FiftyNetConfig.attribute_map)


def parse_value(text: str):
    """A command-line value as JSON (`256`, `1e-3`, `true`, `null`), else as YAML (`[spectral_conv, attention]`)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return yaml.safe_load(text)


def parse_overrides(items: list[str]) -> dict:
    """`["hidden_size=256", "mixer_type=nfo"]` -> `{"hidden_size": 256, "mixer_type": "nfo"}`."""
    overrides = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise UsageError(f"config override {item!r} is not of the form field=value")
        overrides[key.strip()] = parse_value(value.strip())
    return overrides


def read_config_file(path: str) -> dict:
    """Config fields from a JSON file, or a YAML one (`.yaml`, `.yml`)."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"config file {file}: no such file")
    text = file.read_text(encoding="utf-8")
    try:
        fields = yaml.safe_load(text) if file.suffix in (".yaml", ".yml") else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise UsageError(f"config file {file} cannot be parsed: {str(error).splitlines()[0]}") from None
    if not isinstance(fields, dict):
        raise UsageError(f"config file {file} must hold a mapping of FiftyNetConfig fields to values")
    return fields


def build_config(preset: str, config_file: str | None, overrides: list[str], **fields) -> FiftyNetConfig:
    """A config from, in increasing priority: the preset, `fields` (e.g. the tokenizer's vocabulary and special
    ids), the config file, then the `field=value` overrides. Unknown fields and invalid values are `UsageError`s."""
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; the presets are {', '.join(PRESETS)}")
    settings = PRESETS[preset] | fields
    if config_file:
        settings |= read_config_file(config_file)
    settings |= parse_overrides(overrides)
    # FiftyNetConfig stores unknown keyword arguments as attributes, so a misspelt field would pass silently.
    for name in settings.keys() - config_fields():
        close = difflib.get_close_matches(name, config_fields(), n=1)
        raise UsageError(f"unknown config field {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    check_fits(settings, "the model config", torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        return FiftyNetConfig(**settings)
    except (ValueError, TypeError, StrictDataclassError) as error:
        raise UsageError(f"invalid model config: {' '.join(str(error).split())}") from None


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory of `device` (a GPU's, else the machine's), or None where it cannot be told."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None


def parameter_bytes(settings: dict) -> int | None:
    """Bytes of the weights of the FiftyNet that the config fields `settings` describe, counted without building it
    (nor its config, whose per-layer lists alone take minutes for millions of layers): models of one and two blocks,
    built on the meta device, give the size of the rest and of each block. None if the fields are not a valid config
    (building it says why)."""
    defaults = FiftyNetConfig.__dataclass_fields__
    layers = settings.get("num_hidden_layers", defaults["num_hidden_layers"].default)
    mixer_type, mixers = settings.get("mixer_type", defaults["mixer_type"].default), settings.get("mixer_types")
    if not isinstance(layers, int) or layers < 1:
        return None
    if not mixers or mixers == [mixer_type] * len(mixers):  # the config repeats mixer_type over the layers
        mixers = [mixer_type] * layers
    if not isinstance(mixers, list) or len(mixers) != layers:
        return None
    counts = Counter(mixers)
    # Every small model holds `first`: an attention layer if there is one, which some settings need (rope).
    first = "attention" if "attention" in counts else mixers[0]

    def size(mixer_types: list[str]) -> int:
        config = FiftyNetConfig(**{**settings, "num_hidden_layers": len(mixer_types), "mixer_types": mixer_types})
        return FiftyNetForCausalLM(config).num_parameters()

    try:
        with torch.device("meta"):
            one = size([first])
            block = {mixer: size([first, mixer]) - one for mixer in counts}
    except (ValueError, TypeError, StrictDataclassError):
        return None
    total = one - block[first] + sum(block[mixer] * number for mixer, number in counts.items())
    return total * torch.finfo(getattr(torch, str(settings.get("dtype") or "float32"), torch.float32)).bits // 8


def check_fits(settings: dict, what: str, device: torch.device) -> None:
    """Refuses, before anything is built, a model whose weights alone exceed the memory of `device`."""
    needed, available = parameter_bytes(settings), device_memory(device)
    if needed is not None and available is not None and needed > available:
        raise UsageError(f"{what} describes a model whose weights alone take {needed / 2**30:,.0f} GiB "
                         f"({settings['num_hidden_layers']:,} blocks), more than the {available / 2**30:,.0f} GiB of "
                         f"{device}")
