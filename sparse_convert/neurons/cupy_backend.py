"""The optional CuPy backend: one fused CUDA kernel runs a node over all T steps.

Each node describes its dynamics once, as a ``KernelSpec``: its state registers, its
parameters (one per channel, per neuron, per local time step, or a scalar) and the C
code of one time step. From that spec we generate

* a CUDA kernel (CuPy ``RawKernel``) where one thread carries one neuron through all T
  steps, its state in registers, for float32 and float16 inputs; and
* the same loop body as a plain C function over all neurons, which the tests compile
  with the system C compiler and compare with the torch backend on the CPU, so the
  kernels' logic is checked even where no GPU is.

Arithmetic on a state register is rounded to the input dtype after every operation
(``ROUND``), as the torch backend, whose states have the input's dtype, does; spikes
and states of both backends are then equal bit for bit.

The kernels are forward-only: a node whose computation needs gradients runs its torch
backend instead.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

INSTALL_HINT = ("pip install 'sparse-convert[cupy]' (cupy-cuda13x, for torch's CUDA 13 build; "
                "install cupy-cuda12x instead with a CUDA 12 torch)")
LAYOUTS = ("channel", "neuron", "time", "scalar")
THREADS = 256


def cupy_available() -> bool:
    """True when CuPy is importable and a CUDA device is present."""
    return importlib.util.find_spec("cupy") is not None and torch.cuda.is_available()


def require_cupy(who: str = "the cupy backend") -> None:
    """Raise ``RuntimeError`` saying what to install when CuPy or CUDA is missing."""
    if importlib.util.find_spec("cupy") is None:
        raise RuntimeError(f"{who}: backend 'cupy' needs CuPy, which is not installed: {INSTALL_HINT}")
    if not torch.cuda.is_available():
        raise RuntimeError(f"{who}: backend 'cupy' needs a CUDA GPU, and torch sees none; use backend='torch'")


@dataclass(frozen=True)
class KernelSpec:
    """A node's per-step dynamics for code generation.

    ``step`` is C code run at every step with, in scope: ``x`` (the input, float), every
    state register by name (float, read-write), every parameter by name (float; a
    ``time`` parameter as a pointer indexed by the local time), the int arguments, ``t``
    (the step within this call) and ``ROUND(expr)``; it must assign the output to ``o``.
    """

    name: str
    states: tuple[str, ...]
    params: tuple[tuple[str, str], ...]
    step: str
    int_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for pname, layout in self.params:
            if layout not in LAYOUTS:
                raise ValueError(f"parameter {pname!r} has layout {layout!r}; layouts are {LAYOUTS}")
        names = [*self.states, *(p for p, _ in self.params), *self.int_args]
        if len(set(names)) != len(names):
            raise ValueError(f"kernel {self.name!r} reuses a name among {names}")


_DTYPES = {torch.float32: "float", torch.float16: "half"}


def _body(spec: KernelSpec) -> str:
    """The per-neuron loop, shared by the CUDA and the C version (``i`` is the neuron index)."""
    lines = ["const long long c = (i / inner) % channels;", "const long long j = i % sample;"]
    lines += [f"float {s} = state_{s}[i];" for s in spec.states]
    for pname, layout in spec.params:
        if layout == "time":
            lines.append(f"const float* {pname} = param_{pname};")
        else:
            index = {"channel": "c", "neuron": "j", "scalar": "0"}[layout]
            lines.append(f"const float {pname} = param_{pname}[{index}];")
    lines += [
        "for (int t = 0; t < steps; ++t) {",
        "    const float x = LOAD(in[(long long) t * n + i]);",
        "    float o = 0.0f;",
        *("    " + line for line in spec.step.strip().splitlines()),
        "    out[(long long) t * n + i] = STORE(o);",
        "}",
    ]
    lines += [f"state_{s}[i] = {s};" for s in spec.states]
    return "\n".join("    " + line for line in lines)


def _signature(spec: KernelSpec, scalar: str) -> str:
    args = [f"const {scalar}* __restrict__ in", f"{scalar}* __restrict__ out"]
    args += [f"float* __restrict__ state_{s}" for s in spec.states]
    args += [f"const float* __restrict__ param_{p}" for p, _ in spec.params]
    args += ["const int steps", "const long long n", "const long long channels", "const long long inner",
             "const long long sample"]
    args += [f"const int {a}" for a in spec.int_args]
    return ", ".join(args)


def kernel_name(spec: KernelSpec, dtype: torch.dtype) -> str:
    return f"sc_{spec.name}_{_DTYPES[dtype]}"


def cuda_source(spec: KernelSpec, dtype: torch.dtype) -> str:
    """CUDA C source of ``spec``'s fused kernel for inputs of ``dtype`` (float32 or float16)."""
    if dtype not in _DTYPES:
        raise ValueError(f"the cupy backend supports {list(_DTYPES)}, got {dtype}")
    half = dtype == torch.float16
    scalar = "__half" if half else "float"
    macros = (["#include <cuda_fp16.h>", "#define LOAD(v) __half2float(v)", "#define STORE(v) __float2half(v)",
               "#define ROUND(v) __half2float(__float2half(v))"] if half else
              ["#define LOAD(v) (v)", "#define STORE(v) (v)", "#define ROUND(v) (v)"])
    return "\n".join([
        *macros,
        f'extern "C" __global__ void {kernel_name(spec, dtype)}({_signature(spec, scalar)}) {{',
        "    const long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;",
        "    if (i >= n) return;",
        _body(spec),
        "}",
    ]) + "\n"


