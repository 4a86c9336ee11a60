"""Run the two processes of the event-bus test and read what they wrote.

`EventBusRun` starts Open edX's ``consume_events`` command (our bounded
consumer, `eventbus_consumer`) and the emitting process (`eventbus_producer`)
as separate interpreters with ``DJANGO_SETTINGS_MODULE=eventbus_settings``,
each bounded in time, and collects their logs for failure messages. Only
the standard library here: the test process itself never imports Django
settings for the bus.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
TOPIC = "analytics"  # eventbus_settings.TOPIC


class EventBusRun:
    """One run: a Redis URL, a topic prefix of its own, and a directory for files and logs."""

    def __init__(self, redis_url: str, prefix: str, out: Path) -> None:
        self.out = out
        self.prefix = prefix
        self.stream = f"{prefix}-{TOPIC}"
        self.group = f"{prefix}-group"
        self.base_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS), str(SRC), os.environ.get("PYTHONPATH", "")]),
            "DJANGO_SETTINGS_MODULE": "eventbus_settings",
            "EVENTBUS_E2E_DIR": str(out),
            "EVENTBUS_E2E_REDIS": redis_url,
            "EVENTBUS_E2E_PREFIX": prefix,
        }
        self.consumer: subprocess.Popen[bytes] | None = None
        self._consumer_log: IO[bytes] | None = None

    def env(self, role: str, **extra: str) -> dict[str, str]:
        return {**self.base_env, "EVENTBUS_E2E_ROLE": role, **extra}

    def start_consumer(self, expect: int, budget: float, settle: float = 1.5) -> None:
        """Start ``python -m django consume_events`` for this run's topic and group."""
        extra = json.dumps({"consumer_name": f"{self.prefix}-consumer"})
        command = [sys.executable, "-m", "django", "consume_events"]
        command += ["-t", TOPIC, "-g", self.group, "--extra", extra]
        self._consumer_log = open(self.out / "consumer.log", "wb")  # noqa: SIM115 - closed in stop
        self.consumer = subprocess.Popen(
            command,
            env=self.env(
                "consumer",
                EVENTBUS_E2E_EXPECT=str(expect),
                EVENTBUS_E2E_BUDGET=str(budget),
                EVENTBUS_E2E_SETTLE=str(settle),
            ),
            stdout=self._consumer_log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_consumer_ready(self, timeout: float) -> bool:
        """True once the consumer's group exists; False if it exited or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.out / "consumer-ready").exists():
                return True
            if self.consumer is not None and self.consumer.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def produce(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run the emitting process to completion (TimeoutExpired after `timeout`)."""
        return subprocess.run(
            [sys.executable, "-m", "eventbus_producer"],
            env=self.env("producer"),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def wait_for_consumer(self, timeout: float) -> int | None:
        """The consumer's exit code, or None if it was still running after `timeout` (killed)."""
        assert self.consumer is not None
        try:
            return self.consumer.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return None

    def stop(self) -> None:
        """Kill the consumer if it still runs; close its log."""
        if self.consumer is not None and self.consumer.poll() is None:
            self.consumer.kill()
            self.consumer.wait(timeout=10)
        if self._consumer_log is not None:
            self._consumer_log.close()

    def consumer_log(self) -> str:
        path = self.out / "consumer.log"
        return path.read_text(errors="replace") if path.exists() else "(no consumer log)"

    def summary(self) -> dict[str, Any] | None:
        path = self.out / "consumer-summary.json"
        return json.loads(path.read_text()) if path.exists() else None

    def lines(self, kind: str, role: str) -> list[dict[str, Any]]:
        """The events in ``<kind>-<role>.jsonl`` (kind: ``emitted`` or ``received``)."""
        path = self.out / f"{kind}-{role}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
