"""Shared test set-up: the hypothesis profile and float64 by default where tests ask for it.

The "ci" profile (the default) is derandomized (a fixed seed), has no deadline and runs at least
200 examples per property. `HYPOTHESIS_PROFILE=dev` runs a quicker 30 while you edit.
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=200, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Tiny models run fastest on one thread: on a busy 2-core machine a second thread makes each
# small op wait for the scheduler (measured 60x slower per tiny forward pass). Lessons and
# benchmarks choose their own thread count.
import torch  # noqa: E402

torch.set_num_threads(1)
