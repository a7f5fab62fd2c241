"""A real `python -m toxicity.serve` in a subprocess, for the serving tests."""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from tests.helpers import ROOT
from tests.helpers.processes import free_port


class Server:
    """`python -m toxicity.serve ...` in a subprocess on a free port, stopped at the end."""

    def __init__(self, *args: str, env: dict | None = None, cwd=ROOT):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (open while the server runs)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "toxicity.serve", *args, "--port", str(self.port)],
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while self.status("/health") != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                self.log.seek(0)
                raise RuntimeError(f"server did not start:\n{self.log.read().decode()[-3000:]}")
            time.sleep(0.3)

    def status(self, path: str) -> int | None:
        try:
            return self.call(path)[0]
        except OSError:
            return None

    def call(self, path: str, body=None, headers: dict | None = None) -> tuple[int, dict | str]:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        sent_as = {"content-type": "application/json"} if data is not None else {}  # as real clients do
        request = urllib.request.Request(self.url + path, data=data, headers=sent_as | (headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode()

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)  # the server and the workers it started
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
