"""The CuPy backend: generated kernels equal the torch backend.

On a CUDA machine with CuPy the real kernels run. Everywhere, the same generated loop
body is compiled as C with the system compiler and run on the CPU against the torch
backend, spikes and states compared bit for bit.
"""

import ctypes
import math
import shutil
import subprocess

import pytest
import torch
from spikingjelly.activation_based import functional

from sparse_convert.neurons import AECNode, CSQCFSNode, SNMNode, STBIFNode, set_backend
from sparse_convert.neurons.aec import INITS, AECActivation
from sparse_convert.neurons.cupy_backend import (
    KernelSpec,
    c_source,
    cuda_source,
    cupy_available,
    kernel_arguments,
)


def make_nodes(shape, generator):
    """One node of each kind for inputs of one sample's ``shape`` (channel dim first)."""
    channels = shape[0]
    aec = AECActivation(INITS["cifar10"], 4)
    return {
        "csqcfs": CSQCFSNode(torch.randn(channels, generator=generator)),
        "snm": SNMNode(torch.rand(shape, generator=generator) * (torch.rand(shape, generator=generator) > 0.1)),
        "aec": AECNode(aec.code.as_dict(), window=4, depth=2),
        "stbif": STBIFNode(0.37, -8, 7),
    }


def node_input(name, steps, batch, shape, generator, dtype):
    x = torch.randn(steps, batch, *shape, generator=generator)
    if name == "aec":
        x = x.abs() * 0.4
    return x.to(dtype)


def torch_backend(node, x_seq):
    functional.reset_net(node)
    with torch.no_grad():
        out = node(x_seq)
    states = [s for s in node._memories.values()]
    functional.reset_net(node)
    return out, states


# -- CPU: the generated C ------------------------------------------------------------

def _compiler():
    return shutil.which("cc") or shutil.which("gcc")


