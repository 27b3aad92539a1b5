"""The README's snippets run exactly as written, where it says they run: "Use it" in an interpreter that has torch
and transformers but cannot import this package, on the folder `fiftynet quickstart` saves."""

import re
from pathlib import Path

from conftest import run_isolated
from test_modeling import tiny_model

from modeling_fiftynet import FiftyNetByteTokenizer


README = Path(__file__).parent.parent / "README.md"


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of the README section whose heading is `section`."""
    text = README.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_use_it_runs_where_the_package_is_not_installed(tmp_path):
    (snippet,) = python_blocks("Use it")
    folder = tmp_path / "fiftynet-quickstart"  # the folder the snippet names, as `fiftynet quickstart` writes it
    tiny_model().save_pretrained(folder)
    FiftyNetByteTokenizer().save_pretrained(folder)
    printed = run_isolated(snippet, cwd=tmp_path).stdout
    texts = eval(printed)  # the snippet prints the list of decoded strings
    assert len(texts) == 2 and texts[0].startswith("In the beginning") and texts[1].startswith("And")
