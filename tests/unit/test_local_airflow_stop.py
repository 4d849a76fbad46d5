"""`make up` stops on Ctrl-C: the script's `up` takes SIGINT (or SIGTERM), stops the whole process
group of `airflow standalone` within 10 s – SIGTERM, then SIGKILL for what ignores it – prints what
it stopped, and leaves no process behind. The Airflow processes are stood in for by a process group
whose members ignore SIGTERM (the slowest case); everything else is the script's own code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# a leader and two children that all ignore SIGTERM (an ignored signal stays ignored across exec),
# as a stuck scheduler would
STUBBORN = "trap '' TERM; sleep 600 & sleep 600 & exec sleep 600"

DRIVER = textwrap.dedent(f"""
    import subprocess, sys
    sys.path.insert(0, {str(ROOT / "scripts")!r})
    import local_airflow as la

    class Server:
        def shutdown(self):
            print("server stopped", flush=True)

    def fake_start(args, label):
        af = la.Standalone({{"AIRFLOW_HOME": args.home, "AIRFLOW__API__BASE_URL": "http://127.0.0.1:1"}})
        af.proc = subprocess.Popen(["bash", "-c", {STUBBORN!r}], start_new_session=True)
        af.password = lambda: "pw"
        print(f"group {{af.proc.pid}}", flush=True)
        return args.home, ["2026-12-01"], Server(), {{}}, af

    la.start_local = fake_start
    sys.exit(la.main(["up", "--home", sys.argv[1]]))
""")


def _wait_for(proc: subprocess.Popen, text: str, timeout: float = 30) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} in {lines}")


def _members(pgid: int) -> list[int]:
    sys.path.insert(0, str(ROOT / "scripts"))
    import local_airflow

    return [pid for pid, _ in local_airflow.group_members(pgid)]


def _run(sig: int, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        lines = _wait_for(proc, "Ctrl-C to stop")
        pgid = int(next(line for line in lines if line.startswith("group ")).split()[1])
        time.sleep(0.5)  # the children are up
        assert len(_members(pgid)) == 3
        t0 = time.monotonic()
        os.kill(proc.pid, sig)
        if sig == signal.SIGINT:
            time.sleep(1)
            os.kill(proc.pid, signal.SIGINT)  # a second Ctrl-C does not cut the clean-up short
        out, _ = proc.communicate(timeout=15)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert elapsed < 10, elapsed
    assert f"stopped airflow standalone: process group {pgid}, 3 processes" in out
    assert "3 did not exit on SIGTERM" in out and "server stopped" in out
    assert _members(pgid) == []  # no orphan


def test_ctrl_c_stops_the_whole_group_within_10_s(tmp_path):
    _run(signal.SIGINT, tmp_path)


def test_sigterm_stops_the_whole_group_within_10_s(tmp_path):
    _run(signal.SIGTERM, tmp_path)
