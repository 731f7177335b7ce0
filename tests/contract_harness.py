"""One lrjax schedule run over the whole step space of SEMANTICS.md against its torch twin.

``Contract(cfg, schedule, x64).run()`` evaluates ``schedule`` at steps 0, 1, the configuration's
period boundaries (+-1, +-0.5), steps up to 2**31 - 1, 2**32 - 1 and (under x64) 2**64 - 1,
negative steps, NaN and infinities: JAX arrays of every dtype the mode allows (bfloat16 too) under
``jax.jit`` (one compilation for all dtypes); ``jit(vmap)`` over the counter dtypes and
``jit(lax.map)`` over int32; eagerly, NumPy arrays of every integer and float dtype, NumPy scalars of the narrow,
unsigned and 64-bit dtypes, JAX arrays, Python ints and floats, and a 2-D array. Every
value must equal torch's (tests/torchtwin.py ``value``) within the precision contract; steps
beyond the domain must raise ValueError naming the step, bool / complex / str / None steps
TypeError. Where the reference is the exact value of a formula torch evaluates inexactly in
float64, a value equal to torch's own float64 value is accepted too; with x64 off, a traced user
function's value equal to the function evaluated in float32 (as SEMANTICS.md has lrjax call it) is
accepted too; both are counted in the summary. It returns the list of problems, one line each naming the leg
(mode and step type),
the dtype, the step, both values and the allowance.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import contract_stats
import jax
import jax.numpy as jnp
import numpy as np
import torchref
import torchtwin

NUMPY_DTYPES = [
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
]


def jax_dtypes(x64: bool) -> list:
    ints = [jnp.int8, jnp.int16, jnp.int32, jnp.uint8, jnp.uint16, jnp.uint32]
    floats = [jnp.float16, jnp.bfloat16, jnp.float32]
    if x64:
        ints += [jnp.int64, jnp.uint64]
        floats += [jnp.float64]
    return ints + floats


def domain_max(x64: bool) -> int:
    return 2**64 - 1 if x64 else 2**32 - 1


UNIVERSAL_INTS = [
    0,
    1,
    2,
    3,
    4,
    5,
    7,
    10,
    31,
    100,
    127,
    128,
    255,
    256,
    1000,
    32767,
    32768,
    65535,
    65536,
    1_000_001,
    17_020_683,
    100_000_007,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**40 + 3,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
]
NEGATIVE_INTS = [-1, -7, -128, -(2**31), -(2**63)]
UNIVERSAL_FLOATS = [
    0.5,
    1.5,
    2.25,
    7.75,
    99.5,
    1000.5,
    65536.25,
    123456.75,
    1e7 + 0.5,
    1e9 + 0.5,
    3e9,
    1e10,
    1e19,
    1e20,
    1e300,
    -0.5,
    -1e10,
    math.nan,
    math.inf,
    -math.inf,
]
PAD = 128
# Eager legs cost a compilation per primitive and dtype, so they are spread over the two modes: every NumPy
# dtype with x64 off (where 64-bit NumPy steps meet 32-bit JAX), the 64-bit and odd ones under x64.
EAGER_NUMPY_DTYPES = {False: NUMPY_DTYPES, True: [np.uint32, np.int64, np.uint64, np.float16, np.float64]}
EAGER_SCALAR_DTYPES = {False: ("int8", "uint32", "uint64", "float16"), True: ("uint64",)}
EAGER_JAX_DTYPES = {False: [jnp.bfloat16, jnp.int32], True: [jnp.bfloat16]}
QUICK_DTYPES = {
    False: [jnp.int32, jnp.uint32, jnp.float32],
    True: [jnp.int32, jnp.uint32, jnp.int64, jnp.float32, jnp.float64],
}


def effective(v, dmax: int):
    """The step a value stands for (SEMANTICS.md "Steps"): None for NaN; negative -> 0; beyond -> dmax."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return max(int(v), 0)
    f = float(v)
    if math.isnan(f):
        return None
    if f <= 0:
        return 0
    if math.isinf(f) or f > dmax:
        return dmax
    return int(f) if f.is_integer() else Fraction(f)


def _fmt_step(v) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return repr(float(v))


