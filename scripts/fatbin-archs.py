#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# fatbin-archs.py BINARY: the GPU code an executable built with nvcc carries,
# one line per kind and architecture ("elf sm_90", "ptx compute_90"), read
# from the fat binaries in its .nv_fatbin section. What `cuobjdump
# --list-elf` / `--list-ptx` show, for machines whose CUDA toolkit has no
# cuobjdump (tests/kconfig/cuda.sh uses whichever is there).
#
# Format of .nv_fatbin: fat binaries one after the other (8-byte aligned),
# each a 16-byte header (magic 0xba55ed50, u16 version, u16 header size,
# u64 size of the entries) and entries, each with its own header: u16 kind
# (1 PTX, 2 ELF), u16, u32 header size, u64 payload size, ..., u32
# architecture (e.g. 90) at byte 28. Exit status 1 with a message when the
# file has no such section or it does not parse.
import struct
import subprocess
import sys
import tempfile

MAGIC = 0xBA55ED50
KINDS = {1: ("ptx", "compute_"), 2: ("elf", "sm_")}


def section(path):
    with tempfile.NamedTemporaryFile() as t:
        r = subprocess.run(["objcopy", "-O", "binary", "--only-section=.nv_fatbin",
                            path, t.name], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"fatbin-archs: {path}: objcopy failed: {r.stderr.strip()}")
        return open(t.name, "rb").read()


def entries(data, path):
    found, off = set(), 0
    while off + 16 <= len(data):
        magic, _, hsize, fsize = struct.unpack_from("<IHHQ", data, off)
        if magic != MAGIC:
            off += 8
            continue
        e, end = off + hsize, off + hsize + fsize
        if end > len(data):
            sys.exit(f"fatbin-archs: {path}: a fat binary at {off:#x} runs past the section")
        while e < end:
            kind, _, ehsize, psize = struct.unpack_from("<HHIQ", data, e)
            (arch,) = struct.unpack_from("<I", data, e + 28)
            if kind not in KINDS or ehsize == 0:
                sys.exit(f"fatbin-archs: {path}: unknown entry kind {kind} at {e:#x}")
            found.add((KINDS[kind][0], KINDS[kind][1] + str(arch)))
            e += ehsize + psize
        off = end
    return found


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fatbin-archs.py BINARY")
    path = sys.argv[1]
    data = section(path)
    if not data:
        sys.exit(f"fatbin-archs: {path} has no .nv_fatbin section (no GPU code)")
    for kind, arch in sorted(entries(data, path)):
        print(kind, arch)


if __name__ == "__main__":
    main()
