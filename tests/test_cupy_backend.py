"""The CuPy backend: generated kernels equal the torch backend, and fast paths never outlive their equations.

On a CUDA machine with CuPy the real kernels run. Everywhere, the same generated loop
body is compiled as C with the system compiler and run on the CPU against the torch
backend, spikes and states compared bit for bit. The nodes checked are every
``ConversionNode`` subclass the package defines, found by importing all its modules, so a
new node is covered (or this file fails, asking for an example input) the day it is added.
"""

import ctypes
import importlib
import math
import pkgutil
import shutil
import subprocess

import pytest
import torch
from spikingjelly.activation_based import functional

import sparse_convert
from sparse_convert.neurons import AECNode, ConversionNode, CSQCFSNode, SNMNode, STBIFNode, set_backend
from sparse_convert.neurons.aec import INITS, AECActivation
from sparse_convert.neurons.cupy_backend import (
    KernelSpec,
    c_source,
    cuda_source,
    cupy_available,
    kernel_arguments,
)


def package_nodes() -> list[type[ConversionNode]]:
    """Every ``ConversionNode`` subclass defined in ``sparse_convert`` (all its modules imported first)."""
    for module in pkgutil.walk_packages(sparse_convert.__path__, "sparse_convert."):
        importlib.import_module(module.name)
    found, todo = set(), [ConversionNode]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("sparse_convert."):
                found.add(sub)
    return sorted(found, key=lambda c: c.__name__)


def _aec(shape, generator):
    return AECNode(AECActivation(INITS["cifar10"], 4).code.as_dict(), window=4, depth=2)


#: One node of each kind for inputs of one sample's ``shape`` (channel dim first), and how to draw its input
#: (from a standard normal draw): every node of the package must be here.
EXAMPLES = {
    CSQCFSNode: (lambda shape, g: CSQCFSNode(torch.randn(shape[0], generator=g)), lambda x: x),
    SNMNode: (lambda shape, g: SNMNode(torch.rand(shape, generator=g) * (torch.rand(shape, generator=g) > 0.1)),
              lambda x: x),
    AECNode: (_aec, lambda x: x.abs() * 0.4),
    STBIFNode: (lambda shape, g: STBIFNode(0.37, -8, 7), lambda x: x),
}
NODES = package_nodes()
NAMES = {cls: cls.__name__ for cls in NODES}


def make_node(cls, shape, generator):
    if cls not in EXAMPLES:
        pytest.fail(f"{cls.__module__}.{cls.__name__} is a ConversionNode without an example in EXAMPLES of "
                    f"{__name__}: add one, so its torch loop and its kernel are checked")
    return EXAMPLES[cls][0](shape, generator)


def node_input(cls, steps, batch, shape, generator, dtype):
    x = torch.randn(steps, batch, *shape, generator=generator)
    return EXAMPLES[cls][1](x).to(dtype)


def torch_backend(node, x_seq):
    functional.reset_net(node)
    with torch.no_grad():
        out = node(x_seq)
    states = [s for s in node._memories.values()]
    functional.reset_net(node)
    return out, states


def transition_by_hand(node, x_seq):
    """The node's own ``transition`` looped over time here, outside every loop the package has."""
    functional.reset_net(node)
    state = node.materialize_states((x_seq,), tuple(node._memories.values()), "m")
    outs = []
    with torch.no_grad():
        for x in x_seq:
            out, state = node.transition(x, state)
            outs.append(out)
    functional.reset_net(node)
    return torch.stack(outs), list(state)


def assert_same_states(got, want):
    for g, w in zip(got, want, strict=True):
        if isinstance(w, torch.Tensor):
            assert g.dtype == w.dtype and torch.equal(g, w)
        else:
            assert g == w


def test_the_package_nodes_are_found_and_all_have_examples():
    assert {CSQCFSNode, SNMNode, AECNode, STBIFNode} <= set(NODES)
    assert set(NODES) == set(EXAMPLES), "every ConversionNode of the package needs an entry in EXAMPLES"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("cls", NODES, ids=NAMES.get)
