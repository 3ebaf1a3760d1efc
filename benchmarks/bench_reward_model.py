"""Forward time of the AVICI reward model vs a bare ``nn.TransformerEncoderLayer`` stack of equal size.

The reference stack has the same width, heads, feed-forward size and number of blocks, alternates
attention over variables and samples the same way and max-pools over samples; it lacks only
AVICI's standardisation, separate q/k/v LayerNorms and edge heads. Both run in eval mode under
``torch.inference_mode`` (the reference then takes PyTorch's fused fast path).

    python benchmarks/bench_reward_model.py [--threads 1] [--repeats 5]

``--vs-official`` instead times our model against the official JAX package (``pip install
'caasl[official]'``) on the same random-initialised weights: the official Haiku parameters are
converted with :func:`caasl_envs.reward.official.haiku_to_state_dict`, the max difference of the
edge probabilities is printed, and forward and forward+backward are timed interleaved (official,
ours, ours, official, ...) so that machine load affects both alike. The default clock is wall
time and ``--pin CPU`` puts every thread of the process (JAX's helper threads included) on that
one core, so that neither side gets a second core the other lacks; each row reports the medians
over the repeats and the median of the paired per-repeat ratios:

    python benchmarks/bench_reward_model.py --vs-official --pin 1 [--sizes published small]
        [--batches 1 64] [--modes forward train] [--repeats 41] [--clock wall|cpu]

(process CPU time, ``--clock cpu``, counts JAX's busy helper thread against the official side
and so flatters ours: use it only to compare with older numbers.)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import types

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from caasl_envs import load_reward_model
from caasl_envs.reward.avici import AVICIModel
from caasl_envs.reward.official import haiku_to_state_dict

OFFICIAL_SIZES = {
    "published": dict(dim=128, layers=8, num_heads=8, key_size=32),
    "small": dict(dim=64, layers=4, num_heads=8, key_size=8),
}
"""Model sizes of the side-by-side table: the published AVICI models and a dim-64 one."""


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


def _import_official() -> types.ModuleType | None:
    """The official ``avici.model`` module, or None (with a message) when it cannot be imported.

    avici 1.0.7's package ``__init__`` imports its training buffer, which needs ``pyarrow.plasma``
    (pyarrow 10, numpy < 2); when only that fails, ``avici.model`` is loaded on its own so that the
    timed forward is still the official code.
    """
    if importlib.util.find_spec("avici") is None or importlib.util.find_spec("haiku") is None:
        print(
            "official AVICI not installed (pip install 'caasl[official]'): skipping --vs-official"
        )
        return None
    try:
        import avici.model as official
    except ImportError as err:
        sys.modules.pop("avici", None)
        package = types.ModuleType("avici")
        package.__path__ = list(importlib.util.find_spec("avici").submodule_search_locations)
        sys.modules["avici"] = package
        try:
            import avici.model as official
        except ImportError as inner:
            print(f"official AVICI not importable ({inner}): skipping --vs-official")
            return None
        print(f"(avici package __init__ not importable: {err}; loaded avici.model alone)")
    return official


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _interleaved(fns: dict[str, object], repeats: int, clock: str = "wall") -> dict[str, list]:
    """Seconds of each callable per repeat on ``clock``, run in turn every repeat, in the
    order A B, B A, A B, ... (a drift of the machine's load then biases neither)."""
    now = CLOCKS[clock]
    for fn in fns.values():
        fn()  # warm-up (and JIT compilation)
        fn()
    times: dict[str, list] = {name: [] for name in fns}
    for repeat in range(repeats):
        names = list(fns) if repeat % 2 == 0 else list(reversed(fns))
        for name in names:
            start = now()
            fns[name]()
            times[name].append(now() - start)
    return times


def pin_process(cpu: int) -> None:
    """Put every thread of this process, and those it starts later, on core ``cpu``."""
    for task in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(task), {cpu})


