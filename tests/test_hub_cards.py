"""Model cards: metadata through huggingface_hub (parsed back with ModelCard), the architecture read from the config,
the card record the commands write next to the weights, and how a card names the model another was made from."""

import pytest
from huggingface_hub import ModelCard

from fiftynet.hub_cards.card import (
    CARD_RECORD_FILE,
    CardRecord,
    Measurement,
    build_model_card,
    hub_model_id,
    layer_ranges,
    source_name,
)
from modeling_fiftynet import FiftyNetConfig


MEASUREMENTS = [
    Measurement("perplexity", "Perplexity", 31.41592, "WikiText-103", "validation", "Salesforce/wikitext"),
    Measurement("bits_per_byte", "Bits per byte", 1.2345678, "WikiText-103", "validation", "Salesforce/wikitext"),
]


@pytest.mark.parametrize(
    "mixer_types, expected",
    [
        (["spectral_conv"], "layer 0 spectral_conv"),
        (["spectral_conv"] * 10 + ["attention"] * 2, "layers 0-9 spectral_conv, 10-11 attention"),
        (["nfo", "attention", "attention", "nfo"], "layers 0 nfo, 1-2 attention, 3 nfo"),
    ],
)
def test_layer_ranges_name_each_run_of_mixers(mixer_types, expected):
    assert layer_ranges(mixer_types) == expected


def test_card_metadata_is_written_by_huggingface_hub_and_reads_back():
    config = FiftyNetConfig(hidden_size=64, num_hidden_layers=2)
    card = build_model_card(config, "alice/spectral", "Trained for a test.", MEASUREMENTS, base_model="openai/gpt2",
                            datasets=["Salesforce/wikitext"], num_parameters=1_234_567)
    data = ModelCard(str(card)).data
    assert (data.license, data.library_name, data.pipeline_tag) == ("apache-2.0", "transformers", "text-generation")
    assert data.base_model == "openai/gpt2" and data.datasets == ["Salesforce/wikitext"]
    assert {"fiftynet", "spectral", "custom_code"} <= set(data.tags) and "hybrid" not in data.tags
    assert data.model_name == "alice/spectral"
    assert [(r.task_type, r.dataset_type, r.dataset_name, r.dataset_split, r.metric_type, r.metric_value)
            for r in data.eval_results] == [
        ("text-generation", "Salesforce/wikitext", "WikiText-103", "validation", "perplexity", 31.4159),
        ("text-generation", "Salesforce/wikitext", "WikiText-103", "validation", "bits_per_byte", 1.2346),
    ]
    for section in ("## Architecture", "## How it was made", "## Results", "## Use", "## Intended use",
                    "## Limitations"):
        assert section in card.text
    assert "Trained for a test." in card.text and "1.23M parameters" in card.text
    assert '.from_pretrained("alice/spectral", trust_remote_code=True)' in card.text
    assert "A spectral mixer is not attention" in card.text


def test_a_card_without_base_model_datasets_or_results_leaves_them_out():
    card = build_model_card(FiftyNetConfig(hidden_size=64, num_hidden_layers=2), "tiny", "Made.", [])
    data = ModelCard(str(card)).data
    assert data.base_model is None and data.datasets is None and data.eval_results is None
    assert "None recorded." in card.text


def test_the_architecture_is_read_from_the_config():
    config = FiftyNetConfig(
        hidden_size=64, num_hidden_layers=4, mixer_types=["spectral_conv", "spectral_conv", "attention", "nfo"],
        num_attention_heads=4, mixer_gate="glu", position_encoding="learned", max_position_embeddings=512,
        norm_type="layer_norm", mlp_type="plain", mlp_bias=True, mixer_bias=True, hidden_act="gelu_new",
    )
    card = build_model_card(config, "hybrid", "Made.", [])
    assert "4 pre-norm residual blocks of width 64 (LayerNorm); token mixers: layers 0-1 spectral_conv, 2 attention, " \
           "3 nfo, output gate `glu`" in card.text
    assert "MLP: plain, width 256, activation `gelu_new`, with biases" in card.text
    assert "`attention`: causal multi-head attention, 4 heads" in card.text
    assert "short convolution of 4 tokens (input and output projections with biases)" in card.text
    assert "context length: at most 512 tokens (learned position table)" in card.text
    assert "hybrid" in card.data.tags and "SwiGLU" not in card.text
    assert "a key/value cache that grows with the context" in card.text

    default = build_model_card(FiftyNetConfig(hidden_size=64, num_hidden_layers=2), "default", "Made.", []).text
    assert "MLP: gated (SwiGLU-style), width 192, activation `silu`" in default and "(RMSNorm)" in default
    assert "context length: no fixed limit" in default


def test_the_card_record_rebuilds_the_card_it_saved(tmp_path):
    config = FiftyNetConfig(hidden_size=64, num_hidden_layers=2)
    record = CardRecord("tiny", "Made.", MEASUREMENTS, base_model="openai/gpt2", datasets=["Salesforce/wikitext"],
                        num_parameters=10)
    card = record.save(tmp_path, config)
    assert (tmp_path / CARD_RECORD_FILE).is_file()
    assert (tmp_path / "README.md").read_text() == str(card)
    assert CardRecord.load(tmp_path) == record
    assert CardRecord.load(tmp_path / "elsewhere") is None


def test_base_model_metadata_names_hub_models_only(tmp_path):
    (tmp_path / "local").mkdir()
    assert hub_model_id("openai/gpt2") == "openai/gpt2" and hub_model_id("gpt2") == "gpt2"
    assert hub_model_id(tmp_path / "local") is None  # the Hub refuses a card whose base_model is not a Hub model
    assert hub_model_id("not/a/model") is None and hub_model_id(None) is None


def test_a_local_source_is_named_without_its_path(tmp_path):
    config = FiftyNetConfig(hidden_size=64, num_hidden_layers=2)
    CardRecord("kjv-small", "Made.", []).save(tmp_path / "run" / "model", config)
    (tmp_path / "plain").mkdir()
    assert source_name(tmp_path / "run" / "model") == "the local model `kjv-small`"
    assert source_name(tmp_path / "plain") == "the local model `plain`"
    assert source_name("openai/gpt2") == "`openai/gpt2`"
