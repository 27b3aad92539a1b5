"""`fiftynet convert`: the exact GPT-2 transplant, the spectral initialization, the distillation stages and the
command end to end on a tiny random GPT-2 (the bundled corpus as data, no network)."""

import json
import math

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, PreTrainedModel

from fiftynet.conversion.convert import layer_importance, silence_mixers
from fiftynet.conversion.distill import DistillationTrainer, LayerwiseDistillation
from fiftynet.conversion.teacher import build_teacher
from fiftynet.conversion.transplant import (
    attention_by_distance,
    fit_filter,
    fit_filter_to_outputs,
    spectral_init,
    teacher_family,
    transplant_gpt2,
)
from fiftynet.training import cli, evaluation
from fiftynet.training.corpus import load_corpus
from fiftynet.training.tokenizer import train_bpe
from modeling_fiftynet import FiftyNetConfig, FiftyNetForCausalLM
from modeling_fiftynet.modeling_fiftynet import FiftyNetFourierFilter, FiftyNetModalFilter
from modeling_fiftynet.spectral_ops import fft_causal_conv
from test_cli_errors import fails_with


def tiny_gpt2(seed: int = 0, **overrides) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    settings = dict(vocab_size=300, n_embd=32, n_layer=3, n_head=4, n_positions=64, bos_token_id=299,
                    eos_token_id=299)
    return GPT2LMHeadModel(GPT2Config(**{**settings, **overrides})).eval()


@pytest.mark.parametrize("tied", [True, False])
def test_transplant_with_every_layer_kept_reproduces_the_teacher(tied):
    teacher = tiny_gpt2(tie_word_embeddings=tied, activation_function="gelu_new")
    student = transplant_gpt2(teacher, ["attention"] * 3).eval()
    ids = torch.randint(0, 300, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, actual = teacher(ids).logits, student(ids).logits
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)
    greedy = dict(max_new_tokens=10, do_sample=False, pad_token_id=299)
    assert torch.equal(student.generate(ids[:1, :8], **greedy), teacher.generate(ids[:1, :8], **greedy))


