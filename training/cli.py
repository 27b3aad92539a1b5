"""The `fiftynet` command line: one subcommand per job, each parsing its own arguments.

`fiftynet COMMAND --help` shows a command's options. Bad input (a missing file, an unknown config field, ...) is one
line on stderr naming the problem and exit code 2, as for argparse's own errors; a full disk is one line and exit code
1, Ctrl-C one line and exit code 130 (what a shell reports for SIGINT).
"""

import argparse
import errno
import importlib
import re
import sys
from collections.abc import Callable
from typing import NoReturn

from safetensors import SafetensorError

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
                "retune a GPT-2, Llama, Qwen or Mistral into a FiftyNet: transplant, spectral init, distillation"),
    "compress": ("fiftynet.conversion.compress:main",
                 "store Linear layers compressed (dct, svd, int8), optionally fine-tune, save"),
    "push": ("fiftynet.hub_cards.push:main",
             "upload a saved folder (weights, tokenizer, remote code, model card) to the Hugging Face Hub"),
}


# Errors of a write that found no space: the OSError's errno, or its text where a library reports it in its own
# exception (safetensors: "... (os error 28)", torch.save: "... file write failed").
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
DISK_FULL_TEXT = re.compile(
    rf"os error ({'|'.join(map(str, DISK_FULL_ERRNOS))})\b|file write failed|No space left on device"
    r"|Disk quota exceeded"
)


def disk_full(error: BaseException) -> str | None:
    """The message of `error`, or of an exception that caused it, if it is a write that found no space; else None."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            written = error.filename2 or error.filename  # a copy's destination, else the file
            return f"{error.strerror}: {written}" if written else error.strerror
        if DISK_FULL_TEXT.search(str(error)):
            return " ".join(str(error).split())
        error = error.__cause__ or error.__context__
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fiftynet", description=__doc__)
    subcommands = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        # Each command parses the rest itself (its own --help included).
        subcommands.add_parser(name, help=help_text, add_help=False)
    args, rest = parser.parse_known_args(argv)
    module, function = COMMANDS[args.command][0].split(":")
    run(f"fiftynet {args.command}", getattr(importlib.import_module(module), function), rest)


def run(prog: str, command: Callable[[list[str]], object], argv: list[str]) -> None:
    """`command(argv)`, with bad input, Ctrl-C and a full disk turned into one line on stderr and an exit code; also
    for the scripts run with `python -m` (`fiftynet.conversion.teacher`)."""
    try:
        command(argv)
    except UsageError as error:
        stop(2, f"{prog}: error: {error}\n")
    except KeyboardInterrupt:
        # Saves are staged (modeling_fiftynet.saving): nothing half-written is left, and finished checkpoints stay.
        # On a line of its own: a progress bar may be half drawn.
        stop(130, f"\n{prog}: interrupted; what it had saved is kept (train, convert: continue with --resume)\n")
    except (OSError, RuntimeError, SafetensorError) as error:
        if (problem := disk_full(error)) is None:
            raise
        stop(1, f"\n{prog}: error: the disk is full ({problem}); free some space and run it again (train, convert: "
                "--resume continues from the last complete checkpoint)\n")


def stop(code: int, message: str) -> NoReturn:
    sys.stderr.write(message)
    sys.exit(code)


if __name__ == "__main__":
    main()