def c_source(spec: KernelSpec, dtype: torch.dtype = torch.float32) -> str:
    """The same loop as a C function ``sc_<name>_c`` over all neurons, for checking kernels on a CPU.

    float16 uses the C compiler's ``_Float16`` with the CUDA version's rounding points.
    """
    half = dtype == torch.float16
    scalar = "_Float16" if half else "float"
    macros = (["#define LOAD(v) ((float) (v))", "#define STORE(v) ((_Float16) (v))",
               "#define ROUND(v) ((float) (_Float16) (v))"] if half else
              ["#define LOAD(v) (v)", "#define STORE(v) (v)", "#define ROUND(v) (v)"])
    return "\n".join([
        "#include <math.h>",
        *macros,
        "#define __restrict__ restrict",
        f"void sc_{spec.name}_c({_signature(spec, scalar)}) {{",
        "    for (long long i = 0; i < n; ++i) {",
        _body(spec),
        "    }",
        "}",
    ]) + "\n"


@dataclass
class KernelCall:
    """Concrete arguments of one launch: states and parameters as tensors, int arguments."""

    states: dict[str, Tensor]
    params: dict[str, Tensor]
    channels: int = 1
    inner: int = 1
    ints: dict[str, int] | None = None


def kernel_arguments(spec: KernelSpec, x_seq: Tensor, call: KernelCall) -> tuple[Tensor, dict[str, Tensor], list]:
    """(output, float32 states, the kernel's arguments in order): tensors, and ints as ("int"|"long", value).

    Shared by the CUDA launch and the CPU check of the generated C, so both see the same call.
    """
    if x_seq.dtype not in _DTYPES:
        raise ValueError(f"the cupy backend supports {list(_DTYPES)}, got {x_seq.dtype}")
    if x_seq.dim() < 2:
        raise ValueError(f"expected a [T, B, ...] input, got shape {tuple(x_seq.shape)}")
    x_seq = x_seq.contiguous()
    n = x_seq[0].numel()
    out = torch.empty_like(x_seq)
    states = {k: call.states[k].to(torch.float32).contiguous().clone() for k in spec.states}
    params = {k: call.params[k].to(device=x_seq.device, dtype=torch.float32).contiguous() for k, _ in spec.params}
    ints = call.ints or {}
    args = [x_seq, out, *(states[k] for k in spec.states), *(params[k] for k, _ in spec.params),
            ("int", x_seq.shape[0]), ("long", n), ("long", call.channels), ("long", call.inner),
            ("long", x_seq[0, 0].numel()), *(("int", ints[a]) for a in spec.int_args)]
    return out, states, args


@cache
def _compiled(spec: KernelSpec, dtype: torch.dtype):
    import cupy

    return cupy.RawKernel(cuda_source(spec, dtype), kernel_name(spec, dtype))


def launch(spec: KernelSpec, x_seq: Tensor, call: KernelCall) -> tuple[Tensor, dict[str, Tensor]]:
    """Run ``spec`` over ``x_seq`` ``[T, B, ...]`` on its CUDA device; returns (output, new float32 states)."""
    import cupy

    out, states, args = kernel_arguments(spec, x_seq, call)
    as_cupy = {"int": cupy.int32, "long": cupy.int64}
    cupy_args = tuple(as_cupy[a[0]](a[1]) if isinstance(a, tuple) else cupy.asarray(a) for a in args)
    n = x_seq[0].numel()
    with cupy.cuda.ExternalStream(torch.cuda.current_stream(x_seq.device).cuda_stream):
        _compiled(spec, x_seq.dtype)(((n + THREADS - 1) // THREADS,), (THREADS,), cupy_args)
    return out, states
