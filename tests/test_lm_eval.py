"""EleutherAI's lm-evaluation-harness runs a saved FiftyNet folder (`--model hf`, `trust_remote_code=True`) on the local
KJV tasks of `benchmarks/lm_eval_tasks`, offline: its scores are the model's own, computed here from its logits.

The tasks cover the three request types: `kjv_cloze` (multiple choice: `loglikelihood`), `kjv_verse_end`
(`generate_until`) and `kjv_verse_perplexity` (`loglikelihood_rolling`).
"""

import json
import math
from pathlib import Path

import datasets
import lm_eval
import numpy as np
import pytest
import torch
from conftest import run_isolated
from lm_eval.tasks import TaskManager

from benchmarks import lm_eval_compare
from benchmarks.lm_eval_tasks import build
from fiftynet.training.corpus import load_corpus
from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetConfig, FiftyNetForCausalLM


REPO_ROOT = Path(__file__).resolve().parents[1]
TASKS = ["kjv_cloze", "kjv_verse_end", "kjv_verse_perplexity"]
LIMIT = 8
TINY = dict(hidden_size=32, num_hidden_layers=2, intermediate_size=64, filter_state_size=8, fourier_kernel_size=16,
            fourier_modes=6, num_attention_heads=4)


def save_tiny_model(folder: Path, **config) -> FiftyNetForCausalLM:
    torch.manual_seed(0)
    model = FiftyNetForCausalLM(FiftyNetConfig(**TINY, **config)).eval()
    model.save_pretrained(folder)
    FiftyNetByteTokenizer().save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[FiftyNetForCausalLM, dict]:
    """A tiny FiftyNet whose outputs vary with its input, and lm-eval's results on the first `LIMIT` items."""
    folder = tmp_path_factory.mktemp("lm_eval") / "model"
    model = save_tiny_model(folder, initializer_range=0.5)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO_ROOT)  # the tasks' data_files are relative to the repository root
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(folder.parent / "datasets"))
        # A batch of 4 pads: right padding for the loglikelihoods, left padding for generation.
        results = lm_eval.simple_evaluate(
            model="hf", model_args=f"pretrained={folder},trust_remote_code=True", tasks=TASKS,
            task_manager=TaskManager(include_path=str(REPO_ROOT / "benchmarks" / "lm_eval_tasks")),
            batch_size=4, device="cpu", limit=LIMIT, log_samples=True,
        )
    return model, results


def byte_ids(text: str) -> list[int]:
    return list(text.encode("utf-8"))


@torch.no_grad()
def continuation_logprob(model: FiftyNetForCausalLM, context: list[int], continuation: list[int]) -> float:
    """log p(continuation | context), from one forward pass of the model on the whole sequence."""
    logprobs = model(torch.tensor([context + continuation])).logits[0].log_softmax(-1)
    targets = torch.tensor(continuation)
    return logprobs[len(context) - 1 : -1].gather(-1, targets[:, None]).sum().item()


@torch.no_grad()
def greedy_until(model: FiftyNetForCausalLM, context: str, stops: list[str], max_new_tokens: int) -> str:
    """Greedy decoding with a full forward pass per token, cut before the first stop string."""
    tokenizer = FiftyNetByteTokenizer()
    ids, new = byte_ids(context), []
    for _ in range(max_new_tokens):
        next_id = model(torch.tensor([ids + new])).logits[0, -1].argmax().item()
        if next_id == tokenizer.eos_token_id:
            break
        new.append(next_id)
    text = tokenizer.decode(new, skip_special_tokens=True)
    return min((text.split(stop)[0] for stop in stops), key=len)


def test_task_data_is_rebuilt_exactly_from_the_validation_split():
    items = build.build_items(load_corpus("validation"))
    shipped = [json.loads(line) for line in build.DATA_FILE.read_text(encoding="utf-8").splitlines()]
    assert shipped == items and len(items) == build.NUM_ITEMS
    for item in items:
        assert item["choices"][item["label"]] == item["answer"] and len(set(item["choices"])) == build.NUM_CHOICES
        previous, prefix = item["context"].split("\n")
        assert item["verse"].startswith(f"{prefix} {item['answer']}") and previous not in item["verse"]


def test_multiple_choice_scores_are_the_models_own_loglikelihoods(evaluated):
    model, results = evaluated
    samples = results["samples"]["kjv_cloze"]
    assert len(samples) == LIMIT
    correct, correct_norm = [], []
    for sample in samples:
        doc = sample["doc"]
        expected = [continuation_logprob(model, byte_ids(doc["context"]), byte_ids(f" {choice}"))
                    for choice in doc["choices"]]
        scored = [loglikelihood for loglikelihood, _ in sample["filtered_resps"]]
        assert scored == pytest.approx(expected, rel=1e-4, abs=1e-3)
        correct.append(np.argmax(expected) == doc["label"])
        correct_norm.append(np.argmax(np.array(expected) / [len(choice) for choice in doc["choices"]]) == doc["label"])
    scores = results["results"]["kjv_cloze"]
    assert scores["acc,none"] == pytest.approx(np.mean(correct))
    assert scores["acc_norm,none"] == pytest.approx(np.mean(correct_norm))


