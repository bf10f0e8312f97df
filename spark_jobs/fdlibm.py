"""``log1p``, ``log`` and ``exp`` as Spark computes them: fdlibm's algorithms, in NumPy.

Spark's SQL functions call Java's ``StrictMath``, which is fdlibm (Sun's freely
distributable math library), bit for bit on every JVM. NumPy calls the C library, whose
results differ from fdlibm's in the last bit for a few inputs in a hundred (``log``) or in
a few thousand (``log1p``). These ports do fdlibm's operations in the same order on whole
arrays (every branch computed, the right one kept), so the driver's features and
probabilities are Spark's exactly. A test checks them against Spark on 300,000 inputs.
"""

from __future__ import annotations

import numpy as np

_LN2_HI = 6.93147180369123816490e-01  # 0x3fe62e42 fee00000
_LN2_LO = 1.90821492927058770002e-10  # 0x3dea39ef 35793c76
_TWO54 = 1.80143985094819840000e16  # 0x43500000 00000000
# log1p's and log's polynomial (fdlibm's Lp1..Lp7 and Lg1..Lg7 are the same numbers).
_L1 = 6.666666666666735130e-01
_L2 = 3.999999999940941908e-01
_L3 = 2.857142874366239149e-01
_L4 = 2.222219843214978396e-01
_L5 = 1.818357216161805012e-01
_L6 = 1.531383769920937332e-01
_L7 = 1.479819860511658591e-01
_INV_LN2 = 1.44269504088896338700e00
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08
_O_THRESHOLD = 7.09782712893383973096e02
_U_THRESHOLD = -7.45133219101941108420e02
_TWO_M1000 = 9.33263618503218878990e-302


def _high(x: np.ndarray) -> np.ndarray:
    """The high 32 bits of each double, as a signed int (fdlibm's ``__HI``)."""
    return (x.view(np.uint64) >> np.uint64(32)).astype(np.uint32).view(np.int32).astype(np.int64)


def _with_high(x: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``x`` with its high 32 bits replaced by ``high`` (fdlibm's ``__HI(x) = high``)."""
    low = x.view(np.uint64) & np.uint64(0xFFFFFFFF)
    bits = (high.astype(np.int64).astype(np.uint64) & np.uint64(0xFFFFFFFF)) << np.uint64(32)
    return (bits | low).view(np.float64)


def log1p(values: np.ndarray) -> np.ndarray:
    """fdlibm's ``log1p`` (s_log1p.c) of each value."""
    x = np.asarray(values, dtype=np.float64).copy()
    with np.errstate(all="ignore"):
        hx = _high(x)
        ax = hx & 0x7FFFFFFF
        small = hx < 0x3FDA827A  # x < 0.41422
        # -0.2929 < x < 0.41422: f = x, k = 0.
        direct = small & ((hx > 0) | (hx <= 0xBFD2BEC3 - 2**32))
        u_large = 1.0 + x
        huge = hx >= 0x43400000
        u = np.where(huge, x, u_large)
        hu = _high(u)
        k = (hu >> 20) - 1023
        c = np.where(k > 0, 1.0 - (u_large - x), x - (u_large - 1.0)) / u_large
        c = np.where(huge, 0.0, c)
        hu = hu & 0x000FFFFF
        low_half = hu < 0x6A09E
        u = np.where(low_half, _with_high(u, hu | 0x3FF00000), _with_high(u, hu | 0x3FE00000))
        k = np.where(low_half, k, k + 1)
        hu = np.where(low_half, hu, (0x00100000 - hu) >> 2)
        f = np.where(direct, x, u - 1.0)
        k = np.where(direct, 0, k)
        hu = np.where(direct, 1, hu)
        c = np.where(direct, 0.0, c)
        dk = k.astype(np.float64)

        hfsq = 0.5 * f * f
        r_tiny = hfsq * (1.0 - 0.66666666666666666 * f)
        tiny = np.where(
            f == 0.0,
            np.where(k == 0, 0.0, dk * _LN2_HI + (c + dk * _LN2_LO)),
            np.where(k == 0, f - r_tiny, dk * _LN2_HI - ((r_tiny - (dk * _LN2_LO + c)) - f)),
        )
        s = f / (2.0 + f)
        z = s * s
        r = z * (_L1 + z * (_L2 + z * (_L3 + z * (_L4 + z * (_L5 + z * (_L6 + z * _L7))))))
        general = np.where(
            k == 0,
            f - (hfsq - s * (hfsq + r)),
            dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + (dk * _LN2_LO + c))) - f),
        )
        result = np.where(hu == 0, tiny, general)
        # |x| < 2**-29: x, or x - x*x/2 above 2**-54.
        result = np.where(
            small & (ax < 0x3E200000), np.where(ax < 0x3C900000, x, x - x * x * 0.5), result
        )
        result = np.where(x == -1.0, -np.inf, np.where(x < -1.0, np.nan, result))
        return np.where(np.isfinite(x), result, x + x)


