"""GGUF block-quantized tensors -> ONNX Runtime's block-quantized operators, exactly.

Every GGUF weight type met in the supported models (Gemma 3 270M Q4_K_M,
SmolLM2 Q4_1, Qwen2.5 Q4_K_M) is re-expressed as
``value = scale[block] * (code - zero_point[block]) - offset[block]`` with
integer codes and integer zero points (MatMulNBits' fast path) plus, for Q4_K
only, a per-block float offset applied beside the MatMulNBits as a small term
(per-block sums of the activations times an offset matrix):

| GGUF type | block | GGUF value            | codes      | zero point | scale      | offset    |
| --------- | ----- | --------------------- | ---------- | ---------- | ---------- | --------- |
| Q8_0      | 32    | d·q, q int8           | 8-bit q+128| 128        | d          | 0         |
| Q5_0      | 32    | d·(q−16), q 0..31     | 8-bit q    | 16         | d          | 0         |
| Q6_K      | 16    | d·sc·(q−32), q 0..63  | 8-bit q    | 32         | d·sc       | 0         |
| Q4_K      | 32    | d·sc·q − dmin·m       | 4-bit q    | 0          | d·sc       | dmin·m    |
| Q4_1      | 32    | d·q + m               | 4-bit q    | 0          | d          | −m        |

``d·sc`` and ``dmin·m`` are products of a float16 and a small integer, so they
are exact in float32, and ``scale * (code - zp) - offset`` reproduces the
GGUF dequantization (``gguf.quants.dequantize``) bit for bit (``x − (−m)`` is
``x + m`` exactly); :func:`check_exact`
proves it for every tensor. (Q5_0 needs 5 bits; MatMulNBits has 4 and 8, so
it rides the 8-bit kernel, exactly.)

The block decoding below is written from the GGUF/ggml block layouts
(``block_q8_0``, ``block_q5_0``, ``block_q4_1``, ``block_q4_K``, ``block_q6_K``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QK_K = 256


@dataclass
class BlockQuant:
    """A weight ``W [N, K]`` (``N`` outputs, ``K`` inputs) as integer codes per block."""

    codes: np.ndarray  # uint8 [N, K], one code per element (unpacked)
    scales: np.ndarray  # float32 [N, K // block]
    zero_points: np.ndarray  # uint8 [N, K // block]
    offsets: np.ndarray | None  # float32 [N, K // block] subtracted after scaling, or None
    block: int
    bits: int  # 4 or 8: the MatMulNBits width that holds the codes
    raw: np.ndarray | None = None  # uint8 [N, row_bytes]: the GGUF's own blocks, rows as ``codes``
    gguf_type: str | None = None  # e.g. "Q4_1", where ``raw`` is set

    def dequantize(self) -> np.ndarray:
        """float32 [N, K] in the same float operations as the GGUF reference."""
        n, k = self.codes.shape
        nb = k // self.block
        q = self.codes.reshape(n, nb, self.block).astype(np.float32) - self.zero_points[..., None].astype(np.float32)
        w = self.scales[..., None] * q
        if self.offsets is not None:
            w = w - self.offsets[..., None]
        return w.reshape(n, k)

    def dequantize_rows(self, rows: np.ndarray) -> np.ndarray:
        """``dequantize()[rows]`` without the whole table in float32."""
        return BlockQuant(self.codes[rows], self.scales[rows], self.zero_points[rows],
                          None if self.offsets is None else self.offsets[rows], self.block, self.bits).dequantize()

    def rows(self, order: np.ndarray) -> "BlockQuant":
        """The same weight with its output rows taken in ``order`` (blocks run along K, so rows move whole)."""
        off = None if self.offsets is None else self.offsets[order]
        raw = None if self.raw is None else self.raw[order]
        return BlockQuant(self.codes[order], self.scales[order], self.zero_points[order], off, self.block, self.bits,
                          raw, self.gguf_type)

    def packed_codes(self) -> np.ndarray:
        """MatMulNBits ``B``: uint8 [N, K/block, block*bits/8], codes low-first along K."""
        n, k = self.codes.shape
        nb = k // self.block
        if self.bits == 8:
            return self.codes.reshape(n, nb, self.block).copy()
        c = self.codes.reshape(n, nb, self.block // 2, 2)
        return (c[..., 0] | (c[..., 1] << 4)).astype(np.uint8)

    def packed_zero_points(self) -> np.ndarray:
        """MatMulNBits ``zero_points``: uint8, one per block (8-bit) or two per byte low-first per row (4-bit)."""
        n, nb = self.zero_points.shape
        if self.bits == 8:
            return self.zero_points.reshape(-1).copy()
        zp = self.zero_points
        if nb % 2:
            zp = np.concatenate([zp, np.zeros((n, 1), np.uint8)], axis=1)
        zp = zp.reshape(n, -1, 2)
        return (zp[..., 0] | (zp[..., 1] << 4)).astype(np.uint8).reshape(-1)


def _f16(raw: np.ndarray) -> np.ndarray:
    return raw.copy().view(np.float16).astype(np.float32)


def _rows(data: np.ndarray, n: int, block_bytes: int) -> np.ndarray:
    """Raw tensor bytes as [n, blocks_per_row, block_bytes]."""
    return np.ascontiguousarray(data).reshape(n, -1, block_bytes)


def decode_q8_0(data: np.ndarray, n: int, k: int) -> BlockQuant:
    b = _rows(data, n, 34)
    d = _f16(b[..., 0:2]).reshape(n, -1)
    q = b[..., 2:].copy().view(np.int8).astype(np.int16) + 128
    return BlockQuant(q.astype(np.uint8).reshape(n, k), d, np.full(d.shape, 128, np.uint8), None, 32, 8)


def decode_q5_0(data: np.ndarray, n: int, k: int) -> BlockQuant:
    b = _rows(data, n, 22)
    d = _f16(b[..., 0:2]).reshape(n, -1)
    qh = b[..., 2:6].copy().view("<u4")  # [n, nb, 1]: bit j is the high bit of element j
    qs = b[..., 6:22]  # element j < 16 in the low nibble of byte j, element j + 16 in its high nibble
    low = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.uint32)  # [n, nb, 32]
    high = (qh >> np.arange(32, dtype=np.uint32)) & 1
    q = (low | (high << 4)).astype(np.uint8)
    return BlockQuant(q.reshape(n, k), d, np.full(d.shape, 16, np.uint8), None, 32, 8)


def decode_q4_1(data: np.ndarray, n: int, k: int) -> BlockQuant:
    b = _rows(data, n, 20)
    d = _f16(b[..., 0:2]).reshape(n, -1)
    m = _f16(b[..., 2:4]).reshape(n, -1)
    qs = b[..., 4:20]  # element j < 16 in the low nibble of byte j, element j + 16 in its high nibble
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.uint8)
    return BlockQuant(q.reshape(n, k), d, np.zeros(d.shape, np.uint8), (-m).astype(np.float32), 32, 4)


def _q4k_scale_min(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 12 packed bytes of a Q4_K super-block -> 8 six-bit scales and 8 six-bit mins."""
    s = s.astype(np.uint8)
    sc = np.empty(s.shape[:-1] + (8,), np.uint8)
    mn = np.empty_like(sc)
    for j in range(4):
        sc[..., j] = s[..., j] & 63
        mn[..., j] = s[..., j + 4] & 63
    for j in range(4, 8):
        sc[..., j] = (s[..., j + 4] & 0x0F) | ((s[..., j - 4] >> 6) << 4)
        mn[..., j] = (s[..., j + 4] >> 4) | ((s[..., j] >> 6) << 4)
    return sc, mn


