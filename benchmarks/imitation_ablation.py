"""Imitated policies against random designs on validation environments, in both modes.

Each policy (a CAASL zip) and the harness's ``random`` baseline run one episode on the same
validation environments (seeds ``seed .. seed + envs - 1``) of a preset's environment, scored
by its reward model (``exact-linear-scm`` for ``imitation-linear``); prints mean ± s.e. of the
final expected correct entries and the paired difference to random (95 % t-interval).

    python benchmarks/imitation_ablation.py runs/imitation-linear/fit/imitated.zip \
        runs/imitation-history/fit/imitated.zip --envs 64 --seed 10000
"""

from __future__ import annotations

import argparse

import torch

from caasl_agent import CAASL
from caasl_agent.bench.reports import mean_sem, paired_interval
from caasl_agent.train import env_kwargs_of, evaluate_agent, load_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policies", nargs="+", help="CAASL zips")
    parser.add_argument("--config", default="imitation-linear", help="preset of the environment")
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--seed", type=int, default=10000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = load_config(args.config)
    kwargs = {k: v for k, v in env_kwargs_of(config).items() if k != "observe_belief"}
    run = [config["env_id"], kwargs, args.envs, args.seed]
    random = evaluate_agent("random", *run)["final_expected_correct_entries"]
    print(f"random: {mean_sem(random)[0]:.2f} ± {mean_sem(random)[1]:.2f}")
    for path in args.policies:
        model = CAASL.load(path)
        for deterministic in (True, False):
            final = evaluate_agent(model, *run, deterministic)["final_expected_correct_entries"]
            mean, low, high, _ = paired_interval(final - random)
            mode = "deterministic" if deterministic else "sampled"
            print(
                f"{path} {mode}: {mean_sem(final)[0]:.2f} ± {mean_sem(final)[1]:.2f}; "
                f"- random {mean:+.2f} [{low:+.2f}, {high:+.2f}]"
            )


if __name__ == "__main__":
    main()
