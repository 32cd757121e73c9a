"""cffi (API mode) builder for ``aegis._native``.

Each public header in csrc/ carries its Python-visible declarations between
``/* cffi:begin */`` and ``/* cffi:end */``; this script concatenates those
blocks into the cdef, so a declaration is written once, in its header.

Used three ways:
  python csrc/build_native.py --emit-c OUT.c   (CMake, during ``pip install .``)
  python csrc/build_native.py                  (developers: build aegis/_native*.so in place)
  python csrc/build_native.py --sanitize       (same, with AddressSanitizer + UBSan, into build/asan/)
  python csrc/build_native.py --out DIR        (a private build; load it with AEGIS_NATIVE_LIB=DIR/_native...so)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from cffi import FFI

CSRC = Path(__file__).resolve().parent
ROOT = CSRC.parent
_BLOCK = re.compile(r"/\* cffi:begin \*/(.*?)/\* cffi:end \*/", re.S)
WARNINGS = ["-Wall", "-Wextra", "-Werror"]


def headers() -> list[Path]:
    return sorted(CSRC.glob("*.h"))


def cdef_text() -> str:
    parts = []
    for header in headers():
        for block in _BLOCK.findall(header.read_text()):
            parts.append(f"/* {header.name} */\n{block.strip()}\n")
    return "\n".join(parts)


def make_builder(sources: list[str] | None = None, extra_compile_args: list[str] | None = None,
                 extra_link_args: list[str] | None = None) -> FFI:
    ffi = FFI()
    ffi.cdef(cdef_text())
    includes = "\n".join(f'#include "{h.name}"' for h in headers())
    ffi.set_source(
        "aegis._native",
        includes,
        sources=sources or [],
        include_dirs=[str(CSRC)],
        extra_compile_args=extra_compile_args or [],
        extra_link_args=extra_link_args or [],
        libraries=["pthread"] if sys.platform.startswith("linux") else [],
    )
    return ffi


def build_in_place(sanitize: bool, out: Path | None = None) -> Path:
    """Compile the extension and move it atomically into aegis/ (dev workflow)."""
    sources = [str(p) for p in sorted(CSRC.glob("*.c"))]
    flags = WARNINGS + ["-O1" if sanitize else "-O2", "-g", "-std=gnu11"]
    link: list[str] = []
    if sanitize:
        flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
        link += ["-fsanitize=address,undefined"]
    ffi = make_builder(sources, flags, link)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    target_dir = out or ROOT / ("build/asan" if sanitize else "aegis")
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aegis-native-") as tmp:
        built = Path(ffi.compile(tmpdir=tmp, verbose=False))
        final = target_dir / f"_native{suffix}"
        staged = final.with_suffix(f".tmp{os.getpid()}")
        shutil.copy2(built, staged)
        os.replace(staged, final)
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emit-c", metavar="OUT", help="write the generated wrapper C file and exit")
    parser.add_argument("--sanitize", action="store_true", help="build with ASan+UBSan into build/asan/")
    parser.add_argument("--out", type=Path, help="directory for the built module (load it with AEGIS_NATIVE_LIB)")
    args = parser.parse_args()
    if args.emit_c:
        make_builder().emit_c_code(args.emit_c)
        return
    print(build_in_place(args.sanitize, args.out))


if __name__ == "__main__":
    main()
