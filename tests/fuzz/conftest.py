"""Hypothesis budgets for the fuzz tests (tests/fuzz only).

Two profiles are registered here. Registering does not load them, so the rest of the test suite
keeps Hypothesis' defaults; the fuzz tests pick their profile themselves (see `budget()` in
test_fuzz.py), from, in this order:

* ``IPSMTP_FUZZ_PROFILE=ci`` or ``IPSMTP_FUZZ_PROFILE=long`` (also ``fuzz-ci``/``fuzz-long``);
* ``--hypothesis-profile=fuzz-long`` on the pytest command line (run tests/fuzz alone then:
  that option loads the profile for every test of the run);
* else ``fuzz-ci``, the bounded budget CI runs.

``IPSMTP_FUZZ_EXAMPLES=N`` sets the example count of every fuzz test to N, whatever the profile.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,  # CI machines are noisy; a hang is caught by pytest-timeout instead
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,  # a failure prints the @reproduce_failure line
}

# CI: each test states its own count (100 to 500, 30 for the end-to-end ones); this is the
# fallback. Derandomized: every CI run tries the same examples, so a result never depends on
# luck (new ground is covered by the long run). No example database: CI starts clean.
settings.register_profile("fuzz-ci", max_examples=300, derandomize=True, database=None, **_COMMON)

# Local, long: 100 000 examples per pure test (end-to-end tests get a fiftieth of that), with the
# example database in .hypothesis/ so that a failure found once is replayed first next time.
settings.register_profile("fuzz-long", max_examples=100_000, **_COMMON)
