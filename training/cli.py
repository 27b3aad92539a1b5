"""The `fiftynet` command line: one subcommand per job."""

import argparse

from . import quickstart


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fiftynet", description="FiftyNet spectral language models.")
    subcommands = parser.add_subparsers(dest="command", required=True)
    quickstart_parser = subcommands.add_parser(
        "quickstart", help="train a small byte-level model on the bundled corpus (CPU, ~5 min), save, reload, sample"
    )
    quickstart.add_arguments(quickstart_parser)
    quickstart_parser.set_defaults(run=quickstart.run)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
