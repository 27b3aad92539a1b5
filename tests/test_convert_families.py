"""Teachers of every family `fiftynet convert` takes (`conversion.transplant.TEACHER_FAMILIES`): with every layer
kept as attention, the transplanted FiftyNet computes what the teacher computes: logits, greedy tokens with the
cache, left-padded batches, tied and untied heads, grouped-query attention, head sizes, biases, q/k norms and rope
scaling; for tiny random configs and for published configs written out by hand (fewer layers, no download)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config
from transformers.models.llama.modeling_llama import repeat_kv

from fiftynet.conversion import convert
from fiftynet.conversion.distill import LayerwiseDistillation
from fiftynet.conversion.transplant import TEACHER_FAMILIES, spectral_init, transplant
from fiftynet.training import cli, evaluation, tokenizer, train
from fiftynet.training.corpus import load_corpus
from fiftynet.training.tokenizer import train_bpe
from test_cli_errors import fails_with
from test_convert import STEPS, layerwise_losses, mixer_error


def teacher_from(config_class, seed: int = 0, **settings):
    torch.manual_seed(seed)
    config = config_class(**settings)
    config._attn_implementation = "eager"
    return AutoModelForCausalLM.from_config(config).eval()


TINY = dict(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.2, bos_token_id=1,
            eos_token_id=2, pad_token_id=0)
LLAMA3_ROPE = dict(rope_type="llama3", rope_theta=500000.0, factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=16)
TINY_TEACHERS = {
    "llama": (LlamaConfig, dict(tie_word_embeddings=False)),
    "llama tied, multi-head": (LlamaConfig, dict(tie_word_embeddings=True, num_key_value_heads=4)),
    "llama biases": (LlamaConfig, dict(attention_bias=True, mlp_bias=True)),
    "llama3 rope": (LlamaConfig, dict(rope_parameters=LLAMA3_ROPE)),
    "linear rope": (LlamaConfig, dict(rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=4.0))),
    "yarn rope": (LlamaConfig, dict(rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0,
                                                         original_max_position_embeddings=64))),
    "qwen2": (Qwen2Config, dict(tie_word_embeddings=True)),
    "qwen3": (Qwen3Config, dict(head_dim=32, tie_word_embeddings=False)),
    "mistral": (MistralConfig, dict(sliding_window=None)),
}


def assert_same_model(teacher, student, vocab_size: int, length: int = 40, new_tokens: int = 12) -> None:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, vocab_size, (2, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, :7] = 0  # left padding
    with torch.no_grad():
        expected = teacher(ids, attention_mask=mask).logits
        actual = student(ids, attention_mask=mask).logits
    scale = expected[mask.bool()].abs().max()
    assert expected[mask.bool()].std() > 0.1 * scale, "logits that vary: a test that can fail"
    assert (actual - expected)[mask.bool()].abs().max() <= 1e-5 * scale
    greedy = dict(max_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    prompts, prompt_mask = ids[:, :10], mask[:, :10]
    assert torch.equal(student.generate(prompts, attention_mask=prompt_mask, **greedy),
                       teacher.generate(prompts, attention_mask=prompt_mask, **greedy))


@pytest.mark.parametrize("name", TINY_TEACHERS)
def test_every_family_is_reproduced_with_every_layer_kept(name):
    config_class, settings = TINY_TEACHERS[name]
    teacher = teacher_from(config_class, **{**TINY, **settings})
    student = transplant(teacher, ["attention"] * 2).eval()
    assert_same_model(teacher, student, TINY["vocab_size"])
    attention = student.model.layers[0].mixer
    assert attention.k_proj.out_features == teacher.config.num_key_value_heads * attention.head_dim


@pytest.mark.parametrize("name", TINY_TEACHERS)
def test_an_all_spectral_student_of_every_family_has_no_rotary_positions(name):
    """Rotary positions belong to attention: a student with none left has none (FiftyNet refuses rope without an
    attention layer); every weight outside the mixers is the teacher's either way."""
    config_class, settings = TINY_TEACHERS[name]
    teacher = teacher_from(config_class, **{**TINY, **settings})
    hybrid = transplant(teacher, ["spectral_conv", "attention"])
    student = transplant(teacher, ["spectral_conv", "spectral_conv"]).eval()
    assert (hybrid.config.position_encoding, student.config.position_encoding) == ("rope", "none")
    hybrid_weights = hybrid.state_dict()
    assert all(torch.equal(weight, hybrid_weights[key]) for key, weight in student.state_dict().items()
               if ".mixer." not in key)
    assert student(torch.randint(3, 300, (1, 8))).logits.isfinite().all()