class Contract:
    """See the module docstring. ``limit``: check steps up to this one only (a table built with total_steps)."""

    def __init__(
        self,
        cfg: dict,
        schedule: Any,
        x64: bool,
        *,
        category: str,
        limit: int | None = None,
        label: str = "lrjax",
        legs: str = "all",
    ):
        self.cfg = cfg
        self.schedule = schedule
        self.x64 = x64
        self.bits = 64 if x64 else 32
        self.dmax = domain_max(x64)
        self.limit = limit
        self.category = category
        self.label = label
        self.legs = legs
        self.G = torchtwin.groups(cfg)
        self.problems: list[str] = []
        self.checked = 0
        self.worst = (0.0, "")
        self.bounds = [b for b in torchtwin.boundaries(cfg) if b <= 2**70][:60]
        self._refs: dict[Any, tuple | None] = {}
        self.scale = torchtwin.scale(cfg)
        self.float_dtype = np.float64 if x64 else np.float32
        # Second references a value may equal instead (see torchtwin.torch_float64 and _user_float32).
        self.alternatives = [("torch's own float64 arithmetic", lambda e: torchtwin.torch_float64(cfg, e))]
        if not x64 and _traced_lambda(cfg):
            self.alternatives.append(("the user function evaluated in float32", lambda e: _user_float32(cfg, e)))
        self.via_alternative = 0

    # -- steps and references ---------------------------------------------------------------

    def ref(self, eff):
        if eff is None:
            return ("nan",)
        if self.limit is not None and eff > self.limit:
            return None
        if eff not in self._refs:
            self._refs[eff] = torchtwin.value(self.cfg, eff)
        return self._refs[eff]

    def int_candidates(self) -> list[int]:
        return sorted(set(UNIVERSAL_INTS + NEGATIVE_INTS + self.bounds))

    def float_candidates(self) -> list[float]:
        extra = []
        for b in self.bounds:
            extra += [b - 0.5, b + 0.5, b + 0.25, float(b)]
        return UNIVERSAL_FLOATS + [float(k) for k in UNIVERSAL_INTS] + extra

    def steps_for(self, dtype) -> tuple[np.ndarray, list]:
        """(array of steps in ``dtype``, their effective steps), beyond-domain values left out."""
        dt = np.dtype(dtype)
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            ks = [
                k
                for k in self.int_candidates() + [int(info.min), int(info.max)]
                if info.min <= k <= min(int(info.max), self.dmax)
            ]
            ks = sorted(set(ks))
            arr = np.asarray(ks, dtype=dt)
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                arr = np.asarray(self.float_candidates(), dtype=np.float64).astype(dt)
            seen, keep = set(), []
            for i, v in enumerate(arr.astype(np.float64)):
                k = "nan" if math.isnan(v) else float(v)
                if k not in seen:
                    seen.add(k)
                    keep.append(i)
            arr = arr[keep]
        effs, keep = [], []
        for i, v in enumerate(arr):
            e = effective(v.item() if np.issubdtype(dt, np.integer) else float(v), self.dmax)
            r = self.ref(e)
            if r is not None:
                effs.append(e)
                keep.append(i)
        return arr[keep], effs

    def expected(self, effs: list) -> np.ndarray:
        G = self.G or 1
        rows = [[math.nan] * G if e is None else list(self.ref(e)) for e in effs]
        out = np.asarray(rows, dtype=np.float64)
        return out if self.G is not None else out[:, 0]

    # -- comparison --------------------------------------------------------------------------

    def problem(self, text: str) -> None:
        self.problems.append(f"[{self.label}, {'x64' if self.x64 else 'float32'}] {text}")

    def compare(self, leg: str, dtype_name: str, steps, effs: list, out, shape: tuple) -> np.ndarray | None:
        """Checks one leg's output; returns it as float64 (or None when its shape or dtype is wrong)."""
        out_arr = np.asarray(out)
        if out_arr.dtype != self.float_dtype:
            self.problem(f"{leg} {dtype_name}: output dtype {out_arr.dtype}, expected {np.dtype(self.float_dtype)}")
        expected_shape = shape + ((self.G,) if self.G is not None else ())
        if out_arr.shape != expected_shape:
            self.problem(f"{leg} {dtype_name}: output shape {out_arr.shape}, expected {expected_shape}")
            return None
        ours = out_arr.astype(np.float64).reshape(len(effs), -1)
        theirs = self.expected(effs).reshape(len(effs), -1)
        rtol, atol = torchref.tolerance(self.bits)
        tiny = float(np.finfo(self.float_dtype).tiny)
        scale = max(self.scale, float(np.nanmax(np.abs(theirs))) if np.any(np.isfinite(theirs)) else 0.0)
        allowed = rtol * np.abs(theirs) + max(atol * scale, tiny)
        flat_steps = list(np.asarray(steps).reshape(-1))
        self.checked += ours.size
        shown = 0
        with np.errstate(invalid="ignore"):
            err = np.abs(ours - theirs)
            ratio = np.where(np.isnan(theirs), 0.0, err / allowed)
        for i in range(len(effs)):
            for g in range(ours.shape[1]):
                o, r = ours[i, g], theirs[i, g]
                step = _fmt_step(flat_steps[i])
                via_alternative = False
                if math.isnan(r):
                    bad = not math.isnan(o)
                    what = "expected NaN (a NaN step)"
                elif not math.isfinite(o) or not ratio[i, g] <= 1.0:
                    via_alternative = self._alternative_holds(effs[i], g, o, rtol, atol, scale, tiny)
                    bad = not via_alternative
                    what = f"|diff| {abs(o - r):.3g}, allowance {allowed[i, g]:.3g} ({ratio[i, g]:.3g}x)"
                else:
                    bad = False
                if not math.isnan(r) and not via_alternative:
                    q = float(ratio[i, g]) if math.isfinite(o) else math.inf
                    if not q <= self.worst[0]:
                        self.worst = (q, f"{leg} {dtype_name} step={step}")
                if bad:
                    if shown < 3:
                        grp = f" group {g}" if self.G is not None else ""
                        self.problem(
                            f"{leg} {dtype_name} step={step} (as {effs[i]!s}){grp}: lrjax {o!r}, torch {r!r}; {what}"
                        )
                    shown += 1
        if shown > 3:
            self.problem(f"{leg} {dtype_name}: {shown - 3} more mismatching value(s)")
        return ours

    def _alternative_holds(self, eff, g, o, rtol, atol, scale, tiny) -> bool:
        if not math.isfinite(o):
            return False
        for _, alt in self.alternatives:
            v = alt(eff)
            if v is None:
                continue
            v = v[g] if len(v) > g else v[0]
            if abs(o - v) <= rtol * abs(v) + max(atol * scale, tiny):
                self.via_alternative += 1
                return True
        return False

    def call(self, leg: str, dtype_name: str, fn, *args):
        try:
            return jax.block_until_ready(fn(*args))
        except Exception as e:  # noqa: BLE001 - reported as a problem
            self.problem(f"{leg} {dtype_name}: raised {type(e).__name__}: {str(e)[:300]}")
            return None

    # -- the legs ----------------------------------------------------------------------------

    def run(self) -> list[str]:
        s = self.schedule
        wanted = QUICK_DTYPES[self.x64] if self.legs == "quick" else EAGER_NUMPY_DTYPES[self.x64] + jax_dtypes(self.x64)
        per_dtype = {}
        for d in wanted:
            name = np.dtype(d).name
            if name not in per_dtype:
                per_dtype[name] = self.steps_for(d)
        int_rows: dict[int, np.ndarray] = {}  # jit's value at each integer step, for _same_as_int
        if self.legs == "quick":  # one compilation: jit over the optimizer-counter dtypes and floats
            self._jit(per_dtype, int_rows, dtypes=QUICK_DTYPES[self.x64], mapped=False, leg="jit(vmap)")
            return self._finish()
        # Eager: NumPy arrays of every dtype, NumPy scalars of the dtypes where narrow or unsigned integers
        # and 64-bit values meet float32 (each eager dtype costs a compilation per primitive).
        for d in EAGER_NUMPY_DTYPES[self.x64]:
            name = np.dtype(d).name
            arr, effs = per_dtype[name]
            if not len(effs):
                continue
            padded, n = _pad(arr)
            out = self.call("eager numpy array", name, s, padded)
            if out is not None:
                self.compare("eager numpy array", name, arr, effs, np.asarray(out)[:n], (n,))
            if name not in EAGER_SCALAR_DTYPES[self.x64]:
                continue
            for i in _sample_indices(arr):
                x = arr[i]  # a NumPy scalar (np.uint32(0), ...)
                out = self.call("eager numpy scalar", name, s, x)
                if out is not None:
                    self.compare("eager numpy scalar", name, [x], [effs[i]], out, ())
        if self.legs == "all":
            self._eager_jax(per_dtype)
        self._jit(per_dtype, int_rows)
        if self.legs == "all":
            self._python_scalars()
            self._errors()
            if not self.x64:
                self._shapes(per_dtype)
        return self._finish()

    def _finish(self) -> list[str]:
        contract_stats.count(self.category, self.checked)
        if self.via_alternative:
            contract_stats.count(
                self.category + " (equal to torch's float64 / float32 user function, not the exact value)",
                self.via_alternative,
            )
        if self.problems:
            contract_stats.failed(self.category)
        contract_stats.worst(self.category, self.worst[0], f"{torchtwin.describe(self.cfg)}: {self.worst[1]}")
        return self.problems

    def _eager_jax(self, per_dtype):
        for d in EAGER_JAX_DTYPES[self.x64]:
            name = np.dtype(d).name
            arr, effs = per_dtype[name]
            if not len(effs):
                continue
            padded, n = _pad(arr)
            out = self.call("eager jax array", name, self.schedule, jnp.asarray(padded, dtype=d))
            if out is not None:
                self.compare("eager jax array", name, arr, effs, np.asarray(out)[:n], (n,))

    def _jit(self, per_dtype, int_rows, dtypes=None, mapped=True, leg="jit"):
        s = jax.vmap(self.schedule) if leg == "jit(vmap)" else self.schedule
        dts = [d for d in (dtypes or jax_dtypes(self.x64)) if len(per_dtype[np.dtype(d).name][1])]
        arrays = [jnp.asarray(_pad(per_dtype[np.dtype(d).name][0])[0], dtype=d) for d in dts]
        outs = None
        try:
            outs = jax.block_until_ready(jax.jit(lambda *xs: tuple(s(x) for x in xs))(*arrays))
        except Exception:  # noqa: BLE001 - redo one dtype at a time to say which fails
            outs = [self.call(leg, np.dtype(d).name, jax.jit(s), a) for d, a in zip(dts, arrays)]
        for d, out in zip(dts, outs):
            name = np.dtype(d).name
            arr, effs = per_dtype[name]
            if out is None:
                continue
            ours = self.compare(leg, name, arr, effs, np.asarray(out)[: len(effs)], (len(effs),))
            if ours is None:
                continue
            if np.issubdtype(np.dtype(d), np.integer):
                for row, e in zip(ours, effs):
                    int_rows.setdefault(e, row)
            else:
                self._same_as_int(name, arr, effs, ours, int_rows)
        if not mapped:
            return
        # vmap and lax.map (a scan) over a few dtypes, in one compilation.
        vd = [
            d
            for d in ([jnp.int32, jnp.uint32, jnp.float32] + ([jnp.int64, jnp.float64] if self.x64 else []))
            if len(per_dtype[np.dtype(d).name][1])
        ]
        arrays = [jnp.asarray(_pad(per_dtype[np.dtype(d).name][0])[0], dtype=d) for d in vd]

        scanned = [i for i, d in enumerate(vd) if np.dtype(d).name == "int32"]  # lax.map (a scan) on optax's counter

        def mapped_fns(*xs):
            return tuple(jax.vmap(s)(x) for x in xs) + tuple(jax.lax.map(s, xs[i]) for i in scanned)

        try:
            outs = jax.block_until_ready(jax.jit(mapped_fns)(*arrays))
        except Exception as e:  # noqa: BLE001
            self.problem(
                f"jit(vmap) / jit(lax.map) over {[np.dtype(d).name for d in vd]}: raised "
                f"{type(e).__name__}: {str(e)[:300]}"
            )
            return
        for j, (mapped_leg, d) in enumerate(
            [("jit(vmap)", d) for d in vd] + [("jit(lax.map)", vd[i]) for i in scanned]
        ):
            arr, effs = per_dtype[np.dtype(d).name]
            self.compare(mapped_leg, np.dtype(d).name, arr, effs, np.asarray(outs[j])[: len(effs)], (len(effs),))

    def _same_as_int(self, name, arr, effs, ours, int_rows):
        """Integer-valued float steps give the integer step's value, to a few ulps (SEMANTICS.md: the
        float path adds a zero fraction, and XLA may fuse the two programs differently)."""
        for row, e, v in zip(ours, effs, arr):
            row = np.asarray(row)
            eps = np.finfo(np.float64 if self.x64 else np.float32).eps
            if (
                isinstance(e, int)
                and e in int_rows
                and 0 <= float(v) <= self.dmax
                and not np.allclose(row, int_rows[e], rtol=8 * eps, atol=0.0, equal_nan=True)
            ):
                self.problem(
                    f"jit {name} step={_fmt_step(v)}: {row.tolist()} differs from the integer step "
                    f"{e}'s value {int_rows[e].tolist()} by more than 8 ulps (integer-valued float steps "
                    "give the integer step's value)"
                )
                return

    def _python_scalars(self):
        s = self.schedule
        b = [x for x in self.bounds if x > 1][:2]
        ints = [0, 1, 7, *b, 2**31 - 1, 2**32 - 1, self.dmax, -1, -(2**70)]
        floats = [0.5, *[x + 0.5 for x in b], math.nan, math.inf, -math.inf, 1e30, 3.0]
        for k in ints + floats:
            eff = effective(k, self.dmax)
            r = self.ref(eff)
            if r is None:
                continue
            leg = "eager python " + type(k).__name__
            out = self.call(leg, "", s, k)
            if out is not None:
                self.compare(leg, "", [k], [eff], out, ())

    def _errors(self):
        s = self.schedule
        beyond: list[tuple[str, Any]] = [("python int", self.dmax + 1), ("python int", 2**70)]
        if not self.x64:
            beyond += [
                ("numpy uint64 scalar", np.uint64(2**32)),
                ("numpy int64 scalar", np.int64(2**40)),
                ("numpy uint64 array", np.asarray([0, 2**33], np.uint64)),
            ]
        for what, x in beyond:
            try:
                jax.block_until_ready(s(x))
            except ValueError as e:
                if "step" not in str(e):
                    self.problem(f"beyond-domain step {what} {x!r}: ValueError does not name the step: {e}")
            except Exception as e:  # noqa: BLE001
                self.problem(
                    f"beyond-domain step {what} {x!r}: raised {type(e).__name__} (expected ValueError): {str(e)[:200]}"
                )
            else:
                self.problem(
                    f"beyond-domain step {what} {x!r}: accepted (expected ValueError naming the step; the "
                    f"domain is 0..{self.dmax})"
                )
        bad = [
            True,
            np.bool_(False),
            np.asarray([True, False]),
            jnp.asarray(True),
            1j,
            np.complex64(1.0),
            "3",
            None,
            object(),
        ]
        for x in bad:
            try:
                jax.block_until_ready(s(x))
            except TypeError:
                pass
            except Exception as e:  # noqa: BLE001
                self.problem(f"step {x!r} ({type(x).__name__}): raised {type(e).__name__} (expected TypeError)")
            else:
                self.problem(f"step {x!r} ({type(x).__name__}): accepted (expected TypeError)")

    def _shapes(self, per_dtype):
        arr, effs = per_dtype["int32"]
        n = (len(effs) // 2) * 2
        if n < 2:
            return
        two_d = arr[:n].reshape(2, n // 2)
        out = self.call("eager 2-D array", "int32", self.schedule, two_d)
        if out is not None:
            self.compare(
                "eager 2-D array", "int32", arr[:n], effs[:n], np.asarray(out).reshape((n,) + np.shape(out)[2:]), (n,)
            )
            if np.shape(out)[:2] != (2, n // 2):
                self.problem(f"eager 2-D array int32: output shape {np.shape(out)} does not start with {(2, n // 2)}")


def _traced_lambda(cfg: dict) -> bool:
    return cfg["name"] == "lambda_lr" and cfg.get("total_steps") is None


def _user_float32(cfg: dict, eff):
    """``base_lr * lr_lambda(t)`` with the function evaluated in float32, as SEMANTICS.md has lrjax call it
    with x64 off: a function ill-conditioned in float32 (``0.99999 ** e``) cannot be closer to torch."""
    if eff is None:
        return None
    fns = cfg["lr_lambda"] if isinstance(cfg["lr_lambda"], list) else [cfg["lr_lambda"]]
    G = torchtwin.groups(cfg) or 1
    base = cfg["base_lr"] if isinstance(cfg["base_lr"], (list, tuple)) else [cfg["base_lr"]] * G
    fns = fns if len(fns) == G else fns * G
    t = jnp.asarray(float(eff), jnp.float32)
    try:
        return tuple(float(np.float32(b) * np.float32(np.asarray(f.raw(t), np.float32))) for b, f in zip(base, fns))
    except Exception:  # noqa: BLE001 - no float32 form to compare with
        return None


def _pad(arr: np.ndarray) -> tuple[np.ndarray, int]:
    """Steps padded (with their last value) to a multiple of PAD, so eager runs reuse compiled primitives."""
    n = len(arr)
    size = max(PAD, -(-n // PAD) * PAD)
    return np.concatenate([arr, np.repeat(arr[-1:], size - n)]), n


def _sample_indices(arr: np.ndarray) -> list[int]:
    """Where to try 0-d scalars: step 0, a small positive step and the largest."""
    vals = arr.astype(np.float64)
    out = set()
    zero = np.flatnonzero(vals == 0)
    if zero.size:
        out.add(int(zero[0]))
    pos = np.flatnonzero((vals > 0) & (vals < 1000) & np.isfinite(vals))
    if pos.size:
        out.add(int(pos[len(pos) // 2]))
    fin = np.flatnonzero(np.isfinite(vals))
    if fin.size:
        out.add(int(fin[np.argmax(vals[fin])]))
    return sorted(out)
