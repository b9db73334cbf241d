"""The test scripts are good guests: ``scripts/install-test-deps`` leaves a developer's own nginx running.

"The user's nginx" is a daemonized nginx (its master detaches, as a system service's does) with a config,
pid file and logs of its own on a free port. After the script has run, the same master process is alive
and still answers; the test then stops exactly that nginx, by the pid in its own pid file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.proxies import find_binary

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.proxy, pytest.mark.timeout(300)]

CONFIG = """
daemon on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type text/plain; return 200 "the user's own nginx\\n"; }}
  }}
}}
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_install_test_deps_leaves_the_users_nginx_running(tmp_path: Path) -> None:
    binary = find_binary("nginx")
    port = free_port()
    prefix = tmp_path / "users-nginx"
    prefix.mkdir()
    config = prefix / "nginx.conf"
    config.write_text(CONFIG.format(prefix=prefix, port=port))
    pid_file = prefix / "nginx.pid"
    started = subprocess.run([binary, "-p", str(prefix), "-c", str(config)], capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started.stderr
    wait_for(pid_file.exists, 30, "nginx's pid file")
    pid = int(pid_file.read_text().strip())
    try:
        url = f"http://127.0.0.1:{port}/"
        assert httpx.get(url, timeout=10).text == "the user's own nginx\n"
        script = subprocess.run(
            [str(ROOT / "scripts" / "install-test-deps")], capture_output=True, text=True, timeout=240, cwd=ROOT
        )
        assert script.returncode == 0, script.stdout + script.stderr
        assert alive(pid), "install-test-deps stopped the user's nginx"
        assert int(pid_file.read_text().strip()) == pid, "the user's nginx was restarted"
        assert httpx.get(url, timeout=10).text == "the user's own nginx\n"
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGQUIT)  # exactly the nginx this test started: its master, by its pid file
            wait_for(lambda: not alive(pid), 30, "the test's nginx to stop")


def test_the_scripts_stop_nothing() -> None:
    """No script names a way to stop, kill or disable a process or service it did not start."""
    forbidden = re.compile(r"\b(pkill|killall|systemctl\s+(stop|disable|mask|kill)|service\s+\S+\s+stop|kill\s+-)")
    for script in sorted((ROOT / "scripts").iterdir()):
        code = "\n".join(line for line in script.read_text().splitlines() if not line.lstrip().startswith("#"))
        assert not forbidden.search(code), script.name
