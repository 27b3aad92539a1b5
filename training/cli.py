"""The `fiftynet` command line: one subcommand per job, each parsing its own arguments.

`fiftynet COMMAND --help` shows a command's options. Bad input (a missing file, an unknown config field, ...) is one
line on stderr naming the problem and exit code 2, as for argparse's own errors.
"""

import argparse
import importlib

from .errors import UsageError


# name -> (module:function taking the command's arguments, help). Each command's module is imported only when it
# runs, so the dispatcher depends on no command (and `fiftynet.conversion`, which uses `fiftynet.training`, is not
# imported here).
COMMANDS = {
    "quickstart": ("fiftynet.training.quickstart:main",
                   "train a small byte-level model on the bundled corpus (CPU, ~5 min), save, reload, sample"),
    "train": ("fiftynet.training.train:main",
              "train a FiftyNet with transformers.Trainer (every TrainingArguments flag works)"),
    "eval": ("fiftynet.training.evaluation:main",
             "loss, perplexity, bits per byte and accuracy of any causal LM on any text"),
    "generate": ("fiftynet.training.generate:main", "sample from a saved model, streaming the text"),
    "tokenizer": ("fiftynet.training.tokenizer:main", "train a byte-level BPE tokenizer: fiftynet tokenizer train ..."),
    "lora": ("fiftynet.training.train:lora_main", "LoRA fine-tuning of a saved model (fiftynet train --lora)"),
    "chunk-head": ("fiftynet.training.chunk_head:main",
                   "train a chunk head on a frozen FiftyNet: same greedy output in fewer forward passes"),
    "convert": ("fiftynet.conversion.convert:main",
                "retune a GPT-2 into a FiftyNet: transplant, spectral init, distillation, report"),
    "compress": ("fiftynet.conversion.compress:main",
                 "store Linear layers compressed (dct, svd, int8), optionally fine-tune, save"),
    "push": ("fiftynet.hub_cards.push:main",
             "upload a saved folder (weights, tokenizer, remote code, model card) to the Hugging Face Hub"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fiftynet", description=__doc__)
    subcommands = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        # Each command parses the rest itself (its own --help included).
        subcommands.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    module, function = COMMANDS[args.command][0].split(":")
    try:
        getattr(importlib.import_module(module), function)(rest)
    except UsageError as error:
        parser.exit(2, f"fiftynet {args.command}: error: {error}\n")


if __name__ == "__main__":
    main()