@pytest.mark.parametrize("shape", [(3, 2, 2), (3,)], ids=["conv", "linear"])
def test_the_torch_backend_computes_the_node_transition(cls, dtype, shape):
    """The fast in-place loop (or the generic one) equals the transition looped by hand, bit for bit."""
    g = torch.Generator().manual_seed(5)
    node = make_node(cls, shape, g).to(dtype)
    x_seq = node_input(cls, 20, 4, shape, g, dtype)
    out, states = torch_backend(node, x_seq)
    expected, expected_states = transition_by_hand(node, x_seq)
    assert torch.equal(out, expected) and (out != 0).any()
    assert_same_states(states, expected_states)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("cls", NODES, ids=NAMES.get)
def test_single_step_mode_equals_multi_step_mode(cls, dtype):
    """A node stepped one call per time step (SpikingJelly's ``step_mode='s'``) gives the multi-step outputs."""
    g = torch.Generator().manual_seed(9)
    node = make_node(cls, (3,), g).to(dtype)
    x_seq = node_input(cls, 12, 4, (3,), g, dtype)
    expected, _ = torch_backend(node, x_seq)
    node.step_mode = "s"
    with torch.no_grad():
        out = torch.stack([node(x) for x in x_seq])
    functional.reset_net(node)
    assert torch.equal(out, expected)


# -- CPU: the generated C ------------------------------------------------------------

def _compiler():
    return shutil.which("cc") or shutil.which("gcc")