def test_special_ids_outside_the_teachers_vocabulary_are_dropped_with_a_warning(caplog):
    # GPT2Config's default bos/eos (50256) with a 300-token vocabulary: transformers accepts it, so must we.
    teacher = tiny_gpt2(bos_token_id=50256, eos_token_id=[7, 50256], pad_token_id=3)
    with caplog.at_level("WARNING"):
        student = transplant_gpt2(teacher, ["attention"] * 3).eval()
    assert (student.config.bos_token_id, student.config.eos_token_id, student.config.pad_token_id) == (None, [7], 3)
    assert "bos_token_id=50256 lies outside its vocabulary of 300 tokens" in caplog.text
    assert "eos_token_id=[7, 50256]" in caplog.text and "pad_token_id" not in caplog.text
    ids = torch.randint(0, 300, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(student(ids).logits, teacher(ids).logits, rtol=0, atol=1e-5)


def test_teachers_the_transplant_cannot_express_are_refused():
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        transplant_gpt2(tiny_gpt2(scale_attn_by_inverse_layer_idx=True), ["attention"] * 3)


def test_fit_filter_recovers_filters_of_its_own_form():
    torch.manual_seed(0)
    config = FiftyNetConfig(hidden_size=6, filter_state_size=4, fourier_kernel_size=32, fourier_modes=8)
    for filter in (FiftyNetModalFilter(config), FiftyNetFourierFilter(config)):
        filter.reset_parameters()
        target = (filter.kernel()[0] if isinstance(filter, FiftyNetFourierFilter) else
                  torch.einsum("dn,dnl->dl", filter.complex_residues(), filter.powers(32)).real).detach()
        torch.nn.init.zeros_(filter.residues if isinstance(filter, FiftyNetModalFilter) else filter.coefficients)
        assert fit_filter(filter, target) < 1e-6


def test_fit_filter_to_outputs_recovers_filters_of_its_own_form():
    torch.manual_seed(0)
    config = FiftyNetConfig(hidden_size=6, filter_state_size=4, fourier_kernel_size=16, fourier_modes=8)
    inputs = torch.randn(3, 6, 40)
    for filter in (FiftyNetModalFilter(config), FiftyNetFourierFilter(config)):
        filter.reset_parameters()
        with torch.no_grad():
            outputs = filter(inputs)[:, 0] if isinstance(filter, FiftyNetFourierFilter) else filter(inputs)
        torch.nn.init.zeros_(filter.residues if isinstance(filter, FiftyNetModalFilter) else filter.coefficients)
        assert fit_filter_to_outputs(filter, inputs, outputs, ridge=0.0, channels_per_chunk=4) < 1e-6
        with torch.no_grad():
            refitted = filter(inputs)[:, 0] if isinstance(filter, FiftyNetFourierFilter) else filter(inputs)
        torch.testing.assert_close(refitted, outputs, rtol=0, atol=1e-4 * outputs.abs().max().item())


def mixer_error(teacher: PreTrainedModel, student: FiftyNetForCausalLM, ids: torch.Tensor, layer: int) -> float:
    """The relative error of the student's mixer against the teacher's attention output, on the teacher's input."""
    caught = {}
    hook = teacher_family(teacher).attention(teacher, layer).register_forward_hook(
        lambda module, args, kwargs, output: caught.update(inputs=args[0] if args else kwargs["hidden_states"],
                                                           output=output[0]), with_kwargs=True)
    with torch.no_grad():
        teacher(ids)
        hook.remove()
        error = student.model.layers[layer].mixer(caught["inputs"]) - caught["output"]
    return float(error.norm() / caught["output"].norm())


def test_spectral_init_starts_each_mixer_as_value_projection_filtered_then_output_projection():
    teacher = tiny_gpt2()
    student = transplant_gpt2(teacher, ["spectral_conv", "attention", "nfo"])
    ids = torch.randint(0, 300, (2, 48), generator=torch.Generator().manual_seed(2))
    profiles = attention_by_distance(teacher, ids, [0, 2])
    assert profiles.shape == (2, 4, 48)
    # Every query's weights sum to 1 over its keys; distance 0 is averaged over every query.
    assert torch.all(profiles >= 0) and torch.all(profiles[..., 0] <= 1)
    errors = spectral_init(student, teacher, ids, [0, 2], fit="profile")
    assert errors[0] < 0.05 and errors[1] < 1e-6  # 16 real modes fit the profile; 33 Fourier modes span 64 lags

    hidden = torch.randn(2, 48, 32)
    attention, mixer = teacher.transformer.h[0].attn, student.model.layers[0].mixer
    values = (hidden @ attention.c_attn.weight[:, 64:] + attention.c_attn.bias[64:]).transpose(1, 2)
    kernel = profiles[0].repeat_interleave(8, dim=0)
    expected = fft_causal_conv(values, kernel).transpose(1, 2) @ attention.c_proj.weight + attention.c_proj.bias
    with torch.no_grad():
        torch.testing.assert_close(mixer(hidden), expected, rtol=0.05, atol=0.05 * expected.abs().max().item())


@pytest.mark.parametrize("mixer", ["spectral_conv", "fftnet"])
def test_filters_fitted_to_the_heads_outputs_reproduce_the_attention_better_than_its_profile(mixer):
    # A trained-like teacher: large weights make each head's attention depend on the tokens.
    teacher = tiny_gpt2(initializer_range=0.3)
    ids = torch.randint(0, 300, (8, 64), generator=torch.Generator().manual_seed(5))
    errors = {}
    for fit in ("profile", "outputs"):
        student = transplant_gpt2(teacher, [mixer, "attention", mixer])
        fit_errors = spectral_init(student, teacher, ids, [0, 2], fit=fit)
        errors[fit] = [mixer_error(teacher, student, ids, layer) for layer in (0, 2)]
        if fit == "outputs":  # the fit's own error is the heads' error before the (linear) output projection
            assert all(0 < error < 1 for error in fit_errors)
    assert all(output < profile for output, profile in zip(errors["outputs"], errors["profile"])), errors


def test_a_control_mixes_no_tokens_and_equals_the_teacher_without_attention():
    teacher = tiny_gpt2()
    student = transplant_gpt2(teacher, ["spectral_conv"] * 3)
    ids = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(6))
    spectral_init(student, teacher, ids, [0, 1, 2])
    silence_mixers(student, [0, 1, 2])
    assert not any(p.requires_grad for layer in student.model.layers for p in layer.mixer.parameters())
    for block in teacher.transformer.h:
        block.attn.c_proj.weight.data.zero_()
    with torch.no_grad():
        torch.testing.assert_close(student(ids).logits, teacher(ids).logits, rtol=0, atol=1e-5)
        changed = ids.clone()
        changed[:, :16] = (changed[:, :16] + 1) % 300  # other earlier tokens: no later position may notice
        torch.testing.assert_close(student(changed).logits[:, 16:], student(ids).logits[:, 16:], rtol=0, atol=0)


