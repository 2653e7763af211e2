"""Reader for CTranslate2 `model.bin` files (binary format version 6).

Layout (little endian): u32 version, string spec name, u32 spec revision,
u32 variable count, then per variable: string name, u8 rank, u32 dims[rank],
u8 dtype id, u32 byte count, raw bytes; then u32 alias count and
(alias, target) string pairs. Strings are u16 length (with the trailing NUL)
followed by the bytes.
"""
import struct

import numpy as np

# CTranslate2's DataType enum.
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"model.bin truncated at byte {self.pos} (wanted {n} more)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self):
        return struct.unpack("<B", self.take(1))[0]

    def u16(self):
        return struct.unpack("<H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def string(self) -> str:
        n = self.u16()
        raw = self.take(n)
        return raw.rstrip(b"\0").decode("utf-8")


def read_model_bin(data: bytes):
    """Return (spec_name, revision, {name: ndarray}, {alias: target})."""
    r = _Reader(data)
    version = r.u32()
    if version != 6:
        raise ValueError(f"unsupported CTranslate2 binary version {version} (this reader handles 6)")
    spec = r.string()
    revision = r.u32()
    variables = {}
    for _ in range(r.u32()):
        name = r.string()
        rank = r.u8()
        shape = [r.u32() for _ in range(rank)]
        dtype_id = r.u8()
        nbytes = r.u32()
        if dtype_id not in DTYPES:
            raise ValueError(f"variable {name}: unsupported dtype id {dtype_id}")
        arr = np.frombuffer(r.take(nbytes), dtype=DTYPES[dtype_id])
        variables[name] = arr.reshape(shape) if shape else arr.reshape(())
    aliases = {}
    for _ in range(r.u32()):
        alias = r.string()
        aliases[alias] = r.string()
    if r.pos != len(data):
        raise ValueError(f"{len(data) - r.pos} trailing bytes after the aliases")
    return spec, revision, variables, aliases