def log(values: np.ndarray) -> np.ndarray:
    """fdlibm's ``log`` (e_log.c) of each value."""
    x = np.asarray(values, dtype=np.float64).copy()
    with np.errstate(all="ignore"):
        subnormal = (x > 0) & (x < 2.2250738585072014e-308)
        x = np.where(subnormal, x * _TWO54, x)
        hx = _high(x)
        k = np.where(subnormal, -54, 0) + (hx >> 20) - 1023
        hx = hx & 0x000FFFFF
        i = (hx + 0x95F64) & 0x100000
        y = _with_high(x, hx | (i ^ 0x3FF00000))  # x or x/2, normalised
        k = k + (i >> 20)
        f = y - 1.0
        dk = k.astype(np.float64)

        r_tiny = f * f * (0.5 - 0.33333333333333333 * f)
        tiny = np.where(
            f == 0.0,
            np.where(k == 0, 0.0, dk * _LN2_HI + dk * _LN2_LO),
            np.where(k == 0, f - r_tiny, dk * _LN2_HI - ((r_tiny - dk * _LN2_LO) - f)),
        )
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        t1 = w * (_L2 + w * (_L4 + w * _L6))
        t2 = z * (_L1 + w * (_L3 + w * (_L5 + w * _L7)))
        r = t2 + t1
        hfsq = 0.5 * f * f
        wide = ((hx - 0x6147A) | (0x6B851 - hx)) > 0
        general = np.where(
            wide,
            np.where(
                k == 0,
                f - (hfsq - s * (hfsq + r)),
                dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f),
            ),
            np.where(k == 0, f - s * (f - r), dk * _LN2_HI - ((s * (f - r) - dk * _LN2_LO) - f)),
        )
        result = np.where((0x000FFFFF & (2 + hx)) < 3, tiny, general)
        original = np.asarray(values, dtype=np.float64)
        result = np.where(original == 0.0, -np.inf, np.where(original < 0, np.nan, result))
        return np.where(np.isfinite(original), result, original + original)


def exp(values: np.ndarray) -> np.ndarray:
    """fdlibm's ``exp`` (e_exp.c) of each value."""
    x = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):
        hx = _high(x)
        negative = hx < 0
        ax = hx & 0x7FFFFFFF
        sign = np.where(negative, -1.0, 1.0)
        # |x| in (0.5 ln2, 1.5 ln2): k = +-1; larger: k = round(x / ln2).
        near = ax < 0x3FF0A2B2
        k_far = (_INV_LN2 * x + np.where(negative, -0.5, 0.5)).astype(np.int64)
        k = np.where(near, np.where(negative, -1, 1), k_far)
        t = k_far.astype(np.float64)
        hi = np.where(near, x - sign * _LN2_HI, x - t * _LN2_HI)
        lo = np.where(near, sign * _LN2_LO, t * _LN2_LO)
        reduced = ax > 0x3FD62E42
        k = np.where(reduced, k, 0)
        xr = np.where(reduced, hi - lo, x)

        t = xr * xr
        c = xr - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
        unscaled = 1.0 - ((xr * c) / (c - 2.0) - xr)
        y = 1.0 - ((lo - (xr * c) / (2.0 - c)) - hi)
        normal = k >= -1021
        shift = np.where(normal, k, k + 1000) << 20
        scaled = _with_high(y, _high(y) + shift)
        scaled = np.where(normal, scaled, scaled * _TWO_M1000)
        result = np.where(k == 0, unscaled, scaled)
        result = np.where(ax < 0x3E300000, 1.0 + x, result)  # |x| < 2**-28
        result = np.where(x > _O_THRESHOLD, np.inf, np.where(x < _U_THRESHOLD, 0.0, result))
        return np.where(np.isnan(x), x + x, result)