def test_the_key_value_cache_keeps_the_teachers_heads():
    teacher = teacher_from(LlamaConfig, **TINY)
    student = transplant(teacher, ["attention", "spectral_conv"]).eval()
    cache = student(torch.randint(3, 300, (1, 5)), use_cache=True).past_key_values
    assert cache.layers[0].keys.shape == (1, TINY["num_key_value_heads"], 5, 16)


@pytest.mark.parametrize("config_class, settings, refusal", [
    (MistralConfig, dict(sliding_window=16), "sliding-window attention (sliding_window=16)"),
    (Qwen2Config, dict(use_sliding_window=True, sliding_window=16, max_window_layers=1), "sliding"),
    (LlamaConfig, dict(rope_parameters=dict(rope_type="dynamic", rope_theta=10000.0, factor=2.0)),
     "rope_type='dynamic'"),
    (LlamaConfig, dict(rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5)),
     "partial_rotary_factor"),
])
def test_what_fiftynet_cannot_compute_is_refused_by_name(config_class, settings, refusal, tmp_path, capsys):
    teacher = teacher_from(config_class, **{**TINY, **settings})
    with pytest.raises(ValueError, match="the conversion does not support") as error:
        transplant(teacher, ["attention"] * 2)
    assert refusal in str(error.value)
    teacher.config.save_pretrained(tmp_path / "teacher")  # no weights: the command refuses before it loads them
    said = fails_with(["convert", "--teacher", str(tmp_path / "teacher"), "--out", str(tmp_path / "out")], capsys)
    assert said.startswith(f"fiftynet convert: error: --teacher {tmp_path / 'teacher'}: the teacher ")
    assert said.endswith("which the conversion does not support") and refusal in said
    assert not (tmp_path / "out").exists()


def test_a_teacher_of_another_family_is_refused_naming_the_families():
    from transformers import GPTNeoXConfig

    teacher = teacher_from(GPTNeoXConfig, vocab_size=300, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                           intermediate_size=64)
    with pytest.raises(ValueError, match="the teacher is a 'gpt_neox' model; the conversion takes gpt2, llama"):
        transplant(teacher, ["attention"])
    assert "gpt_neox" not in TEACHER_FAMILIES


# Published configs as their config.json files give them (fewer layers, to fit CI's memory and time).
PUBLISHED = {
    "SmolLM2-135M": (LlamaConfig, dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_attention_heads=9, num_key_value_heads=3,
        max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
        bos_token_id=0, eos_token_id=0, hidden_act="silu")),
    "Qwen2.5-0.5B": (Qwen2Config, dict(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_attention_heads=14, num_key_value_heads=2,
        max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
        use_sliding_window=False, sliding_window=32768, max_window_layers=24, bos_token_id=151643,
        eos_token_id=151643, hidden_act="silu")),
    "Qwen3-0.6B": (Qwen3Config, dict(
        vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_attention_heads=16, num_key_value_heads=8,
        head_dim=128, max_position_embeddings=40960, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=True, attention_bias=False, use_sliding_window=False, sliding_window=None,
        max_window_layers=28, bos_token_id=151643, eos_token_id=151645, hidden_act="silu")),
    "Llama-3.2-1B": (LlamaConfig, dict(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_attention_heads=32, num_key_value_heads=8,
        head_dim=64, max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_scaling=dict(rope_type="llama3", rope_theta=500000.0, factor=32.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=8192),
        bos_token_id=128000, eos_token_id=128001, hidden_act="silu", mlp_bias=False, attention_bias=False)),
}


@pytest.mark.published_config
@pytest.mark.parametrize("name", PUBLISHED)
def test_published_configs_are_reproduced(name):
    config_class, settings = PUBLISHED[name]
    # A larger initializer than the published 0.02, so that one layer's logits vary enough to compare.
    teacher = teacher_from(config_class, **settings, num_hidden_layers=1, initializer_range=0.1)
    student = transplant(teacher, ["attention"]).eval()
    assert_same_model(teacher, student, settings["vocab_size"], length=24, new_tokens=4)


