"""How every `fiftynet COMMAND --help` reads: the command's description as written, and each option's default.

It lives here, in the lowest of the project's packages (see `fiftynet.hub_cards.errors`), so that `fiftynet push`
formats its help like the other commands without importing `fiftynet.training`.
"""

import argparse
import shlex


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's own paragraphs and example commands, and appends each option's default as it would be
    typed, where that says something: not for None (the option's help says what happens without it), a flag's False,
    an empty list, or a help text that names its default already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        if (action.required or action.nargs == 0 or default is None or default is False or default == []
                or default is argparse.SUPPRESS or "default" in action.help.lower()):
            return action.help
        shown = shlex.join(map(str, default)) if isinstance(default, (list, tuple)) else shlex.quote(str(default))
        return f"{action.help} (default: {shown.replace('%', '%%')})"  # argparse %-formats the help
