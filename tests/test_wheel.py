"""Helpline installs as a package: a wheel built from the sources runs without the source tree (issue 15).

The wheel is built from a copy of the sources, installed into a fresh venv in a temporary folder, and
``helpline serve --demo`` is started from that venv's own ``helpline`` script, in a folder that holds no
sources. The demo page, the console, ``/docs`` and every file they load (stylesheets, scripts, the ES
modules those import) must come back: static files and migrations ship in the wheel.

The new venv reuses this environment's installed dependencies (a ``.pth`` file naming our site-packages,
written after the wheel is installed so that pip never sees the development install), which keeps the
test at seconds instead of a download of every dependency.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
import pytest

from helpline import __version__
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(180)
PASSWORD = "wheel-demo-password"


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=150, env=env or clean_env()
    )
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    return done.stdout


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELPLINE_", "PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the wheel installed; returns its folder."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    shutil.copytree(ROOT / "helpline", source / "helpline", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    dist = base / "dist"
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        dist,
        source,
        cwd=base,
    )
    wheels = list(dist.glob("helpline-*.whl"))
    assert len(wheels) == 1, wheels
    venv = base / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base)
    python = venv / "bin" / "python"
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        wheels[0],
        cwd=base,
    )
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=base).strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_helpline_test_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    shutil.rmtree(source)  # the installed copy must do without it
    return venv


def test_the_wheel_holds_the_web_files_and_the_migrations(installed: Path) -> None:
    python = installed / "bin" / "python"
    where = run(python, "-c", "import helpline; print(helpline.__file__)", cwd=installed).strip()
    package = Path(where).parent
    assert package.is_relative_to(installed), where
    for name in ("index.html", "console.html", "widget.js", "stream.js", "api-docs.html", "api-docs.js"):
        assert (package / "web" / "static" / name).is_file(), name
    revisions = sorted(p.name for p in (package / "store" / "migrations" / "versions").glob("0*.py"))
    assert revisions == sorted(p.name for p in (ROOT / "helpline" / "store" / "migrations" / "versions").glob("0*.py"))
    assert (package / "store" / "migrations" / "env.py").is_file()
    assert (package / "py.typed").is_file()


def test_helpline_version(installed: Path) -> None:
    assert run(installed / "bin" / "helpline", "--version", cwd=installed).strip() == f"helpline {__version__}"


def test_serve_demo_from_the_wheel_serves_the_pages_and_their_assets(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    database = f"sqlite:///{work / 'demo.db'}"
    run(installed / "bin" / "helpline", "db", "upgrade", "--database-url", database, cwd=work)
    port = free_port()
    env = {**clean_env(), "HELPLINE_DEMO_PASSWORD": PASSWORD, "HELPLINE_DATABASE_URL": database}
    log = work / "serve.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(installed / "bin" / "helpline"), "serve", "--demo", "--port", str(port)],
            cwd=work,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, server, log)
        with httpx.Client(base_url=base, timeout=10) as client:
            loaded = set()
            for page in ("/", "/console", "/docs"):
                response = client.get(page)
                assert response.status_code == 200, page
                assert "text/html" in response.headers["content-type"]
                for asset in assets_of(response.text, page):
                    load(client, asset, loaded)
            assert {"/static/widget.js", "/static/console.js", "/static/api-docs/swagger-ui-bundle.js"} <= loaded
            assert client.get("/openapi.json").status_code == 200
            login = client.post("/api/v1/auth/login", json={"username": "rep", "password": PASSWORD})
            assert login.status_code == 200, login.text
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_until_up(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"helpline serve exited with {server.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"helpline serve did not answer /healthz within 60 s: {log.read_text()}")


def assets_of(html: str, page: str) -> list[str]:
    found = re.findall(r"""(?:src|href)=["']([^"'#?]+)""", html)
    return [resolve(page, url) for url in found if not url.startswith(("http:", "https:", "data:", "mailto:"))]


def resolve(base: str, url: str) -> str:
    if url.startswith("/"):
        return url
    folder = base.rsplit("/", 1)[0]
    parts: list[str] = []
    for part in f"{folder}/{url}".split("/"):
        if part == "..":
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


def load(client: httpx.Client, path: str, loaded: set[str]) -> None:
    """Fetch one asset, and for an ES module every module it imports."""
    if path in loaded or not path.startswith("/static/"):
        return
    response = client.get(path)
    assert response.status_code == 200, path
    assert response.content, path
    loaded.add(path)
    if path.endswith(".js") and "/api-docs/" not in path:
        for imported in re.findall(r"""(?:import|from)\s*\(?\s*["'](\.{1,2}/[^"']+)["']""", response.text):
            load(client, resolve(path, imported), loaded)