def test_spectral_init_repeats_each_key_value_head_for_the_query_heads_it_serves():
    teacher = teacher_from(LlamaConfig, **{**TINY, "num_hidden_layers": 3})
    student = transplant(teacher, ["spectral_conv", "attention", "nfo"])
    ids = torch.randint(3, 300, (2, 32), generator=torch.Generator().manual_seed(2))
    spectral_init(student, teacher, ids, [0, 2])
    hidden, width = torch.randn(1, 8, TINY["hidden_size"]), TINY["hidden_size"]
    for layer, value_rows in ((0, slice(2 * width, None)), (2, slice(None))):
        attention, mixer = teacher.model.layers[layer].self_attn, student.model.layers[layer].mixer
        values = attention.v_proj(hidden).view(1, 8, TINY["num_key_value_heads"], -1).transpose(1, 2)
        expected = repeat_kv(values, 2).transpose(1, 2).flatten(2)  # transformers' own grouped-query layout
        with torch.no_grad():
            torch.testing.assert_close(mixer.in_proj(hidden)[..., value_rows], expected)
        assert torch.equal(mixer.out_proj.weight, attention.o_proj.weight)


def test_filters_fitted_to_a_grouped_query_teachers_heads_reproduce_its_attention(tmp_path):
    teacher = teacher_from(Qwen2Config, **{**TINY, "num_hidden_layers": 3, "initializer_range": 0.3})
    ids = torch.randint(3, 300, (8, 64), generator=torch.Generator().manual_seed(5))
    errors = {}
    for fit in ("profile", "outputs"):
        student = transplant(teacher, ["spectral_conv", "attention", "spectral_conv"])
        spectral_init(student, teacher, ids, [0, 2], fit=fit)
        errors[fit] = [mixer_error(teacher, student, ids, layer) for layer in (0, 2)]
    assert all(output < profile < 1.5 for output, profile in zip(errors["outputs"], errors["profile"])), errors
    distillation = LayerwiseDistillation(teacher, student, [0, 2])  # its hooks catch a Qwen2 attention's input
    first, last = layerwise_losses(distillation, ids, steps=10)
    assert last < first


def test_a_layerwise_group_runs_the_teacher_only_up_to_its_last_layer():
    teacher = teacher_from(LlamaConfig, **{**TINY, "num_hidden_layers": 4})
    student = transplant(teacher, ["spectral_conv", "spectral_conv", "attention", "spectral_conv"])
    spectral_init(student, teacher, torch.randint(3, 300, (4, 32), generator=torch.Generator().manual_seed(2)),
                  [0, 1, 3])
    ran = []
    hooks = [block.register_forward_hook(lambda module, args, output, index=index: ran.append(index))
             for index, block in enumerate(teacher.model.layers)]
    ids = torch.randint(3, 300, (2, 32), generator=torch.Generator().manual_seed(3))
    losses = {}
    for group in ([0, 1], [3], [0, 1, 3]):
        ran.clear()
        distillation = LayerwiseDistillation(teacher, student, group)
        losses[tuple(group)] = distillation(ids)["loss"]
        assert ran == list(range(max(group))), group  # the stop comes inside the last layer, after its attention
        trainable = {name.split(".mixer.")[0] for name, parameter in distillation.named_parameters()
                     if parameter.requires_grad}
        assert trainable == {f"student.model.layers.{layer}" for layer in group}
    for hook in hooks:
        hook.remove()
    # Stopping early changes nothing of what the layers compute: two groups' losses make the whole stage's.
    torch.testing.assert_close((2 * losses[0, 1] + losses[3,]) / 3, losses[0, 1, 3])
    assert losses[0, 1] > 0.01 and losses[3,] > 0.01