def layerwise_losses(distillation: LayerwiseDistillation, ids: torch.Tensor, steps: int) -> tuple[float, float]:
    """The layer-wise loss on `ids` before and after `steps` Adam steps on them."""
    optimizer = torch.optim.Adam([p for p in distillation.parameters() if p.requires_grad], lr=3e-3)
    first = distillation(ids)["loss"].item()
    for _ in range(steps):
        optimizer.zero_grad()
        distillation(ids)["loss"].backward()
        optimizer.step()
    return first, distillation(ids)["loss"].item()


def test_layerwise_distillation_trains_only_the_new_mixers_and_lowers_their_loss():
    teacher = tiny_gpt2()
    student = transplant_gpt2(teacher, ["spectral_conv", "attention", "spectral_conv"])
    distillation = LayerwiseDistillation(teacher, student, [0, 2])
    trainable = {name for name, p in distillation.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith(("student.model.layers.0.mixer", "student.model.layers.2.mixer"))
                             for name in trainable)
    ids = torch.randint(0, 300, (4, 48), generator=torch.Generator().manual_seed(3))
    first, last = layerwise_losses(distillation, ids, steps=30)
    assert last < 0.5 * first
    assert not any(hook for block in teacher.transformer.h for hook in block.attn._forward_hooks.values())


def test_the_layerwise_loss_is_a_mean_over_blocks_whatever_the_batch_split():
    """Each block is measured against its own target's energy, so the loss of a batch is the mean of its blocks'
    losses: two processes or accumulation steps splitting a batch average to the loss of the whole."""
    teacher = tiny_gpt2(initializer_range=0.3)
    student = transplant_gpt2(teacher, ["spectral_conv", "attention", "spectral_conv"])
    spectral_init(student, teacher, torch.randint(0, 300, (4, 48), generator=torch.Generator().manual_seed(4)), [0, 2])
    distillation = LayerwiseDistillation(teacher, student, [0, 2])
    quiet, loud = torch.full((1, 48), 5), torch.randint(0, 300, (1, 48), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        losses = [distillation(ids)["loss"] for ids in (quiet, loud)]
        torch.testing.assert_close(distillation(torch.cat([quiet, loud]))["loss"], (losses[0] + losses[1]) / 2)
    assert abs(losses[0] - losses[1]) > 0.1 * losses[1]  # blocks whose losses differ: a test that can fail


def test_distillation_loss_is_zero_when_the_student_is_the_teacher(tmp_path):
    teacher = tiny_gpt2()
    student = transplant_gpt2(teacher, ["attention"] * 3)
    from transformers import TrainingArguments

    trainer = DistillationTrainer(model=student, args=TrainingArguments(tmp_path, report_to="none"), teacher=teacher,
                                  lm_weight=0.0)
    ids = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(4))
    assert abs(trainer.compute_loss(student, {"input_ids": ids, "labels": ids}).item()) < 1e-5