@pytest.fixture(scope="module")
def c_kernels(tmp_path_factory):
    """Compile each node's kernel body as C (float32, and float16 where the compiler has _Float16)."""
    if _compiler() is None:
        pytest.skip("no C compiler to check the generated kernels on the CPU")
    folder = tmp_path_factory.mktemp("kernels")
    libs = {}
    for dtype in (torch.float32, torch.float16):
        for name, node in make_nodes((3, 2, 2), torch.Generator().manual_seed(0)).items():
            src = folder / f"{name}_{dtype}.c"
            src.write_text(c_source(node.kernel_spec(), dtype))
            lib = folder / f"{name}_{dtype}.so"
            done = subprocess.run([_compiler(), "-O2", "-shared", "-fPIC", "-std=c11", str(src), "-o", str(lib), "-lm"],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                if dtype == torch.float16:
                    continue  # no _Float16 in this compiler
                raise AssertionError(done.stderr)
            libs[name, dtype] = ctypes.CDLL(str(lib))
    return libs


def run_c(lib, spec: KernelSpec, x_seq, call):
    out, states, args = kernel_arguments(spec, x_seq, call)
    c_args = [ctypes.c_int(a[1]) if isinstance(a, tuple) and a[0] == "int" else
              ctypes.c_longlong(a[1]) if isinstance(a, tuple) else ctypes.c_void_p(a.data_ptr()) for a in args]
    getattr(lib, f"sc_{spec.name}_c")(*c_args)
    return out, states


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("name", ["csqcfs", "snm", "aec", "stbif"])
@pytest.mark.parametrize("shape", [(3, 2, 2), (3,)], ids=["conv", "linear"])
def test_generated_c_equals_the_torch_backend(c_kernels, name, dtype, shape):
    if (name, dtype) not in c_kernels:
        pytest.skip("this C compiler has no _Float16")
    g = torch.Generator().manual_seed(7)
    node = make_nodes(shape, g)[name].to(dtype)
    x_seq = node_input(name, 20, 4, shape, g, dtype)
    expected_out, expected_states = torch_backend(node, x_seq)
    states = node.materialize_states((x_seq,), tuple(node._memories.values()), "m")
    out, new = run_c(c_kernels[name, dtype], node.kernel_spec(), x_seq, node.kernel_call(x_seq, states))
    assert out.dtype == dtype
    assert torch.equal(out, expected_out)
    got_states = node.kernel_states(new, states, x_seq)
    for got, want in zip(got_states, expected_states):
        if isinstance(want, torch.Tensor):
            assert torch.equal(got.to(want.dtype), want)
        else:
            assert got == want
    assert (expected_out != 0).any()


def test_chunked_c_kernel_calls_carry_the_state(c_kernels):
    g = torch.Generator().manual_seed(3)
    node = make_nodes((3,), g)["aec"]
    x_seq = node_input("aec", 12, 5, (3,), g, torch.float32)
    expected, _ = torch_backend(node, x_seq)
    states = node.materialize_states((x_seq,), tuple(node._memories.values()), "m")
    outs = []
    for chunk in x_seq.split(5):
        out, new = run_c(c_kernels["aec", torch.float32], node.kernel_spec(), chunk, node.kernel_call(chunk, states))
        states = node.kernel_states(new, states, chunk)
        outs.append(out)
    assert torch.equal(torch.cat(outs), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
def test_generated_aec_c_sends_both_spikes_in_one_step_and_the_forced_last_one_like_torch(c_kernels, dtype):
    """Values that put both spikes in one step, one after the other, the compensating one at the window's last
    step (forced when the residual is below its threshold), and silence: C and torch agree on every case."""
    if ("aec", dtype) not in c_kernels:
        pytest.skip("this C compiler has no _Float16")
    init = INITS["cifar10"]
    node = AECNode(AECActivation(init, 4).code.as_dict(), window=4, depth=1).to(dtype)
    thr1 = [init.theta * math.exp(init.t_d - init.k * t) for t in range(4)]
    thr2 = [init.theta2 * math.exp(init.t_d2 - init.k2 * t) for t in range(4)]
    values = torch.tensor([1.3, 0.5, 1.0, 0.19, thr1[3] * 1.001, 0.01, -0.4, 5.0], dtype=dtype)
    x_seq = torch.zeros(10, 1, values.numel(), dtype=dtype)
    x_seq[3, 0] = values  # delivered at the last step of the decoding window
    reported = []
    handle = node.register_double_spike_hook(lambda out, doubles: reported.append(doubles))
    expected, expected_states = torch_backend(node, x_seq)
    handle.remove()
    states = node.materialize_states((x_seq,), tuple(node._memories.values()), "m")
    out, new = run_c(c_kernels["aec", dtype], node.kernel_spec(), x_seq, node.kernel_call(x_seq, states))
    assert torch.equal(out, expected)
    assert torch.equal(AECNode.kernel_doubles(new, x_seq), reported[0])  # the kernel's double-spike report
    assert reported[0].sum().item() == 4  # 1.3 and 5.0 at step 0, 0.5 at step 1, the forced 1.001·thr1(3) at 3
    for got, want in zip(node.kernel_states(new, states, x_seq), expected_states):
        assert torch.equal(got, want) if isinstance(want, torch.Tensor) else got == want
    window = out[4:8, 0].double()
    tol = dict(rtol=2e-3 if dtype == torch.float16 else 1e-6, atol=0)
    torch.testing.assert_close(window[0, 0], torch.tensor(thr1[0] + thr2[0], dtype=torch.float64), **tol)  # both at 0
    torch.testing.assert_close(window[1, 1], torch.tensor(thr1[1] + thr2[1], dtype=torch.float64), **tol)  # both at 1
    assert window[0, 2] != 0 and window[1, 2] != 0  # primary at 0, compensating at 1
    torch.testing.assert_close(window[3, 4], torch.tensor(thr1[3] + thr2[3], dtype=torch.float64), **tol)  # forced
    assert (window[:, 5:7] == 0).all() and (out[:4] == 0).all() and (out[8:] == 0).all()
    assert ((out != 0).sum(0) <= 2).all()


# -- generation and dispatch ----------------------------------------------------------

def test_kernel_source_names_states_params_and_dtype():
    spec = make_nodes((3,), torch.Generator().manual_seed(0))["snm"].kernel_spec()
    src32, src16 = cuda_source(spec, torch.float32), cuda_source(spec, torch.float16)
    assert 'extern "C" __global__ void sc_snm_float(' in src32 and "cuda_fp16.h" not in src32
    assert "sc_snm_half(const __half*" in src16 and "#include <cuda_fp16.h>" in src16
    assert "state_count[i] = count;" in src32 and "param_theta[j]" in src32
    with pytest.raises(ValueError, match="supports"):
        cuda_source(spec, torch.float64)


def test_kernel_spec_refuses_bad_layouts_and_name_clashes():
    with pytest.raises(ValueError, match="layout 'row'"):
        KernelSpec("k", ("v",), (("theta", "row"),), "o = v;")
    with pytest.raises(ValueError, match="reuses a name"):
        KernelSpec("k", ("v",), (("v", "scalar"),), "o = v;")


def test_cupy_backend_refuses_cpu_tensors_and_falls_back_for_gradients(monkeypatch):
    node = CSQCFSNode(torch.zeros(3))
    node._backend = "cupy"  # as if set on a CUDA machine
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        node(torch.zeros(2, 1, 3))
    functional.reset_net(node)
    calls = []
    monkeypatch.setattr(CSQCFSNode, "torch_multi_step", lambda self, i, s: calls.append(1) or ((i[0],), s))
    x = torch.zeros(2, 1, 3, requires_grad=True)
    node.cupy_multi_step((x,), (torch.zeros(1, 3),))
    assert calls == [1]


@pytest.mark.skipif(cupy_available(), reason="CuPy and CUDA are present")
def test_asking_for_cupy_without_it_says_what_to_install():
    node = SNMNode(torch.ones(3))
    with pytest.raises(RuntimeError, match="cupy"):
        node.backend = "cupy"
    with pytest.raises(RuntimeError, match="cupy"):
        set_backend(torch.nn.Sequential(node), "cupy")


# -- CUDA: the real kernels -----------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("name", ["csqcfs", "snm", "aec", "stbif"])
@pytest.mark.parametrize("shape", [(8, 5, 5), (16,)], ids=["conv", "linear"])
def test_cupy_kernels_equal_the_torch_backend(name, dtype, shape):
    g = torch.Generator().manual_seed(11)
    node = make_nodes(shape, g)[name].to(device="cuda", dtype=dtype)
    x_seq = node_input(name, 24, 6, shape, g, dtype).cuda()
    expected_out, expected_states = torch_backend(node, x_seq)
    node.backend = "cupy"
    out, states = torch_backend(node, x_seq)
    assert torch.equal(out, expected_out)
    for got, want in zip(states, expected_states):
        assert torch.equal(got, want) if isinstance(want, torch.Tensor) else got == want


@pytest.mark.cuda
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_aec_kernel_reports_the_same_double_spikes_as_torch():
    g = torch.Generator().manual_seed(5)
    node = make_nodes((16,), g)["aec"].cuda()
    x_seq = node_input("aec", 24, 6, (16,), g, torch.float32).cuda()
    masks = {}
    for backend in ("torch", "cupy"):
        node.backend = backend
        handle = node.register_double_spike_hook(lambda out, doubles, b=backend: masks.__setitem__(b, doubles))
        torch_backend(node, x_seq)
        handle.remove()
    assert torch.equal(masks["cupy"], masks["torch"]) and masks["torch"].any()


def test_generated_c_fires_at_exact_threshold_ties_like_torch(c_kernels):
    """v = θ/2 + θ/2 reaches θ exactly: both backends must fire (v >= θ)."""
    node = CSQCFSNode(torch.log(torch.expm1(torch.tensor([1.0, 2.0, 0.5]))))  # θ = 1, 2, 0.5 exactly
    theta = node.threshold.detach()
    x_seq = (theta / 2).expand(6, 2, 3).contiguous()
    expected, _ = torch_backend(node, x_seq)
    assert (expected[0] == theta).all()
    states = node.materialize_states((x_seq,), tuple(node._memories.values()), "m")
    out, _ = run_c(c_kernels["csqcfs", torch.float32], node.kernel_spec(), x_seq, node.kernel_call(x_seq, states))
    assert torch.equal(out, expected)