def test_convert_distils_one_group_of_layers_at_a_time(tmp_path, capsys, monkeypatch):
    (teacher_dir, validation), out = llama_teacher(tmp_path), tmp_path / "converted"
    passes, losses = [], {}

    class Recorded(LayerwiseDistillation):
        def forward(self, input_ids, labels=None):
            trainable = {name.split(".mixer.")[0] for name, parameter in self.named_parameters()
                         if parameter.requires_grad}
            passes.append((self.layers, trainable))
            output = super().forward(input_ids, labels)
            losses[tuple(self.layers)] = output["loss"].item()  # the group's last step's, in the end
            return output

    monkeypatch.setattr(convert, "LayerwiseDistillation", Recorded)
    cli.main(["convert", "--teacher", str(teacher_dir), "--out", str(out), "--layerwise_group_size", "2",
              "--logging_steps", "1", *STEPS, str(validation), "--data", str(validation)])
    assert passes == [([0, 1], {"student.model.layers.0", "student.model.layers.1"})] * 3 + [
        ([2], {"student.model.layers.2"})] * 3
    layerwise = json.loads((out / "report.json").read_text())["stages"][2]
    assert layerwise["groups"] == 2 and layerwise["tokens"] == 2 * 3 * 2 * 64  # each group: 3 steps of 2 blocks
    # The stage's final loss is a mean over layers, as the loss of one group of all of them would be.
    assert layerwise["final_loss"] == pytest.approx((2 * losses[0, 1] + losses[2,]) / 3, rel=1e-4)
    assert "--layerwise_group_size must be at least 1 layer, got 0" in fails_with(
        ["convert", "--teacher", str(teacher_dir), "--out", str(tmp_path / "other"), "--layerwise_group_size", "0"],
        capsys)


def test_a_spectral_mixer_cannot_replace_heads_wider_than_the_residual_stream(tmp_path, capsys):
    teacher = teacher_from(Qwen3Config, **{**TINY, "head_dim": 32})  # 4 heads of 32 channels, hidden_size 64
    student = transplant(teacher, ["spectral_conv", "attention"])
    with pytest.raises(ValueError, match="the teacher's 4 attention heads hold 128 channels, not hidden_size=64"):
        spectral_init(student, teacher, torch.randint(3, 300, (1, 16)), [0])
    teacher.config.save_pretrained(tmp_path / "teacher")  # refused before the (absent) weights are loaded
    said = fails_with(["convert", "--teacher", str(tmp_path / "teacher"), "--out", str(tmp_path / "out"),
                       "--keep_attention", "auto"], capsys)
    assert said.endswith("layer 1: the teacher's 4 attention heads hold 128 channels, not hidden_size=64, which a "
                         "spectral mixer's values have; keep its attention")


def llama_teacher(folder: Path) -> tuple[Path, Path]:
    """A tiny grouped-query Llama and its BPE saved in `folder`, and a validation text beside it."""
    tokenizer = train_bpe([load_corpus("train")[:100_000]], vocab_size=300)
    teacher = teacher_from(LlamaConfig, **{**TINY, "num_hidden_layers": 3, "initializer_range": 0.02,
                                           "vocab_size": len(tokenizer), "bos_token_id": tokenizer.eos_token_id,
                                           "eos_token_id": tokenizer.eos_token_id, "pad_token_id": None})
    teacher.save_pretrained(folder / "teacher")
    tokenizer.save_pretrained(folder / "teacher")
    validation = folder / "validation.txt"
    validation.write_text(load_corpus("validation")[:10_000])
    return folder / "teacher", validation


def test_convert_takes_a_grouped_query_llama_end_to_end(tmp_path, capsys):
    (teacher_dir, validation), out = llama_teacher(tmp_path), tmp_path / "converted"
    cli.main(["convert", "--teacher", str(teacher_dir), "--out", str(out), "--keep_attention", "auto",
              "--auto_keep", "1", *STEPS, str(validation), "--data", str(validation)])
    report = json.loads((out / "report.json").read_text())
    assert [entry["stage"] for entry in report["stages"]] == ["teacher", "spectral_init", "layerwise", "end_to_end"]
    assert report["mixer_types"].count("attention") == 1
    model = AutoModelForCausalLM.from_pretrained(out / "model", trust_remote_code=True).eval()
    assert model.config.num_key_value_heads == 2 and model.config.rope_parameters["rope_type"] == "default"
    metrics = evaluation.main(["--model", str(out / "model"), "--text", str(validation), "--block_size", "64"])
    assert metrics["eval_perplexity"] == pytest.approx(report["stages"][-1]["perplexity"], rel=1e-4)
    assert "Converted from " in (out / "model" / "README.md").read_text()


