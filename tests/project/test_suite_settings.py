"""The test suite's own settings (pyproject's [tool.pytest.ini_options]): a hanging test fails
with a traceback instead of hanging CI, and `make test-fast` deselects what is marked slow."""

from __future__ import annotations

import pytest
from conftest import REPO


def with_project_settings(pytester: pytest.Pytester) -> None:
    """The pytester folder gets this project's pyproject.toml (its pytest settings)."""
    pytester.makepyprojecttoml((REPO / "pyproject.toml").read_text())


def test_a_per_test_timeout_is_configured(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.getini("timeout_method") == "signal"  # the stuck test fails, run goes on
    assert 60 <= float(pytestconfig.getini("timeout")) <= 900


@pytest.mark.slow
def test_a_hanging_test_fails_with_its_traceback_and_the_run_goes_on(
    pytester: pytest.Pytester,
) -> None:
    with_project_settings(pytester)
    pytester.makepyfile(test_hang="""
        import time

        def test_hangs():
            time.sleep(30)

        def test_after_the_hang():
            assert True
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "timeout=1")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*Failed: Timeout (>1.0s) from pytest-timeout*"])
    result.stdout.fnmatch_lines(["*time.sleep(30)*"])  # where it hung


def test_fast_run_deselects_tests_marked_slow(pytester: pytest.Pytester) -> None:
    with_project_settings(pytester)
    pytester.makepyfile(test_marks="""
        import pytest

        @pytest.mark.slow
        def test_long():
            pass

        def test_short():
            pass

        @pytest.mark.parametrize("n", [1, pytest.param(2, marks=pytest.mark.slow)])
        def test_some_cases_slow(n):
            pass
    """)
    fast = pytester.runpytest("-p", "no:cacheprovider", "-m", "not slow")
    fast.assert_outcomes(passed=2, deselected=2)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=4)