def decode_q4_k(data: np.ndarray, n: int, k: int) -> BlockQuant:
    b = _rows(data, n, 144)
    d = _f16(b[..., 0:2])  # [n, nsb, 1]
    dmin = _f16(b[..., 2:4])
    sc, mn = _q4k_scale_min(b[..., 4:16])  # [n, nsb, 8]
    qs = b[..., 16:144].reshape(n, -1, 4, 32)  # 4 groups of 32 bytes: low nibbles = sub-block 2g, high = 2g+1
    q = np.stack([qs & 0x0F, qs >> 4], axis=3).reshape(n, -1, 8, 32)
    scales = (d * sc.astype(np.float32)).reshape(n, -1)
    offsets = (dmin * mn.astype(np.float32)).reshape(n, -1)
    return BlockQuant(q.reshape(n, k).astype(np.uint8), scales, np.zeros(scales.shape, np.uint8), offsets, 32, 4)


def decode_q6_k(data: np.ndarray, n: int, k: int) -> BlockQuant:
    b = _rows(data, n, 210)
    ql = b[..., 0:128].reshape(n, -1, 2, 64)  # two halves of 128 elements
    qh = b[..., 128:192].reshape(n, -1, 2, 32)
    sc = b[..., 192:208].copy().view(np.int8).astype(np.float32)  # [n, nsb, 16]
    d = _f16(b[..., 208:210])  # [n, nsb, 1]
    # Within a half: element l (0..31) of quarter g (0..3) -> low nibble of ql[l] (g=0), ql[l+32] (g=1),
    # high nibble of ql[l] (g=2), ql[l+32] (g=3); its two high bits are bits 2g..2g+1 of qh[l].
    low = np.stack([ql[..., 0:32] & 0x0F, ql[..., 32:64] & 0x0F, ql[..., 0:32] >> 4, ql[..., 32:64] >> 4], axis=3)
    high = np.stack([(qh >> (2 * g)) & 3 for g in range(4)], axis=3)
    q = (low | (high << 4)).astype(np.uint8)  # [n, nsb, 2, 4, 32]
    scales = (d * sc).reshape(n, -1)
    return BlockQuant(q.reshape(n, k), scales, np.full(scales.shape, 32, np.uint8), None, 16, 8)


