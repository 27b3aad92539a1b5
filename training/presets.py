"""Model size presets and FiftyNetConfig fields from the command line or a JSON/YAML file, for `fiftynet train`."""

import difflib
import json
from pathlib import Path

import yaml
from huggingface_hub.errors import StrictDataclassError

from modeling_fiftynet import FiftyNetConfig

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
    try:
        return FiftyNetConfig(**settings)
    except (ValueError, TypeError, StrictDataclassError) as error:
        raise UsageError(f"invalid model config: {' '.join(str(error).split())}") from None
