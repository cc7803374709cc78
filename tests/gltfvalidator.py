"""The Khronos glTF validator (npm ``gltf-validator``) and three.js (npm ``three``), run with node, for tests of
facecast's GLB output.

:func:`validator` finds the package in ``$FACECAST_GLTF_VALIDATOR`` (a ``node_modules`` folder's parent) or
``build/npm`` (``make gltf-validator`` installs it there), installing it there with npm when npm is on PATH; it
skips the test, saying why, when node or npm is missing or the install fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

VERSION = "2.0.0-dev.3.10"
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
const fs = require("fs"), path = require("path");
const validator = require("gltf-validator");
const file = process.argv[1];
const data = new Uint8Array(fs.readFileSync(file));
validator.validateBytes(data, {
  uri: path.basename(file), maxIssues: 1000,
  externalResourceFunction: (uri) => new Promise((ok, fail) => {
    fs.readFile(path.join(path.dirname(file), decodeURIComponent(uri)), (e, d) => e ? fail(e.toString()) : ok(d));
  }),
}).then((r) => console.log(JSON.stringify(r)), (e) => { console.error(String(e)); process.exit(3); });
"""


THREE_VERSION = "0.170.0"


def _installed(prefix: Path, package: str) -> bool:
    return (prefix / "node_modules" / package / "package.json").is_file()


def npm_prefix(package: str = "gltf-validator", version: str = VERSION) -> Path:
    """The folder whose node_modules holds an npm package (installing it there when npm is on PATH), or
    pytest.skip saying why."""
    if shutil.which("node") is None:
        pytest.skip(f"node is not installed: npm {package} cannot run")
    env = os.environ.get("FACECAST_GLTF_VALIDATOR")
    prefix = Path(env) if env else ROOT / "build" / "npm"
    if _installed(prefix, package):
        return prefix
    if shutil.which("npm") is None:
        pytest.skip(f"npm is not installed: cannot install {package} (make gltf-validator)")
    done = subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                           f"{package}@{version}"], capture_output=True, text=True, timeout=300)  # fmt: skip
    if done.returncode or not _installed(prefix, package):
        pytest.skip(f"npm could not install {package}: {(done.stderr or done.stdout).strip()[-300:]}")
    return prefix


def validator_prefix() -> Path:
    """The folder whose node_modules holds gltf-validator (installing it when npm is there), or pytest.skip."""
    return npm_prefix("gltf-validator", VERSION)


def validate(prefix: Path, path: Path) -> dict:
    """The validator's JSON report of one .glb/.gltf."""
    env = {**os.environ, "NODE_PATH": str(prefix / "node_modules")}
    done = subprocess.run(["node", "-e", SCRIPT, str(path)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def issues(report: dict) -> set[tuple[str, str, str]]:
    """{(severity name, code, where)} of a report's messages (severity 0 error ... 3 hint); ``where`` is the JSON
    pointer, or the message for entries of the extension lists (whose positions shift when one is dropped)."""
    names = {0: "error", 1: "warning", 2: "info", 3: "hint"}
    out = set()
    for m in report["issues"]["messages"]:
        pointer = m.get("pointer", "")
        where = m["message"] if pointer.startswith(("/extensionsUsed", "/extensionsRequired")) else pointer
        out.add((names[m["severity"]], m["code"], where))
    return out


def version(prefix: Path) -> str:
    return json.loads((prefix / "node_modules" / "gltf-validator" / "package.json").read_text())["version"]
