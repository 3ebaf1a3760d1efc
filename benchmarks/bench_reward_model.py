"""Forward time of the AVICI reward model vs a bare ``nn.TransformerEncoderLayer`` stack of equal size.

The reference stack has the same width, heads, feed-forward size and number of blocks, alternates
attention over variables and samples the same way and max-pools over samples; it lacks only
AVICI's standardisation, separate q/k/v LayerNorms and edge heads. Both run in eval mode under
``torch.inference_mode`` (the reference then takes PyTorch's fused fast path).

    python benchmarks/bench_reward_model.py [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from caasl_envs import load_reward_model
from caasl_envs.reward.avici import AVICIModel


class BareTransformerStack(nn.Module):
    """``Linear(2 -> dim)``, ``blocks`` pre-norm encoder layers alternating axes, LayerNorm, max over samples."""

    def __init__(self, dim: int, num_heads: int, blocks: int, widening_factor: int):
        super().__init__()
        self.embedding = nn.Linear(2, dim)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim,
                num_heads,
                widening_factor * dim,
                dropout=0.0,
                batch_first=True,
                norm_first=True,
            )
            for _ in range(blocks)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embedding(x)  # (B, n, d, dim)
        for layer in self.layers:
            b, a, t, dim = z.shape
            z = layer(z.reshape(b * a, t, dim)).reshape(b, a, t, dim).transpose(1, 2)
        return self.norm(z).amax(1)


def _time(fn, repeats: int) -> float:
    """Best-of-``repeats`` CPU time of this process (on a busy machine wall time mostly measures waiting)."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def _model(name: str) -> AVICIModel:
    try:
        return load_reward_model(name)
    except ValueError:
        print(
            f"({name} not registered: timing a randomly initialised model of the default training size)"
        )
        return AVICIModel(dim=64, layers=2, num_heads=4, key_size=16).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="avici-linear-v0")
    parser.add_argument(
        "--random",
        default=None,
        help="time a random model of this size instead: DIM,LAYERS,HEADS,KEY_SIZE",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.random:
        dim, layers, heads, key_size = (int(v) for v in args.random.split(","))
        model = AVICIModel(dim=dim, layers=layers, num_heads=heads, key_size=key_size).eval()
    else:
        model = _model(args.model)
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    bare = BareTransformerStack(
        cfg["dim"], cfg["num_heads"], 2 * cfg["layers"], cfg["widening_factor"]
    ).eval()
    bare_params = sum(p.numel() for p in bare.parameters())
    print(
        f"AVICI dim {cfg['dim']}, {2 * cfg['layers']} blocks, {cfg['num_heads']} heads x {cfg['key_size']}: "
        f"{n_params} parameters; bare stack {bare_params}; torch threads {args.threads}"
    )

    print("\nCPU ms of one forward (best of repeats)")
    print("\n| B | n | d | AVICI forward (ms) | bare stack (ms) | ratio |")
    print("|---|---|---|---|---|---|")
    for b, n, d in ((256, 60, 10), (64, 60, 10)):
        x = torch.stack([torch.randn(b, n, d), (torch.rand(b, n, d) < 0.1).float()], -1)
        with torch.inference_mode():
            t_avici = _time(lambda x=x: model.edge_probs(x), args.repeats)
            t_bare = _time(lambda x=x: bare(x), args.repeats)
        print(
            f"| {b} | {n} | {d} | {1e3 * t_avici:.1f} | {1e3 * t_bare:.1f} | {t_avici / t_bare:.2f} |"
        )

    print("\nCPU ms per dataset")
    print("\n| d | n | per dataset, B=1 (ms) | per dataset, B=64 (ms) |")
    print("|---|---|---|---|")
    for d in (10, 20, 50):
        times = []
        for b in (1, 64):
            x = torch.stack([torch.randn(b, 60, d), (torch.rand(b, 60, d) < 0.1).float()], -1)
            with torch.inference_mode():
                times.append(_time(lambda x=x: model.edge_probs(x), args.repeats) / b)
        print(f"| {d} | 60 | {1e3 * times[0]:.2f} | {1e3 * times[1]:.2f} |")


if __name__ == "__main__":
    main()