def _side_by_side(
    official, size: str, batches: list[int], modes: list[str], repeats: int, clock: str
) -> None:
    """Print one table row per (batch, mode): official and our ms per dataset and their ratio."""
    import haiku as hk
    import jax
    import jax.numpy as jnp
    from avici.utils.data_jax import jax_standardize_default_simple

    kwargs = OFFICIAL_SIZES[size]
    net = hk.transform(lambda x, training: official.BaseModel(**kwargs, dropout=0.0)(x, training))
    key = jax.random.PRNGKey(0)
    n, d = 60, 10
    params = net.init(key, jnp.zeros((1, n, d, 2), jnp.float32), False)
    ours = AVICIModel(**kwargs).eval()
    ours.load_state_dict(haiku_to_state_dict(params, kwargs["layers"]))

    def logits_official(p, x):
        return net.apply(p, key, jax_standardize_default_simple(x), False)

    def loss_official(p, x, target):
        logits = logits_official(p, x)
        return jnp.mean(
            jnp.maximum(logits, 0) - logits * target + jnp.log1p(jnp.exp(-jnp.abs(logits)))
        )

    probs_official = jax.jit(lambda p, x: jax.nn.sigmoid(logits_official(p, x)))
    grad_official = jax.jit(jax.grad(loss_official))

    def step_ours(x: torch.Tensor, target: torch.Tensor) -> None:
        ours.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(ours(x), target).backward()

    for b in batches:
        gen = torch.Generator().manual_seed(b)
        values = torch.randn(b, n, d, generator=gen)
        flags = (torch.rand(b, n, d, generator=gen) < 0.1).float()
        x = torch.stack([values, flags], -1)
        target = (torch.rand(b, d, d, generator=gen) < 0.2).float()
        x_jax, target_jax = jnp.asarray(x.numpy()), jnp.asarray(target.numpy())
        with torch.inference_mode():
            diff = np.abs(
                np.asarray(probs_official(params, x_jax)) - torch.sigmoid(ours(x)).numpy()
            ).max()
        for mode in modes:
            if mode == "forward":
                fns = {
                    "official": lambda xj=x_jax: probs_official(params, xj).block_until_ready(),
                    "ours": lambda x=x: _inference(ours, x),
                }
            else:
                fns = {
                    "official": lambda xj=x_jax, tj=target_jax: jax.block_until_ready(
                        grad_official(params, xj, tj)
                    ),
                    "ours": lambda x=x, target=target: step_ours(x, target),
                }
            times = _interleaved(fns, repeats, clock)
            theirs, ours_t = (np.asarray(times[k]) for k in ("official", "ours"))
            ratios = ours_t / theirs
            low, high = np.quantile(ratios, [0.25, 0.75])
            print(
                f"| {size} | {b} | {mode} | {1e3 * np.median(theirs) / b:.2f} | "
                f"{1e3 * np.median(ours_t) / b:.2f} | {np.median(ratios):.2f} "
                f"[{low:.2f}, {high:.2f}] | {diff:.1e} |"
            )


def _inference(model: AVICIModel, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.sigmoid(model(x))


def vs_official(args: argparse.Namespace) -> None:
    """The side-by-side table of ``--vs-official`` (one CPU thread on both sides by default)."""
    official = _import_official()
    if official is None:
        return
    import jax

    cores = sorted(os.sched_getaffinity(0))
    print(
        f"official avici (JAX {jax.__version__}) vs caasl AVICIModel (torch {torch.__version__}), "
        f"d = 10, n = 60, random weights, torch threads {torch.get_num_threads()}, cores {cores}, "
        f"{args.clock} ms per dataset (medians of {args.repeats}, interleaved)"
    )
    print(f"load before: {os.getloadavg()}")
    print(
        "\n| size | B | mode | official (ms) | ours (ms) | ratio ours/official, median "
        "[quartiles] of paired repeats | max |probs diff| |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        _side_by_side(official, size, args.batches, args.modes, args.repeats, args.clock)
    print(f"\nload after: {os.getloadavg()}")


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
    parser.add_argument("--vs-official", action="store_true", help="time against official AVICI")
    parser.add_argument("--sizes", nargs="+", default=list(OFFICIAL_SIZES), choices=OFFICIAL_SIZES)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    parser.add_argument(
        "--modes", nargs="+", default=["forward", "train"], choices=["forward", "train"]
    )
    parser.add_argument("--clock", default="wall", choices=list(CLOCKS))
    parser.add_argument(
        "--pin", type=int, default=None, metavar="CPU", help="run every thread on this core"
    )
    args = parser.parse_args()
    if args.pin is not None:
        pin_process(args.pin)
    torch.set_num_threads(args.threads)
    if args.vs_official:
        os.environ.setdefault(
            "XLA_FLAGS",
            f"--xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'} "
            f"intra_op_parallelism_threads={args.threads}",
        )
        vs_official(args)
        return
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
