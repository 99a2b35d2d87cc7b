"""Every process builds the `cuntong` parser, the edge agent too: it must stay light."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("onnxruntime", "cv2", "numpy", "tortoise", "av", "smartcard", "fastapi")


def test_building_the_cli_loads_no_heavy_library() -> None:
    probe = (
        "import json, sys; import cuntong.cli as c; c.build_parser(); "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60
    )
    assert json.loads(out.stdout) == []
