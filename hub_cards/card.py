"""Model cards for saved FiftyNet folders: metadata through huggingface_hub's ModelCardData, never hand-written YAML."""

from dataclasses import dataclass

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from modeling_fiftynet import FiftyNetConfig


@dataclass
class Measurement:
    """One number measured on a named evaluation text."""

    metric_type: str  # e.g. "bits_per_byte"
    metric_name: str  # e.g. "Bits per byte"
    value: float
    dataset_name: str
    dataset_split: str


def _architecture(config: FiftyNetConfig) -> str:
    mixers = ", ".join(sorted(set(config.mixer_types)))
    return (
        f"{config.num_hidden_layers} blocks of width {config.hidden_size} (mixer: {mixers}; gated MLP of width "
        f"{config.intermediate_size}), {config.filter_state_size} complex modes per filter channel, vocabulary "
        f"{config.vocab_size}, position encoding: {config.position_encoding}."
    )


def build_model_card(
    config: FiftyNetConfig,
    model_name: str,
    training_summary: str,
    measurements: list[Measurement],
    base_model: str | None = None,
) -> ModelCard:
    """A model card with the architecture, how the model was made, its measured numbers and a load-and-generate
    snippet. Save it with `card.save(folder / "README.md")`."""
    card_data = ModelCardData(
        model_name=model_name,
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["fiftynet", "spectral", "fft", "long-convolution", "custom_code"],
        base_model=base_model,
        eval_results=[
            EvalResult(
                task_type="text-generation",
                dataset_type="text",
                dataset_name=m.dataset_name,
                dataset_split=m.dataset_split,
                metric_type=m.metric_type,
                metric_name=m.metric_name,
                metric_value=round(m.value, 4),
            )
            for m in measurements
        ],
    )
    results = "\n".join(
        f"| {m.dataset_name} ({m.dataset_split}) | {m.metric_name} | {m.value:.4f} |" for m in measurements
    )
    body = f"""
# {model_name}

A FiftyNet causal language model: tokens are mixed by causal long convolutions computed with FFTs (float32, padded
to 2L) and gated by the data, instead of attention. Decoding carries a fixed-size recurrent state per layer.

## Architecture
{_architecture(config)}

## How it was made
{training_summary}

## Results
| Evaluation text | Metric | Value |
|---|---|---|
{results}

## Use
```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{model_name}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{model_name}", trust_remote_code=True)
inputs = tokenizer("In the beginning", return_tensors="pt")
print(tokenizer.decode(model.generate(**inputs, max_new_tokens=100, do_sample=True, top_k=50)[0]))
```

## Limitations
This is not an attention model: a long convolution mixes the past through learned filters rather than by content
lookups, and the numbers above say nothing about tasks beyond next-token prediction on the named text. Small models
trained briefly on a single corpus imitate its style and know little else.
"""
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")
