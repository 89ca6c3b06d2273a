"""riemexp.lock: one writer per run folder, and live versus dead "running" runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from riemexp import lock
from riemexp.errors import FolderBusyError, RunFolderError
from tests.conftest import REPO

HOLDER = """
import sys
from riemexp.lock import hold
with hold(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def start_holder(folder: Path) -> subprocess.Popen[str]:
    """Another process holding folder's lock until its stdin closes (or it is killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def running(**values: object) -> dict[str, object]:
    return {"status": "running", "pid": os.getpid(), "host": lock.host_name(), **values}


def test_a_second_writer_is_refused_with_the_holders_pid_and_host(tmp_path: Path) -> None:
    proc = start_holder(tmp_path)
    try:
        with pytest.raises(FolderBusyError, match=rf"in use by a live run \(pid {proc.pid} on host "):
            with lock.hold(tmp_path):
                pass
        assert lock.probe(tmp_path) is True
        assert lock.holder(tmp_path)["pid"] == proc.pid
        assert lock.run_state(tmp_path, running(pid=proc.pid)) == "live"
    finally:
        proc.communicate("")
    assert proc.returncode == 0
    assert not (tmp_path / lock.LOCK_FILE).exists(), "a holder that lets go removes the lock file"
    with lock.hold(tmp_path) as info:
        assert info["pid"] == os.getpid()


def test_the_lock_is_reentrant_and_answers_from_memory_in_its_process(tmp_path: Path) -> None:
    with lock.hold(tmp_path):
        with lock.hold(tmp_path):
            assert lock.holds(tmp_path) and lock.probe(tmp_path) is True
        assert lock.holds(tmp_path), "the outer hold still holds"
        saved = json.loads((tmp_path / lock.LOCK_FILE).read_text())
        assert saved["pid"] == os.getpid() and saved["host"] == lock.host_name() and saved["started"]
    assert not lock.holds(tmp_path) and lock.probe(tmp_path) is None


def test_a_killed_holder_holds_nothing_and_its_run_is_dead(tmp_path: Path) -> None:
    proc = start_holder(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / lock.LOCK_FILE).exists() and lock.probe(tmp_path) is False
    assert lock.run_state(tmp_path, running(pid=proc.pid, heartbeat=lock.now_iso())) == "dead"
    with lock.hold(tmp_path):  # the folder is free again
        pass


def test_run_state_without_a_lock_file(tmp_path: Path) -> None:
    # this host: the pid decides
    assert lock.run_state(tmp_path, running()) == "live"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    assert lock.run_state(tmp_path, running(pid=int(dead.stdout))) == "dead"
    # another host: the heartbeat's age decides
    fresh = datetime.now(timezone.utc).isoformat(timespec="seconds")
    old = (datetime.now(timezone.utc) - timedelta(seconds=lock.stale_after() + 60)).isoformat()
    assert lock.run_state(tmp_path, running(host="elsewhere", heartbeat=fresh)) == "live"
    assert lock.run_state(tmp_path, running(host="elsewhere", heartbeat=old)) == "dead"
    assert lock.run_state(tmp_path, running(host="elsewhere")) == "dead"
    # a finished run is what it says
    for status in ("completed", "diverged", "failed", "interrupted"):
        assert lock.run_state(tmp_path, {"status": status}) == status
    # read from the folder when not given
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "completed"}))
    assert lock.run_state(tmp_path) == "completed"
    with pytest.raises(RunFolderError, match="no readable run record"):
        lock.run_state(tmp_path / "nothing")


def test_describe_state_says_live_or_dead(tmp_path: Path) -> None:
    assert lock.describe_state(tmp_path, {"status": "completed"}) == "completed"
    line = lock.describe_state(tmp_path, running(phase="training", heartbeat=lock.now_iso()))
    assert line.startswith("running (training): live (pid") and "last heartbeat" in line
    line = lock.describe_state(tmp_path, running(host="elsewhere"))
    assert "but dead" in line and "no heartbeat recorded" in line


def test_the_heartbeat_thread_rewrites_metrics_while_the_run_works(tmp_path: Path) -> None:
    metrics = running()
    beat = lock.Heartbeat(tmp_path / "metrics.json", metrics, interval=0.01)
    beat.write()
    assert json.loads((tmp_path / "metrics.json").read_text())["heartbeat"]
    beat.start()
    try:
        metrics["epochs"] = 7  # progress made by the main thread
        for _ in range(100_000):  # until the thread has written it (an event, not a time)
            saved = json.loads((tmp_path / "metrics.json").read_text())
            if saved.get("epochs") == 7:
                break
        assert saved["epochs"] == 7 and saved["status"] == "running"
    finally:
        beat.stop()
    beat.write(status="completed")
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "completed"
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"