@pytest.fixture(scope="module")
def teacher_folder(tmp_path_factory):
    """A random tiny GPT-2 with a BPE trained on part of the corpus, saved as `fiftynet convert` expects."""
    folder = tmp_path_factory.mktemp("teacher")
    tokenizer = train_bpe([load_corpus("train")[:200_000]], vocab_size=400)
    torch.manual_seed(0)
    build_teacher("tiny", len(tokenizer), 64, tokenizer.eos_token_id).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


STEPS = ["--block_size", "64", "--calibration_blocks", "4", "--layerwise_steps", "3", "--max_steps", "2",
         "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "32", "--report_to", "none",
         "--validation_data"]


@pytest.fixture(scope="module")
def validation_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "validation.txt"
    path.write_text(load_corpus("validation")[:20_000])
    return path


def test_convert_end_to_end_writes_a_loadable_model_and_the_stage_report(teacher_folder, validation_file, tmp_path,
                                                                          capsys):
    out = tmp_path / "converted"
    eval_text = validation_file.parent / "short.txt"
    eval_text.write_text("Not a verse: a text of another kind, shorter than one block.")
    cli.main(["convert", "--teacher", str(teacher_folder), "--out", str(out), "--keep_attention", "1",
              *STEPS, str(validation_file), "--data", str(validation_file), "--save_steps", "1",
              "--eval_text", str(eval_text)])
    report = json.loads((out / "report.json").read_text())
    assert [entry["stage"] for entry in report["stages"]] == ["teacher", "spectral_init", "layerwise", "end_to_end"]
    assert all(entry["eval_text_perplexity"] > 1 for entry in report["stages"])
    # What `fiftynet eval` says of the saved student and of the teacher on that text is what the report says.
    for folder, stage in ((out / "model", report["stages"][-1]), (teacher_folder, report["stages"][0])):
        metrics = evaluation.main(["--model", str(folder), "--text", str(eval_text), "--block_size", "64"])
        assert metrics["eval_perplexity"] == pytest.approx(stage["eval_text_perplexity"], rel=1e-4)
    metrics = evaluation.main(["--model", str(out / "layerwise"), "--text", str(eval_text), "--block_size", "64"])
    assert metrics["eval_perplexity"] == pytest.approx(report["stages"][2]["eval_text_perplexity"], rel=1e-4)
    assert report["mixer_types"] == ["spectral_conv", "attention", "spectral_conv", "spectral_conv"]
    assert report["stages"][2]["tokens"] == 3 * 2 * 64 and report["stages"][3]["tokens"] == 2 * 2 * 64
    final, teacher = report["stages"][-1], report["stages"][0]
    assert final["perplexity_vs_teacher"] == final["perplexity"] / teacher["perplexity"]
    # greedy_agreement: the saved student's 32-token greedy continuations of the first halves of the first 32
    # validation blocks, against the teacher's, recomputed here with generate() itself.
    tokenizer = AutoTokenizer.from_pretrained(teacher_folder)
    ids = tokenizer(validation_file.read_text(), add_special_tokens=False)["input_ids"]
    prompts = torch.tensor(ids[: 32 * 64]).view(32, 64)[:, :32]
    greedy = dict(attention_mask=torch.ones_like(prompts), max_new_tokens=32, do_sample=False)
    continuations = [AutoModelForCausalLM.from_pretrained(folder).eval().generate(prompts, **greedy)[:, 32:]
                     for folder in (teacher_folder, out / "model")]
    assert teacher["greedy_agreement"] == 1.0
    assert final["greedy_agreement"] == pytest.approx((continuations[0] == continuations[1]).float().mean().item())
    assert 0 < final["greedy_agreement"] < 1

    model = AutoModelForCausalLM.from_pretrained(out / "model", trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    assert model.config.mixer_types == report["mixer_types"] and len(tokenizer) == model.config.vocab_size
    ids = tokenizer("In the beginning", return_tensors="pt")["input_ids"]
    assert model.generate(ids, max_new_tokens=5, do_sample=False).shape == (1, ids.shape[1] + 5)
    card = ModelCard.load(out / "model" / "README.md")
    assert {result.metric_type for result in card.data.eval_results} >= {"perplexity", "bits_per_byte"}
    assert "| end_to_end |" in card.text and "| spectral_init |" in card.text

    # --resume skips the finished stages and continues the end-to-end stage from its last complete checkpoint (a kill
    # while writing checkpoint-2 left its weights truncated).
    weights = out / "checkpoints" / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    capsys.readouterr()
    cli.main(["convert", "--teacher", str(teacher_folder), "--out", str(out), "--keep_attention", "1", "--resume",
              *STEPS, str(validation_file), "--data", str(validation_file), "--max_steps", "3"])
    said = capsys.readouterr().err
    assert f"{weights.parent} cannot be continued from ({weights} cannot be read" in said
    assert f"resuming from {out / 'checkpoints' / 'checkpoint-1'}, the newest complete checkpoint" in said
    resumed = json.loads((out / "report.json").read_text())
    assert resumed["stages"][:3] == report["stages"][:3]
    assert resumed["stages"][3]["tokens"] == 3 * 2 * 64


def test_convert_keeps_the_attention_whose_replacement_costs_most_and_runs_a_control(teacher_folder, validation_file,
                                                                                     tmp_path, capsys):
    hybrid = tmp_path / "hybrid"
    cli.main(["convert", "--teacher", str(teacher_folder), "--out", str(hybrid), "--keep_attention", "auto",
              "--auto_keep", "1", *STEPS, str(validation_file), "--data", str(validation_file)])
    report = json.loads((hybrid / "report.json").read_text())
    importance = report["layer_importance"]
    assert len(importance) == 4 and all(ratio > 0 for ratio in importance) and len(set(importance)) == 4
    kept = max(range(4), key=importance.__getitem__)
    assert report["mixer_types"] == ["attention" if layer == kept else "spectral_conv" for layer in range(4)]

    control = tmp_path / "control"
    cli.main(["convert", "--teacher", str(teacher_folder), "--out", str(control), "--control", *STEPS,
              str(validation_file), "--data", str(validation_file), "--layerwise_steps", "0", "--max_steps", "3"])
    report = json.loads((control / "report.json").read_text())
    assert [entry["stage"] for entry in report["stages"]] == ["teacher", "spectral_init", "end_to_end"]
    student = FiftyNetForCausalLM.from_pretrained(control / "model")
    teacher = GPT2LMHeadModel.from_pretrained(teacher_folder)
    for layer, block in zip(student.model.layers, teacher.transformer.h):
        assert not layer.mixer.out_proj.weight.any()  # still silent after training
        torch.testing.assert_close(layer.mixer.out_proj.bias, block.attn.c_proj.bias)  # frozen
        assert not torch.equal(layer.mlp.up_proj.weight, block.mlp.c_fc.weight.t())  # the rest trained
    assert "the control experiment" in (control / "model" / "README.md").read_text()
    # Resuming it as a conversion would train silenced mixers: refused, naming the argument.
    error = fails_with(["convert", "--teacher", str(teacher_folder), "--out", str(control), "--resume", *STEPS,
                        str(validation_file), "--data", str(validation_file)], capsys)
    assert "the run in" in error and "was made with --control True, not False" in error


def test_layer_importance_is_what_replacing_each_layer_alone_costs():
    teacher = tiny_gpt2(initializer_range=0.3)
    teacher.transformer.h[1].attn.c_proj.weight.data.zero_()  # layer 1's attention adds only its bias
    ids = torch.randint(0, 300, (6, 48), generator=torch.Generator().manual_seed(7))
    importance = layer_importance(teacher, "spectral_conv", ids[:3], ids[3:], "outputs", batch_size=2)
    assert importance[1] == pytest.approx(1.0, abs=1e-5)  # replacing a layer that mixes nothing costs nothing
    assert importance[0] != pytest.approx(1.0, abs=1e-3) and importance[2] != pytest.approx(1.0, abs=1e-3)
    student = transplant_gpt2(teacher, ["attention", "attention", "spectral_conv"]).eval()
    spectral_init(student, teacher, ids[:3], [2])
    with torch.no_grad():
        losses = [model(ids[3:], labels=ids[3:]).loss for model in (student, teacher)]
    assert importance[2] == pytest.approx(math.exp(losses[0] - losses[1]), rel=1e-5)


def test_convert_with_lora_and_compression(teacher_folder, validation_file, tmp_path):
    out = tmp_path / "converted"
    cli.main(["convert", "--teacher", str(teacher_folder), "--out", str(out), "--mixer", "fftnet", "--lora",
              "--compress", "int8", *STEPS, str(validation_file), "--data", str(validation_file)])
    report = json.loads((out / "report.json").read_text())
    assert report["stages"][-1]["stage"] == "compressed"
    model = AutoModelForCausalLM.from_pretrained(out / "model", trust_remote_code=True)
    assert model.config.compression["method"] == "int8"
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_bad_conversion_input(teacher_folder, validation_file, tmp_path, capsys):
    base = ["convert", "--teacher", str(teacher_folder), "--out", str(tmp_path / "out"), "--report_to", "none"]
    assert "--keep_attention [7]: the teacher has layers 0 to 3" in fails_with([*base, "--keep_attention", "7"],
                                                                                capsys)
    assert "--mixer 'attention' is not one of" in fails_with([*base, "--mixer", "attention"], capsys)
    assert "exceeds the teacher's context of 64 tokens" in fails_with([*base, "--block_size", "128"], capsys)
    assert "give layer indices, or `auto` alone" in fails_with([*base, "--keep_attention", "1", "auto"], capsys)
    assert "--keep_attention 1 2 1 names a layer twice" in fails_with([*base, "--keep_attention", "1", "2", "1"],
                                                                       capsys)
    assert "--keep_attention keeps all 4 layers: nothing would be converted" in fails_with(
        [*base, "--keep_attention", "0", "1", "2", "3"], capsys)
    assert "--auto_keep 4: the teacher has 4 layers; keep 1 to 3" in fails_with(
        [*base, "--keep_attention", "auto", "--auto_keep", "4"], capsys)
    assert "--auto_keep counts the layers --keep_attention auto chooses" in fails_with(
        [*base, "--auto_keep", "1"], capsys)
    assert "--control freezes the mixers that the layer-wise stage trains" in fails_with([*base, "--control"], capsys)
    short = [*base, "--keep_attention", "auto", "--calibration_blocks", "4", "--block_size", "64", "--data",
             str(validation_file), "--validation_data", str(validation_file)]
    assert "--keep_attention auto fits on --calibration_blocks 400 training blocks and measures on as many more" in (
        fails_with([*short, "--calibration_blocks", "400"], capsys))
    assert "--filter_fit 'mean' is not one of outputs, profile" in fails_with([*base, "--filter_fit", "mean"], capsys)
    assert "no such file or folder" in fails_with([*base, "--eval_text", str(tmp_path / "missing.txt")], capsys)
    (tmp_path / "run" / "model").mkdir(parents=True)
    FiftyNetForCausalLM(FiftyNetConfig(hidden_size=16, num_hidden_layers=1)).save_pretrained(tmp_path / "run" / "model")
    assert f"is a run's folder; its model is --model {tmp_path / 'run' / 'model'}" in fails_with(
        ["eval", "--model", str(tmp_path / "run")], capsys)
    fiftynet = tmp_path / "fiftynet"
    FiftyNetForCausalLM(FiftyNetConfig(hidden_size=16, num_hidden_layers=1)).save_pretrained(fiftynet)
    error = fails_with(["convert", "--teacher", str(fiftynet), "--out", str(tmp_path / "out")], capsys)
    assert "is a FiftyNetForCausalLM (fiftynet); the conversion takes gpt2, llama, mistral, qwen2, qwen3" in error
