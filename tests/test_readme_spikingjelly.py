"""The README's "Using it from SpikingJelly" example runs as written."""

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_using_it_from_spikingjelly_runs():
    code = re.search(r"## Using it from SpikingJelly\n.+?```python\n(.+?)\n```", README, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["curves"].roles == {"1": "mac", "3": "ac"}
    assert namespace["nb"].t[-1] == 8