def compile_c(spec: KernelSpec, dtype: torch.dtype, folder):
    """``spec``'s generated C, compiled; ``None`` when the compiler lacks the dtype (``_Float16``)."""
    src = folder / f"{spec.name}_{str(dtype).split('.')[-1]}.c"
    src.write_text(c_source(spec, dtype))
    lib = src.with_suffix(".so")
    done = subprocess.run([_compiler(), "-O2", "-shared", "-fPIC", "-std=c11", str(src), "-o", str(lib), "-lm"],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        if dtype == torch.float16:
            return None  # no _Float16 in this compiler
        raise AssertionError(done.stderr)
    return ctypes.CDLL(str(lib))


@pytest.fixture(scope="module")
def c_folder(tmp_path_factory):
    if _compiler() is None:
        pytest.skip("no C compiler to check the generated kernels on the CPU")
    return tmp_path_factory.mktemp("kernels")


@pytest.fixture(scope="module")
def c_kernels(c_folder):
    """Each package node's kernel body compiled as C (float32, and float16 where the compiler has _Float16)."""
    libs = {}
    for dtype in (torch.float32, torch.float16):
        for cls in NODES:
            lib = compile_c(make_node(cls, (3, 2, 2), torch.Generator().manual_seed(0)).kernel_spec(), dtype,
                            c_folder)
            if lib is not None:
                libs[cls, dtype] = lib
    return libs


def run_c(lib, spec: KernelSpec, x_seq, call):
    out, states, args = kernel_arguments(spec, x_seq, call)
    c_args = [ctypes.c_int(a[1]) if isinstance(a, tuple) and a[0] == "int" else
              ctypes.c_longlong(a[1]) if isinstance(a, tuple) else ctypes.c_void_p(a.data_ptr()) for a in args]
    getattr(lib, f"sc_{spec.name}_c")(*c_args)
    return out, states


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("cls", NODES, ids=NAMES.get)
@pytest.mark.parametrize("shape", [(3, 2, 2), (3,)], ids=["conv", "linear"])
def test_generated_c_equals_the_torch_backend_and_the_transition(c_kernels, cls, dtype, shape):
    if (cls, dtype) not in c_kernels:
        pytest.skip("this C compiler has no _Float16")
    g = torch.Generator().manual_seed(7)
    node = make_node(cls, shape, g).to(dtype)
    x_seq = node_input(cls, 20, 4, shape, g, dtype)
    expected_out, expected_states = torch_backend(node, x_seq)
    by_hand, _ = transition_by_hand(node, x_seq)
    assert torch.equal(expected_out, by_hand)
    states = node.materialize_states((x_seq,), tuple(node._memories.values()), "m")
    out, new = run_c(c_kernels[cls, dtype], node.kernel_spec(), x_seq, node.kernel_call(x_seq, states))
    assert out.dtype == dtype
    assert torch.equal(out, expected_out)
    assert_same_states(node.kernel_states(new, states, x_seq), expected_states)
    assert (expected_out != 0).any()


def test_chunked_c_kernel_calls_carry_the_state(c_kernels):
    g = torch.Generator().manual_seed(3)
    node = make_node(AECNode, (3,), g)
    x_seq = node_input(AECNode, 12, 5, (3,), g, torch.float32)
    expected, _ = torch_backend(node, x_seq)
    states = node.materialize_states((x_seq,), tuple(node._memories.values()), "m")
    outs = []
    for chunk in x_seq.split(5):
        out, new = run_c(c_kernels[AECNode, torch.float32], node.kernel_spec(), chunk, node.kernel_call(chunk, states))
        states = node.kernel_states(new, states, chunk)
        outs.append(out)
    assert torch.equal(torch.cat(outs), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
def test_generated_aec_c_sends_both_spikes_in_one_step_and_the_forced_last_one_like_torch(c_kernels, dtype):
    """Values that put both spikes in one step, one after the other, the compensating one at the window's last
    step (forced when the residual is below its threshold), and silence: C and torch agree on every case."""
    if (AECNode, dtype) not in c_kernels:
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
    out, new = run_c(c_kernels[AECNode, dtype], node.kernel_spec(), x_seq, node.kernel_call(x_seq, states))
    assert torch.equal(out, expected)
    assert torch.equal(AECNode.kernel_doubles(new, x_seq), reported[0])  # the kernel's double-spike report
    assert reported[0].sum().item() == 4  # 1.3 and 5.0 at step 0, 0.5 at step 1, the forced 1.001·thr1(3) at 3
    assert_same_states(node.kernel_states(new, states, x_seq), expected_states)
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
    spec = make_node(SNMNode, (3,), torch.Generator().manual_seed(0)).kernel_spec()
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
@pytest.mark.parametrize("cls", NODES, ids=NAMES.get)
@pytest.mark.parametrize("shape", [(8, 5, 5), (16,)], ids=["conv", "linear"])
def test_cupy_kernels_equal_the_torch_backend(cls, dtype, shape):
    g = torch.Generator().manual_seed(11)
    node = make_node(cls, shape, g).to(device="cuda", dtype=dtype)
    x_seq = node_input(cls, 24, 6, shape, g, dtype).cuda()
    expected_out, expected_states = torch_backend(node, x_seq)
    node.backend = "cupy"
    out, states = torch_backend(node, x_seq)
    assert torch.equal(out, expected_out)
    assert_same_states(states, expected_states)


@pytest.mark.cuda
@pytest.mark.skipif(not cupy_available(), reason="needs CuPy and a CUDA GPU")
def test_cupy_aec_kernel_reports_the_same_double_spikes_as_torch():
    g = torch.Generator().manual_seed(5)
    node = make_node(AECNode, (16,), g).cuda()
    x_seq = node_input(AECNode, 24, 6, (16,), g, torch.float32).cuda()
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
    out, _ = run_c(c_kernels[CSQCFSNode, torch.float32], node.kernel_spec(), x_seq, node.kernel_call(x_seq, states))
    assert torch.equal(out, expected)


# -- subclasses: their own equations on every path ----------------------------------------

class ResetToZero(CSQCFSNode):
    """CS-QCFS's IF node with reset to zero: it overrides only the transition."""

    def transition(self, x, state):
        (v,) = state
        theta = self._theta(x)
        v = v + x
        spike = self.spike(v - theta)
        return spike * theta, (v * (1.0 - spike),)


_RESET_TO_ZERO = KernelSpec(name="reset_to_zero", states=("v",), params=(("theta", "channel"),), step="""
v = ROUND(v + x);
if (v >= theta) { o = theta; v = 0.0f; }
""")


class ResetToZeroWithKernel(ResetToZero):
    """The same equations with a CuPy kernel of their own."""

    def kernel_spec(self):
        return _RESET_TO_ZERO


def _subclass_case():
    g = torch.Generator().manual_seed(2)
    node = ResetToZero(torch.randn(3, generator=g))
    return node, torch.randn(16, 4, 3, generator=g).abs()


def test_a_subclass_that_overrides_the_transition_runs_it_multi_step_on_torch():
    node, x_seq = _subclass_case()
    assert not ResetToZero.runs_own_fast_path("torch_multi_step")
    out, states = torch_backend(node, x_seq)
    # the transition by hand, written out here: v(0) = θ/2, v ← v + x, fire at θ, reset to zero
    theta = node.threshold.detach()
    v = (theta / 2).expand(4, 3).clone()
    expected = []
    for x in x_seq:
        v = v + x
        fired = v >= theta
        expected.append(fired * theta)
        v = torch.where(fired, torch.zeros_like(v), v)
    assert torch.equal(out, torch.stack(expected))
    assert torch.equal(states[0], v)
    parent = CSQCFSNode(node.raw_threshold.detach())
    assert not torch.equal(torch_backend(parent, x_seq)[0], out)  # the case tells the two resets apart


def test_a_subclass_with_an_inherited_kernel_is_refused_on_cupy_with_a_clear_error():
    node, _ = _subclass_case()
    message = "ResetToZero overrides the equations of CSQCFSNode.*CuPy kernel.*own kernel_spec"
    with pytest.raises(NotImplementedError, match=message):
        node.backend = "cupy"
    with pytest.raises(NotImplementedError, match=message):
        set_backend(torch.nn.Sequential(node), "cupy")
    node._backend = "cupy"  # as if set some other way: the kernel still refuses to run
    with pytest.raises(NotImplementedError, match=message):
        node.cupy_multi_step((torch.zeros(2, 1, 3),), (torch.zeros(1, 3),))
    ResetToZeroWithKernel.check_kernel()  # its own kernel is accepted


def test_a_subclass_with_its_own_kernel_runs_it_and_it_equals_its_transition(c_folder):
    node, x_seq = _subclass_case()
    node = ResetToZeroWithKernel(node.raw_threshold.detach())
    lib = compile_c(node.kernel_spec(), torch.float32, c_folder)
    expected, expected_states = transition_by_hand(node, x_seq)
    states = node.materialize_states((x_seq,), tuple(node._memories.values()), "m")
    out, new = run_c(lib, node.kernel_spec(), x_seq, node.kernel_call(x_seq, states))
    assert torch.equal(out, expected) and (out != 0).any()
    assert_same_states(node.kernel_states(new, states, x_seq), expected_states)


def test_fast_paths_follow_the_class_that_writes_the_equations():
    class KeepsEquations(CSQCFSNode):  # changes only the start: the parent's loop and kernel stay valid
        def materialize_states(self, inputs, states, step_mode):
            (v,) = super().materialize_states(inputs, states, step_mode)
            return (torch.zeros_like(v),)

    class OldStyle(CSQCFSNode):  # SpikingJelly's own hook for the equations counts as overriding them
        def single_step_functional_forward(self, inputs, states, **kwargs):
            return super().single_step_functional_forward(inputs, states, **kwargs)

    assert KeepsEquations.runs_own_fast_path("torch_multi_step") and KeepsEquations.runs_own_fast_path("kernel_spec")
    assert not OldStyle.runs_own_fast_path("torch_multi_step")
    for cls in NODES:
        assert cls.runs_own_fast_path("torch_multi_step")
        cls.check_kernel()
