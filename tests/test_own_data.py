"""README.md's "Bring your own data" snippet runs exactly as printed and prints what the README
shows: a corpus with punctuation, a tokenizer built from it, a small base pretrained on packed
rows, a prefix trained on (prompt, target) pairs and saved, and text generated for prompts with a
name the tokenizer has never seen."""
import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def snippet_and_output():
    """The section's python block and the output block that follows it."""
    text = README.read_text()
    section = text[text.index("## Bring your own data"):]
    section = section[:section.index("\n## ", 1)]
    code, output = re.findall(r"```(?:python)?\n(.*?)```", section, re.S)[:2]
    return code, output


def test_the_readme_own_data_snippet_prints_what_the_readme_shows(tmp_path, monkeypatch):
    code, expected = snippet_and_output()
    assert re.search(r"corpus = .*[,.!?]", code, re.S)  # the corpus holds punctuation
    monkeypatch.chdir(tmp_path)  # the snippet saves its adapter into the working directory
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), {"__name__": "readme_snippet"})
    assert printed.getvalue() == expected
    assert "<unk>" in expected  # an unseen word, shown as the model sees it
    assert (tmp_path / "drink_prefix" / "adapter.json").exists()
