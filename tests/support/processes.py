"""Run `casework` as a real OS process, so tests can kill -9 it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO


class ServiceProcess:
    """`python -m casework run --only …` with its own environment and a log file."""

    def __init__(self, only: str, env: dict[str, str], log: Path) -> None:
        self.only = only
        self.env = {**os.environ, **env}
        self.log_path = log
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, **extra_env: str) -> ServiceProcess:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "casework", "run", "--only", self.only],
            env={**self.env, **extra_env}, stdout=self._log, stderr=subprocess.STDOUT,
        )
        return self

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, error: type[BaseException] | None, *_: object) -> None:
        """However the test ends, the process does not outlive it (a failed test's is killed)."""
        if self.process is None:
            return
        if error is not None and self.process.poll() is None:
            self.kill()
        self.stop()

    def kill(self) -> None:
        """SIGKILL: no cleanup, nothing flushed, unacked messages go back to the queue."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def send(self, signal_number: signal.Signals) -> None:
        """A signal as an operator or a supervisor sends it (SIGTERM, SIGINT), without waiting."""
        assert self.process is not None
        self.process.send_signal(signal_number)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log:
            self._log.close()
        return self.process.returncode

    def exited(self) -> int | None:
        assert self.process is not None
        return self.process.poll()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
