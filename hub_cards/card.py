"""Model cards for saved folders: metadata through huggingface_hub's ModelCardData and EvalResult, never hand-written
YAML.

Every command that saves a Hub-ready folder writes a [`CardRecord`] next to the weights (`fiftynet_card.json`: the
numbers and the story the config cannot tell) and the `README.md` built from it. `fiftynet push` rebuilds the card
from the record with the repository id, so that its snippet loads the model from where it was pushed.
"""

import json
from dataclasses import asdict, dataclass, field, fields
from itertools import groupby
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import PreTrainedConfig

from modeling_fiftynet.configuration_fiftynet import MIXERS


CARD_RECORD_FILE = "fiftynet_card.json"
SPECTRAL_MIXERS = tuple(name for name, spec in MIXERS.items() if spec.spectral)


@dataclass
class Measurement:
    """One number measured on a named evaluation text."""

    metric_type: str  # e.g. "bits_per_byte"
    metric_name: str  # e.g. "Bits per byte"
    value: float
    dataset_name: str  # e.g. CORPUS_NAME
    dataset_split: str  # e.g. "validation"
    dataset_type: str = "text"  # the Hub dataset id if the text came from one, else `datasets`' plain-text loader


def hub_model_id(name_or_path: str | Path | None) -> str | None:
    """`name_or_path` if it names a model on the Hub, None for a local folder: the Hub refuses a card whose
    `base_model` is anything but a Hub id, so a model made from a local folder names it in the card's text only."""
    if name_or_path is None or Path(name_or_path).exists():
        return None
    try:
        validate_repo_id(str(name_or_path))
    except HFValidationError:
        return None
    return str(name_or_path)


SNIPPET_PROMPT = "In the beginning"


def run_model_name(run_folder: str | Path) -> str:
    """The name a card gives the model of a run folder (`RUN/model`, where `fiftynet train`, `convert` and
    `chunk-head` save it): `from_pretrained` loads it from beside the run folder, and no absolute path of the
    user's machine goes into the card. `fiftynet push` names the repository instead."""
    return f"{Path(run_folder).resolve().name}/model"


def source_name(name_or_path: str | Path) -> str:
    """How a card's text names the model another was made from: its Hub id, else the name its own card gives it, else
    its folder's name; never a local path, which a public card would leak."""
    if hub_model_id(name_or_path) is not None:
        return f"`{name_or_path}`"
    record = CardRecord.load(name_or_path)
    return f"the local model `{record.model_name if record else Path(name_or_path).resolve().name}`"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"


def layer_ranges(mixer_types: list[str]) -> str:
    """`["spectral_conv"] * 10 + ["attention"] * 2` -> `"layers 0-9 spectral_conv, 10-11 attention"`."""
    runs, start = [], 0
    for mixer, group in groupby(mixer_types):
        end = start + len(list(group)) - 1
        runs.append(f"{start}-{end} {mixer}" if end > start else f"{start} {mixer}")
        start = end + 1
    return f"{'layers' if len(mixer_types) > 1 else 'layer'} {', '.join(runs)}"


def _attention_heads(config: PreTrainedConfig) -> str:
    """`"multi-head attention, 4 heads"`, or `"grouped-query attention, 32 query heads sharing 8 key/value heads"`."""
    heads, kv_heads = config.num_attention_heads, config.attention_key_value_heads
    if kv_heads == heads:
        return f"multi-head attention, {heads} heads"
    return f"grouped-query attention, {heads} query heads sharing {kv_heads} key/value heads"


def _mixer_details(config: PreTrainedConfig) -> list[str]:
    """One line per kind of mixer in the stack, from the mixer table, with the sizes that matter for it."""
    fields = {
        **config.to_dict(),
        "mixer_biases": " (input and output projections with biases)" if getattr(config, "mixer_bias", False) else "",
        "attention_biases": "with" if getattr(config, "attention_bias", False) else "without",
        "attention_heads": _attention_heads(config),
    }
    return [f"`{mixer}`: {MIXERS[mixer].description.format(**fields)}" for mixer in dict.fromkeys(config.mixer_types)]


def _context_length(config: PreTrainedConfig) -> str:
    if config.position_encoding == "learned":
        return f"at most {config.max_position_embeddings} tokens (learned position table)"
    growing = " (the attention layers' cost and cache grow with it)" if "attention" in config.mixer_types else ""
    return (f"no fixed limit: the filters are defined at every lag{growing}; the training length is given under "
            "\"How it was made\"")


