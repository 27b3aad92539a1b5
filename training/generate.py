"""`fiftynet generate`: sample from a saved causal LM (or PEFT adapter folder), streaming tokens as they come."""

import argparse

import torch
from transformers import TextStreamer, set_seed

from fiftynet.hub_cards.help_format import HelpFormatter

from .data import check_vocabulary
from .errors import UsageError
from .evaluation import add_model_arguments, load_model
from .tokenizer import load_tokenizer


def check_arguments(args: argparse.Namespace) -> None:
    """Refuses sampling settings that generate() would misread or ignore."""
    if not args.prompt:
        raise UsageError("--prompt is empty: the model needs at least one token to continue")
    try:
        args.prompt.encode("utf-8")
    except UnicodeEncodeError:  # bytes the locale could not decode reach Python as lone surrogates
        raise UsageError("--prompt holds bytes that are not UTF-8 text: pass the prompt as UTF-8") from None
    if args.max_new_tokens < 1:
        raise UsageError(f"--max_new_tokens must be at least 1, got {args.max_new_tokens}")
    if args.temperature < 0:
        raise UsageError(f"--temperature must be 0 (greedy) or positive, got {args.temperature}")
    if not 0 < args.top_p <= 1:
        raise UsageError(f"--top_p must lie in (0, 1], got {args.top_p}")
    if args.top_k < 0:
        raise UsageError(f"--top_k must be 0 (no filtering) or positive, got {args.top_k}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fiftynet generate", description=__doc__, formatter_class=HelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--prompt", default="And God said", help="the text to continue")
    parser.add_argument("--max_new_tokens", "--max-new-tokens", type=int, default=200,
                        help="tokens generated at most (fewer if the model ends the text)")
    parser.add_argument("--temperature", type=float, default=0.8,
                        help="above 1 flattens the distribution sampled from, below 1 sharpens it; 0 decodes greedily")
    parser.add_argument("--top_k", "--top-k", type=int, default=50,
                        help="sample among the K likeliest tokens; 0 disables top-k filtering")
    parser.add_argument("--top_p", "--top-p", type=float, default=1.0,
                        help="sample among the likeliest tokens whose probabilities sum to P; 1 disables it")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    args = parser.parse_args(argv)
    check_arguments(args)

    set_seed(args.seed)
    model = load_model(args.model, trust_remote_code=args.trust_remote_code).eval()
    tokenizer = load_tokenizer(args.tokenizer or args.model)
    check_vocabulary(tokenizer, model.config)
    inputs = tokenizer(args.prompt, return_tensors="pt").to(model.device)
    sampling = dict(do_sample=True, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    # Ids past the tokenizer's (a vocabulary padded for speed, or a tokenizer chosen by hand) have no text.
    textless = list(range(len(tokenizer), model.config.vocab_size))
    with torch.no_grad():
        model.generate(
            **inputs,
            **(sampling if args.temperature > 0 else dict(do_sample=False)),
            suppress_tokens=textless or None,
            max_new_tokens=args.max_new_tokens,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            streamer=TextStreamer(tokenizer, skip_special_tokens=True),
        )