DECODERS = {"Q8_0": decode_q8_0, "Q5_0": decode_q5_0, "Q4_1": decode_q4_1, "Q4_K": decode_q4_k, "Q6_K": decode_q6_k}


def decode(tensor) -> BlockQuant:
    """A ``gguf.GGUFReader`` tensor (2-D, ggml shape [K, N]) -> :class:`BlockQuant` of W [N, K]."""
    name = tensor.tensor_type.name
    if name not in DECODERS:
        raise ValueError(f"{tensor.name}: GGUF block type {name} is not supported (supported: {', '.join(sorted(DECODERS))})")
    k, n = (int(x) for x in tensor.shape)
    data = np.asarray(tensor.data)
    bq = DECODERS[name](data, n, k)
    bq.raw, bq.gguf_type = np.ascontiguousarray(data).reshape(n, -1), name
    return bq


def check_exact(tensor) -> BlockQuant:
    """Decode and assert bit-exact equality with ``gguf.quants.dequantize``."""
    from gguf import quants

    bq = decode(tensor)
    ref = quants.dequantize(np.asarray(tensor.data), tensor.tensor_type).reshape(bq.codes.shape)
    got = bq.dequantize()
    if not np.array_equal(got.view(np.uint32), ref.astype(np.float32).view(np.uint32)):
        bad = int((got != ref).sum())
        raise AssertionError(f"{tensor.name} ({tensor.tensor_type.name}): {bad} values differ from gguf's dequantize")
    return bq


def split4(bq: BlockQuant) -> BlockQuant:
    """Re-express an 8-bit-code tensor as 4-bit codes over a doubled K, exactly.

    An 8-bit code ``c`` with zero point ``z`` (a multiple of 16) is ``lo + 16·hi``,
    so ``s·(c − z) = s·(lo − 0) + 16s·(hi − z/16)``: two 4-bit parts (``16s``
    is exact in float32). The parts are laid side by side along K, so
    ``x @ W^T == [x, x] @ [W_lo | W_hi]^T`` runs as ONE 4-bit MatMulNBits on the
    fast float32 kernel (accuracy_level 0) instead of the 8-bit one, whose
    float32 path is slow and whose int8 path quantizes the activations.
    4-bit tensors are returned unchanged.
    """
    if bq.bits == 4:
        return bq
    if np.any(bq.zero_points % 16):
        raise ValueError("zero points must be multiples of 16 to split 8-bit codes into 4-bit halves")
    lo, hi = bq.codes & 0x0F, bq.codes >> 4
    codes = np.concatenate([lo, hi], axis=1)
    scales = np.concatenate([bq.scales, (bq.scales * np.float32(16)).astype(np.float32)], axis=1)
    zps = np.concatenate([np.zeros_like(bq.zero_points), bq.zero_points // 16], axis=1)
    offsets = None if bq.offsets is None else np.concatenate([bq.offsets, np.zeros_like(bq.offsets)], axis=1)
    out = BlockQuant(codes.astype(np.uint8), scales, zps.astype(np.uint8), offsets, bq.block, 4)
    # The two halves' values sum to the original value, bit for bit.
    n, k = bq.codes.shape
    halves = out.dequantize()
    if not np.array_equal(halves[:, :k] + halves[:, k:], bq.dequantize()):
        raise AssertionError("4-bit split is not exact")
    return out
