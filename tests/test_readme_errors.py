"""README's "Errors you may meet" quotes the messages minitx really raises: each mistake below is
made here, and its message must stand in the README word for word."""
import re
from pathlib import Path

import pytest
import torch

from minitx import GPT, Config, generate
from minitx.tuning import Prefix, Tuned

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
SECTION = README.split("## Errors you may meet", 1)[-1].split("\n## ", 1)[0]


def tiny(seed=0):
    torch.manual_seed(seed)
    return GPT(Config(vocab_size=100, block_size=32, n_layer=2, n_head=2, n_embd=16))


def token_out_of_range():
    tiny()(torch.tensor([[5, 100]]))


def hf_ignore_index():
    idx = torch.randint(0, 100, (2, 8))
    tiny()(idx, targets=torch.full((2, 8), -100))


def prompt_too_long():
    generate(tiny(), torch.randint(0, 100, (2, 8)), 30)


def mask_counts_virtual_tokens():
    base = tiny()
    tuned = Tuned(base)
    tuned.add("a", Prefix(base, 4))
    tuned(torch.randint(0, 100, (2, 8)), attention_mask=torch.ones(2, 12, dtype=torch.bool))


def adapter_for_another_base(tmp_path):
    base = tiny(0)
    tuned = Tuned(base)
    tuned.add("a", Prefix(base, 4))
    tuned.save("a", tmp_path)
    Tuned(tiny(1)).load(tmp_path)


CASES = [token_out_of_range, hf_ignore_index, prompt_too_long, mask_counts_virtual_tokens,
         adapter_for_another_base]


@pytest.mark.parametrize("mistake", CASES, ids=[c.__name__ for c in CASES])
def test_readme_quotes_the_message(mistake, tmp_path):
    with pytest.raises(ValueError) as error:
        mistake(tmp_path) if mistake is adapter_for_another_base else mistake()
    message = re.sub(r"/\S+", "<dir>", str(error.value))  # temporary paths vary
    message = re.sub(r"sha256 \w+…, this model \w+…", "sha256 …, this model …", message)
    assert message in SECTION, f"README lacks, word for word:\n{message}"