def _fiftynet_architecture(config: PreTrainedConfig) -> list[str]:
    gated = getattr(config, "mlp_type", "gated") == "gated"
    norm = "LayerNorm" if getattr(config, "norm_type", "rms_norm") == "layer_norm" else "RMSNorm"
    mlp_bias = ", with biases" if getattr(config, "mlp_bias", False) else ""
    gate = f", output gate `{config.mixer_gate}`" if config.mixer_gate != "none" else ""
    return [
        f"{_count(config.num_hidden_layers, 'pre-norm residual block')} of width {config.hidden_size} ({norm}); "
        f"token mixers: {layer_ranges(config.mixer_types)}{gate}",
        *_mixer_details(config),
        f"MLP: {'gated (SwiGLU-style)' if gated else 'plain'}, width {config.intermediate_size}, activation "
        f"`{config.hidden_act}`{mlp_bias}",
        f"vocabulary {config.vocab_size}, {config.embedding_type} embeddings"
        f"{', tied to the LM head' if config.tie_word_embeddings else ''}; position encoding "
        f"`{config.position_encoding}`",
        f"context length: {_context_length(config)}",
    ]


def _architecture(config: PreTrainedConfig, num_parameters: int | None) -> str:
    if config.model_type == "fiftynet":
        lines = _fiftynet_architecture(config)
    else:  # e.g. a compressed GPT-2: the standard names, through the config's attribute map
        lines = [
            f"`{config.model_type}`: {_count(config.num_hidden_layers, 'transformer block')} of width "
            f"{config.hidden_size}, {config.num_attention_heads} attention heads, vocabulary {config.vocab_size}",
            f"context length: at most {config.max_position_embeddings} tokens",
        ]
    if num_parameters is not None:
        lines.append(f"{num_parameters / 1e6:.2f}M parameters")
    compression = getattr(config, "compression", None)
    if compression:
        ratio = f" at ratio {compression['ratio']}" if compression["ratio"] is not None else ""
        modules = f" (modules named {', '.join(compression['modules'])})" if compression["modules"] else ""
        lines.append(
            f"compressed: {len(compression['layers'])} Linear layers{modules} stored as `{compression['method']}`"
            f"{ratio}, then {compression.get('finetune_steps', 0)} fine-tuning steps; they load as compressed "
            "layers through the remote code"
        )
    return "\n".join(f"- {line}" for line in lines)


def _description(config: PreTrainedConfig) -> str:
    if config.model_type != "fiftynet":
        return (f"A `{config.model_type}` causal language model: transformers' own architecture with some Linear "
                "layers stored compressed, loaded through the remote code saved with it.")
    mixers = set(config.mixer_types)
    if mixers == {"attention"}:
        return ("A FiftyNet causal language model whose every block uses standard causal attention (for instance an "
                "exact transplant of a GPT-2, before any layer is replaced by a spectral mixer).")
    text = ("A FiftyNet causal language model: tokens are mixed by FFT-based spectral filters (causal long "
            "convolutions computed in float32) instead of attention")
    if "attention" in mixers:
        return (f"{text} in some layers, and by standard causal attention in the others "
                f"({layer_ranges(config.mixer_types)}). When decoding, the spectral layers carry a fixed-size state "
                "and the attention layers a key/value cache that grows with the context.")
    return f"{text}. When decoding, every layer carries a fixed-size recurrent state, whatever the context length."


def _limitations(config: PreTrainedConfig) -> str:
    lines = []
    if config.model_type == "fiftynet" and set(config.mixer_types) & set(SPECTRAL_MIXERS):
        lines.append(
            "A spectral mixer is not attention: it mixes the past through learned filters, not by looking tokens up "
            "by content, so recalling or copying a specific earlier token is harder for it than for attention of "
            "the same size."
        )
    compression = getattr(config, "compression", None)
    if compression:
        slower = (", and a DCT layer rebuilds its weight block by block in every forward pass, which is slower than a "
                  "dense layer") if compression["method"] == "dct" else ""
        lines.append(f"The compressed layers trade accuracy for bytes (see the results); their speed was not measured "
                     f"here{slower}.")
    lines.append(
        "The numbers above are next-token metrics on one held-out text, usually from the same source as the "
        "training text. They do not show how the model does on other kinds of text, on any downstream task, on "
        "sequences longer than it was trained on, or whether what it writes is true, safe or unbiased."
    )
    lines.append(
        "What the model knows comes from its training text, whose views and language it inherits (for the bundled "
        "corpus, the King James Bible); a small model trained briefly imitates the style of its corpus and knows "
        "little else."
    )
    return "\n".join(f"- {line}" for line in lines)