def test_generation_is_the_models_greedy_continuation(evaluated):
    model, results = evaluated
    samples = results["samples"]["kjv_verse_end"]
    assert len(samples) == LIMIT
    generation = samples[0]["arguments"][0][1]
    assert generation["do_sample"] is False and " " in generation["until"]
    matches = []
    for sample in samples:
        context = sample["arguments"][0][0]
        assert context == sample["doc"]["context"] + " "
        expected = greedy_until(model, context, generation["until"], generation["max_gen_toks"])
        assert sample["filtered_resps"][0] == expected
        matches.append(expected == sample["doc"]["answer"])
    assert results["results"]["kjv_verse_end"]["exact_match,none"] == pytest.approx(np.mean(matches))


def test_verse_perplexity_is_the_models_own_bits_per_byte(evaluated):
    model, results = evaluated
    samples = results["samples"]["kjv_verse_perplexity"]
    assert len(samples) == LIMIT
    bos = FiftyNetByteTokenizer().bos_token_id
    total_logprob = total_bytes = 0
    for sample in samples:
        verse = byte_ids(sample["doc"]["verse"])
        expected = continuation_logprob(model, [bos], verse)  # a verse is scored after the tokenizer's bos token
        assert sample["filtered_resps"][0] == pytest.approx(expected, rel=1e-4)
        total_logprob, total_bytes = total_logprob + expected, total_bytes + len(verse)
    scores = results["results"]["kjv_verse_perplexity"]
    assert scores["bits_per_byte,none"] == pytest.approx(-total_logprob / total_bytes / math.log(2), rel=1e-4)
    assert scores["byte_perplexity,none"] == pytest.approx(math.exp(-total_logprob / total_bytes), rel=1e-4)


def test_lm_eval_command_scores_a_uniform_model_from_remote_code_alone(tmp_path):
    # Zero embeddings (tied to the LM head) make every logit 0: every byte has probability 1/259, so the scores are
    # known in closed form. The command runs where the project cannot be imported: the folder's own code is used.
    folder = tmp_path / "uniform"
    model = FiftyNetForCausalLM(FiftyNetConfig(**TINY))
    with torch.no_grad():
        model.get_input_embeddings().weight.zero_()
    model.save_pretrained(folder)
    FiftyNetByteTokenizer().save_pretrained(folder)
    output = tmp_path / "results"
    run_isolated(f"""
        import os, sys
        from lm_eval.__main__ import cli_evaluate

        os.chdir({str(REPO_ROOT)!r})
        sys.argv = ["lm_eval", "--model", "hf", "--model_args", "pretrained={folder},trust_remote_code=True",
                    "--tasks", "kjv", "--include_path", "benchmarks/lm_eval_tasks", "--device", "cpu",
                    "--batch_size", "4", "--limit", "{LIMIT}", "--output_path", {str(output)!r}]
        cli_evaluate()
    """, cwd=tmp_path)
    (results_file,) = output.rglob("results_*.json")
    scores = json.loads(results_file.read_text())["results"]

    assert scores["kjv_verse_perplexity"]["bits_per_byte,none"] == pytest.approx(math.log2(259), rel=1e-6)
    assert scores["kjv_verse_perplexity"]["byte_perplexity,none"] == pytest.approx(259, rel=1e-6)
    # log p(" word") = -(len(word) + 1) * ln 259: the shortest choice wins, the first of equally short ones.
    items = build.build_items(load_corpus("validation"))[:LIMIT]
    shortest = [np.argmin([len(choice) for choice in item["choices"]]) == item["label"] for item in items]
    assert scores["kjv_cloze"]["acc,none"] == pytest.approx(np.mean(shortest))
    assert scores["kjv_verse_end"]["exact_match,none"] == 0.0  # greedy repeats byte 0, which ends no word


@pytest.mark.benchmark
def test_compare_benchmark_trains_both_models_and_writes_the_table(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    lm_eval_compare.main(["--output-dir", str(tmp_path / "out"), "--max-steps", "2", "--batch-size", "2",
                          "--block-size", "64", "--hidden-size", "32", "--num-layers", "1", "--num-heads", "2",
                          "--validation-blocks", "4", "--limit", "4"])
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(report["models"]) == {"fiftynet", "gpt2"}
    for name, result in report["models"].items():
        assert (tmp_path / "out" / "models" / name / "config.json").is_file()
        assert result["parameters"] > 0 and result["validation_bits_per_byte"] > 0
        assert 0 <= result["kjv_cloze"]["acc"] <= 1 and 0 <= result["kjv_verse_end"]["exact_match"] <= 1
        assert result["kjv_verse_perplexity"]["bits_per_byte"] > 0
        assert result["samples"] == {task: 4 for task in TASKS}
    assert set(report["baselines"]) == set(TASKS)
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| fiftynet |" in table and "| gpt2 |" in table and "chance" in table