def test_a_bfloat16_teacher_distils_a_float32_student_with_checkpointing(tmp_path, capsys):
    """What a 0.5-1B teacher needs on one GPU: a bfloat16 teacher and activation checkpointing (which the layer-wise
    stage, whose model is not a PreTrainedModel, does without)."""
    (teacher_dir, validation), out = llama_teacher(tmp_path), tmp_path / "converted"
    parameters = AutoModelForCausalLM.from_pretrained(teacher_dir).num_parameters()
    cli.main(["convert", "--teacher", str(teacher_dir), "--out", str(out), "--keep_attention", "1",
              "--teacher_dtype", "bfloat16", train.CHECKPOINTING_FLAG, *STEPS, str(validation), "--data",
              str(validation)])
    said = capsys.readouterr().err
    assert f"teacher (bfloat16) {parameters * 2 / 2**30:.1f} GiB" in said
    report = json.loads((out / "report.json").read_text())
    assert [entry["stage"] for entry in report["stages"]] == ["teacher", "spectral_init", "layerwise", "end_to_end"]
    assert report["arguments"]["teacher_dtype"] == "bfloat16"
    with safe_open(out / "model" / "model.safetensors", "pt") as weights:
        assert {weights.get_slice(name).get_dtype() for name in weights.keys()} == {"F32"}


def test_a_conversion_that_cannot_fit_is_refused_before_the_teacher_is_loaded(tmp_path, capsys, monkeypatch):
    teacher_dir = tmp_path / "teacher"  # a config without weights: nothing is loaded before the refusal
    LlamaConfig(**{**TINY, "vocab_size": 128_000}).save_pretrained(teacher_dir)
    config = LlamaConfig.from_pretrained(teacher_dir)
    teacher = AutoModelForCausalLM.from_config(config)
    parameters = teacher.num_parameters()
    student = transplant(teacher, ["spectral_conv", "spectral_conv"])
    assert student.num_parameters() > parameters  # a spectral_conv mixer has more than a grouped-query attention
    args, training_args = convert.parse_arguments(["--teacher", str(teacher_dir), "--out", str(tmp_path / "out"),
                                                   "--per_device_train_batch_size", "4"])
    parts = convert.memory_estimate(config, args, training_args, block_size=256)
    assert list(parts.values()) == [parameters * 4, student.num_parameters() * 16,
                                    train.activation_bytes(64, 2, 256, training_args), 4 * 256 * 128_000 * 12]
    # With --lora, only the new mixers train in full.
    args, training_args = convert.parse_arguments(["--teacher", str(teacher_dir), "--out", str(tmp_path / "out"),
                                                   "--per_device_train_batch_size", "4", "--lora", "--keep_attention",
                                                   "0"])
    hybrid = transplant(teacher, ["attention", "spectral_conv"])
    mixer = sum(parameter.numel() for parameter in hybrid.model.layers[1].mixer.parameters())
    lora_parts = convert.memory_estimate(config, args, training_args, block_size=256)
    assert lora_parts["student (float32, with gradients and AdamW states of the new mixers)"] == (
        (hybrid.num_parameters() + mixer) * 4 + mixer * 12)  # PEFT trains a copy of the mixer beside it
    monkeypatch.setattr(convert, "device_memory", lambda device: sum(parts.values()) - 1)
    error = fails_with(["convert", "--teacher", str(teacher_dir), "--out", str(tmp_path / "out"), "--block_size",
                        "256", "--per_device_train_batch_size", "4"], capsys)
    assert error.startswith(f"fiftynet convert: error: the conversion needs about {sum(parts.values()) / 2**30:.0f} "
                            f"GiB per process (teacher (float32) {parameters * 4 / 2**30:.1f} GiB, student (float32, "
                            "with gradients")
    assert "logits 1.5 GiB), more than the 2 GiB of cpu: lower --per_device_train_batch_size" in error
    monkeypatch.setattr(convert, "device_memory", lambda device: sum(parts.values()))
    assert "cannot load teacher" in fails_with(["convert", "--teacher", str(teacher_dir), "--out",
                                                str(tmp_path / "out2"), "--block_size", "256",
                                                "--per_device_train_batch_size", "4"], capsys)


def test_a_hub_teacher_that_cannot_be_reached_fails_in_one_line_naming_it(tmp_path, capsys, monkeypatch):
    def unreachable(name, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(tokenizer, "model_info", unreachable)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # an empty cache
    error = fails_with(["convert", "--teacher", "HuggingFaceTB/SmolLM2-135M", "--out", str(tmp_path / "out")],
                       capsys)
    assert error.startswith("fiftynet convert: error: cannot load teacher HuggingFaceTB/SmolLM2-135M: ")