def build_model_card(
    config: PreTrainedConfig,
    model_name: str,
    training_summary: str,
    measurements: list[Measurement],
    base_model: str | None = None,
    datasets: list[str] | None = None,
    num_parameters: int | None = None,
) -> ModelCard:
    """A model card with the architecture (read from `config`), how the model was made, its measured numbers, a
    load-and-generate snippet for `model_name` and its limitations. Save it with `card.save(folder / "README.md")`.

    `base_model` and `datasets` go into the metadata and must be Hub ids (see [`hub_model_id`]); a local source is
    named in `training_summary` instead.
    """
    tags = ["fiftynet", "custom_code"]
    if config.model_type == "fiftynet":
        tags += ["spectral", "fft", "long-convolution"]
        if "attention" in config.mixer_types and len(set(config.mixer_types)) > 1:
            tags.append("hybrid")
    else:
        tags.append(config.model_type)
    if getattr(config, "compression", None):
        tags += ["compressed", config.compression["method"]]
    card_data = ModelCardData(
        model_name=model_name,
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=tags,
        base_model=base_model,
        datasets=datasets or None,
        eval_results=[
            EvalResult(
                task_type="text-generation",
                dataset_type=m.dataset_type,
                dataset_name=m.dataset_name,
                dataset_split=m.dataset_split,
                metric_type=m.metric_type,
                metric_name=m.metric_name,
                metric_value=round(m.value, 4),
            )
            for m in measurements
        ] or None,
    )
    results = "\n".join(
        f"| {m.dataset_name} ({m.dataset_split}) | {m.metric_name} | {m.value:.4f} |" for m in measurements
    )
    results = f"| Evaluation text | Metric | Value |\n|---|---|---|\n{results}" if measurements else "None recorded."
    base = f"\nBase model: [{base_model}](https://huggingface.co/{base_model}).\n" if base_model else ""
    # The snippet stays within a length limit (learned positions): its prompt is at most one token per byte.
    limit = getattr(config, "max_position_embeddings", None)
    new_tokens = max(1, min(100, limit - len(SNIPPET_PROMPT.encode()))) if limit else 100
    body = f"""
# {model_name}

{_description(config)}

## Architecture
{_architecture(config, num_parameters)}

## How it was made
{training_summary}
{base}
## Results
{results}

## Use
The modeling code is saved with the weights, so the model loads with `trust_remote_code=True` and needs only
`torch` and `transformers`:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{model_name}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{model_name}", trust_remote_code=True)
inputs = tokenizer("{SNIPPET_PROMPT}", return_tensors="pt")
outputs = model.generate(**inputs, max_new_tokens={new_tokens}, do_sample=True, top_k=50)
print(tokenizer.decode(outputs[0], skip_special_tokens=True))
```

## Intended use
Research on sub-quadratic token mixers and on compressing them: comparing, fine-tuning and measuring. It is not
meant to answer questions, give facts or advice, or run in a product.

## Limitations
{_limitations(config)}
"""
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")


@dataclass
class CardRecord:
    """What a folder's card says beyond its config, saved next to the weights as `fiftynet_card.json` so the card
    can be rebuilt: by `fiftynet push` for the repository it goes to, by `fiftynet compress` for the compressed
    copy. The fields are [`build_model_card`]'s arguments."""

    model_name: str
    training_summary: str
    measurements: list[Measurement]
    base_model: str | None = None
    datasets: list[str] = field(default_factory=list)
    num_parameters: int | None = None

    def card(self, config: PreTrainedConfig) -> ModelCard:
        return build_model_card(config, **{entry.name: getattr(self, entry.name) for entry in fields(self)})

    def save(self, folder: str | Path, config: PreTrainedConfig) -> ModelCard:
        """Writes `fiftynet_card.json` and the `README.md` built from it into `folder`; returns the card."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CARD_RECORD_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        card = self.card(config)
        card.save(folder / "README.md")
        return card

    @classmethod
    def load(cls, folder: str | Path) -> "CardRecord | None":
        """The record saved in `folder`, or None when there is none."""
        path = Path(folder) / CARD_RECORD_FILE
        if not path.is_file():
            return None
        saved = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{**saved, "measurements": [Measurement(**m) for m in saved["measurements"]]})
