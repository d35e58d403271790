"""Run by tests/test_train.py under torchrun: train a tiny GPT with DDP on a fixed global batch.

    python -m torch.distributed.run --nproc_per_node=2 tests/ddp_worker.py OUTDIR

`setup()` is shared with the single-process reference run in the test, so both start from the same
weights, batch and config. Every row has the same number of loss tokens (no -1 targets), so each
rank's shard of 2 rows carries as many as the other, and averaging the ranks' mean losses (what DDP
does to gradients) equals the mean over the global batch.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from minitx.model import GPT, Config  # noqa: E402
from minitx.train import TrainConfig, train  # noqa: E402


def setup():
    torch.manual_seed(0)
    # float64: the two runs sum gradients in different orders; in float32 an element whose gradient
    # is near zero (cancellation) gets a noisy one, and Adam, dividing by |g|, turns 1% of noise
    # into 1e-3 of a step. In float64 the comparison is well-conditioned.
    model = GPT(Config(vocab_size=32, block_size=16, n_layer=1, n_head=2, n_embd=16)).double()
    model.transformer.wpe.weight.requires_grad_(False)  # frozen: DDP must neither sync nor touch it
    data = torch.randint(0, 32, (4, 9), generator=torch.Generator().manual_seed(1))
    batch = {"idx": data[:, :-1], "targets": data[:, 1:]}  # 4 rows x 8 loss tokens, global
    config = TrainConfig(steps=6, lr=1e-2, warmup_steps=2, grad_clip=1.0, log_every=1)
    return model, batch, config


if __name__ == "__main__":
    model, batch, config = setup()
    frozen = model.transformer.wpe.weight.detach().clone()
    result = train(model, lambda step: batch, config)
    assert not torch.distributed.is_initialized(), "train() must destroy the group it created"
    wpe = model.transformer.wpe.weight
    assert torch.equal(wpe, frozen) and wpe.grad is None, "a frozen parameter changed"
    if int(os.environ["RANK"]) == 0:
        params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
        torch.save({"params": params, "losses": result["losses"]},
                   os.path.join(sys.argv[1], "rank0.pt"))
