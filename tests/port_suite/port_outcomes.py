"""pytest plugin: record every test's outcome and write them as JSON at the end.

It also removes a stale ``Fdump.bin`` from the working directory before each test.

The file is rewritten after every test (a killed run keeps its outcomes).  The path comes from the environment variable ``PORT_SUITE_JSON``; the file holds
``{"counts": {...}, "outcomes": {nodeid: outcome}, "messages": {nodeid: first line}}``.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter

import pytest

_outcomes: dict[str, str] = {}
_messages: dict[str, str] = {}


def _first_line(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0][:300] if crash.message else ""
    text = str(report.longrepr or "")
    return text.strip().splitlines()[-1][:300] if text.strip() else ""


def _write() -> None:
    path = os.environ.get("PORT_SUITE_JSON")
    if not path:
        return
    counts = Counter(_outcomes.values())
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"counts": dict(counts), "outcomes": dict(sorted(_outcomes.items())),
                   "messages": dict(sorted(_messages.items()))}, fh, indent=1)
    os.replace(tmp, path)


def pytest_runtest_setup(item):
    # The C program (and the port, and our CLI) reads Fdump.bin from the working directory
    # when no -hkl is given; tests that load an HKL file leave one behind, which would make
    # later tests depend on the order they run in.  Start every test without it.
    if os.path.exists("Fdump.bin"):
        os.remove("Fdump.bin")


class TestTimeout(Exception):
    """A test ran longer than ``PORT_SUITE_TIMEOUT`` seconds."""


def _on_alarm(signum, frame):
    raise TestTimeout(f"test exceeded PORT_SUITE_TIMEOUT={os.environ.get('PORT_SUITE_TIMEOUT')} s")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    # The port's own per-test limit comes from pytest-timeout, which is not installed here;
    # a SIGALRM in the test process does the same for its call phase.  A subprocess the
    # test waits on is killed by subprocess.run when the exception interrupts the wait.
    seconds = float(os.environ.get("PORT_SUITE_TIMEOUT") or 0)
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def pytest_runtest_logreport(report):
    nodeid = report.nodeid
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        elif report.skipped:
            outcome = "skipped"
        elif report.failed:
            outcome = "failed" if report.when == "call" else "error"
        else:
            outcome = "passed"
        _outcomes[nodeid] = outcome
        if outcome in ("failed", "error", "skipped"):
            _messages[nodeid] = _first_line(report)
    elif report.when == "teardown" and report.failed and _outcomes.get(nodeid) == "passed":
        _outcomes[nodeid] = "error"
        _messages[nodeid] = _first_line(report)


def pytest_collectreport(report):
    if report.failed:  # a test file that does not even import
        _outcomes[report.nodeid] = "error"
        _messages[report.nodeid] = _first_line(report)


def pytest_runtest_logfinish(nodeid, location):
    # after every test, so that a run that is killed (memory, time) keeps what it measured
    _write()


def pytest_sessionfinish(session, exitstatus):
    _write()
