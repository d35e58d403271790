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
