"""`fiftynet COMMAND --help` reads well: short enough to scan (the TrainingArguments options behind `--help-all`),
every option explained, every default shown once and only where it says something."""

import argparse
import dataclasses
import re

import pytest
from transformers import TrainingArguments

from fiftynet.conversion import teacher
from fiftynet.training import cli


# The commands built on transformers' HfArgumentParser with TrainingArguments.
TRAINER_COMMANDS = ["train", "lora", "chunk-head", "convert"]
# Each help to read: every command's, and the subcommand of `fiftynet tokenizer`.
HELPS = [[command] for command in cli.COMMANDS] + [["tokenizer", "train"]]


@pytest.fixture(autouse=True)
def narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps to the terminal: the narrowest usual one, for line counts


def printed_help(words: list[str], flag: str, capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*words, flag])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def entries(text: str) -> dict[str, str]:
    """Each option of a help text, by its first spelling: its help (empty if it has none)."""
    options = {}
    for entry in re.split(r"\n(?=  -)", text)[1:]:  # an option starts a line, indented two spaces
        lines = entry.split("\n")
        lines = lines[: next((i for i, line in enumerate(lines) if i and not line.startswith("   ")), len(lines))]
        invocation, _, first = lines[0].strip().partition("  ")  # the help starts two spaces after the options
        options[invocation.split()[0].rstrip(",")] = " ".join(" ".join([first, *lines[1:]]).split())
    return options


class Parsed(Exception):
    """Raised instead of parsing, with the command's parser."""


def command_parsers(command: str, monkeypatch: pytest.MonkeyPatch) -> list[argparse.ArgumentParser]:
    """The parser of `fiftynet COMMAND`, and that of each of its subcommands."""
    dispatch = argparse.ArgumentParser.parse_known_args

    def parse_known_args(parser: argparse.ArgumentParser, *args, **kwargs):
        if parser.prog == "fiftynet" or not parser.add_help:  # the dispatcher's, which leave --help to the command
            return dispatch(parser, *args, **kwargs)
        raise Parsed(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", parse_known_args)
    with pytest.raises(Parsed) as parsed:
        cli.main([command])
    parsers = [parsed.value.args[0]]
    for parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return parsers


@pytest.mark.parametrize("words", HELPS, ids=" ".join)
def test_help_is_short(words: list[str], capsys: pytest.CaptureFixture) -> None:
    text = printed_help(words, "--help", capsys)
    assert len(text.splitlines()) < 150, text


@pytest.mark.parametrize("command", TRAINER_COMMANDS)
def test_help_points_to_help_all_which_lists_every_training_argument(command: str, capsys: pytest.CaptureFixture):
    short = printed_help([command], "--help", capsys)
    assert "--help-all" in short and "--learning_rate" in short and "--gradient_accumulation_steps" in short
    assert "--ddp_backend" not in short  # one of the many that only --help-all lists
    full = printed_help([command], "--help-all", capsys)
    fields = [field.name for field in dataclasses.fields(TrainingArguments) if field.init]
    assert [name for name in fields if f"--{name}" not in full] == []
    assert full.count("\n") > 2 * short.count("\n")


@pytest.mark.parametrize("words", HELPS, ids=" ".join)
def test_every_option_is_explained_and_says_its_default_once(words: list[str], capsys: pytest.CaptureFixture):
    flags = ["--help", "--help-all"] if words[0] in TRAINER_COMMANDS else ["--help"]
    for flag in flags:
        options = entries(printed_help(words, flag, capsys))
        assert options, f"{flag} lists no option"
        for option, help_text in options.items():
            assert help_text, f"{option} has no help"
            assert "(default: None)" not in help_text, option
            assert help_text.count("(default") <= 1, option
            if help_text.endswith(")") and "(default: " in help_text:
                # argparse's appended default, after a help text that states one already
                assert "default" not in help_text[: help_text.rindex("(default: ")].lower(), option
            if flag == "--help":  # fiftynet's own help texts (and the TrainingArguments ones --help shows)
                assert len(re.findall("default", help_text, re.IGNORECASE)) <= 1, option


@pytest.mark.parametrize("command", cli.COMMANDS)
def test_options_show_their_defaults(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for parser in command_parsers(command, monkeypatch):
        options = entries(parser.format_help())
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS or action.nargs == 0:
                continue  # positional, left to --help-all, or a flag (whose default is its absence)
            help_text = options[action.option_strings[0]]
            assert help_text, f"{parser.prog} {action.option_strings[0]} has no help"
            if action.default is None or action.default is False or action.default == []:
                assert f"(default: {action.default})" not in help_text, f"{parser.prog} {action.option_strings[0]}"
            elif not action.required:
                assert "default" in help_text.lower(), f"{parser.prog} {action.option_strings[0]}: {help_text}"


@pytest.mark.parametrize("words", HELPS, ids=" ".join)
def test_usage_names_the_command_typed(words: list[str], capsys: pytest.CaptureFixture) -> None:
    usage = printed_help(words, "--help", capsys).split("\n", 1)[0]
    assert usage.startswith(f"usage: fiftynet {' '.join(words)} "), usage


def test_the_teacher_script_has_the_commands_short_help_and_one_line_errors(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.run(teacher.PROG, teacher.main, ["--help"])
    text = capsys.readouterr().out
    assert exit_info.value.code == 0 and text.startswith(f"usage: {teacher.PROG} [OPTIONS]")
    assert len(text.splitlines()) < 150 and "--help-all" in text
    with pytest.raises(SystemExit) as exit_info:
        cli.run(teacher.PROG, teacher.main, ["--max_steps", "-3"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (f"{teacher.PROG}: error: --max_steps must be a positive number of steps, or -1 "
                                       "to train --num_train_epochs epochs, got -3\n")
