"""The subclassing guide: a new conversion neuron and a new conversion method, end to end, in one file.

1. A neuron: ``ResetToZeroNode`` subclasses ``CSQCFSNode`` (CS-QCFS's IF neuron) and changes
   one thing, the reset: to zero instead of by subtraction. A node's dynamics are its pure
   ``transition(x, state) -> (output, new_state)``, and overriding it is all a subclass does:
   the node then runs its own equations in single- and multi-step mode (CSQCFSNode's fast
   loop, written for CSQCFSNode's equations, steps aside), and asking for the ``cupy``
   backend is refused with a clear error until the subclass writes a kernel of its own.
2. A method: ``ResetToZeroQCFS`` subclasses the ``qcfs`` method, keeps its ANN preparation
   (S-QCFS then CS-QCFS fine-tuning) and its options, and builds the SNN with the new neuron
   (``snn_body`` does the steps every method's ``build`` shares). The
   ``@register_method`` decorator makes it a method like any other: ``get_method``,
   ``RunConfig(method=...)`` and ``experiments.run`` accept its name.
3. Both methods run on digits and are compared: reset to zero throws away the charge above
   the threshold, so it needs more time steps for the same accuracy.

    python examples/custom_neuron.py                        # digits, under a minute on 2 CPU cores
    python examples/custom_neuron.py --dataset cifar10 --data-root DIR --epochs 100 --device cuda
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from spikingjelly.activation_based import functional
from torch import Tensor, nn

from sparse_convert.analysis.report import build_report, write_report
from sparse_convert.analysis.tables import table_a4, to_markdown, to_percent
from sparse_convert.encoding import DirectEncoder
from sparse_convert.experiments import RunConfig, run_or_load
from sparse_convert.methods import SpikingNetwork, get_method, register_method
from sparse_convert.methods.qcfs import QCFS
from sparse_convert.neurons import SQCFS, CSQCFSNode, State
from sparse_convert.training import FitConfig


class ResetToZeroNode(CSQCFSNode):
    """IF node with channel-wise θ and v(0) = θ/2 like ``CSQCFSNode``, but reset to zero after a spike:

        v ← v + x[t];   s = H(v − θ);   v ← v · (1 − s);   output θ·s
    """

    def transition(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        (v,) = state
        theta = self._theta(x)
        v = v + x
        spike = self.spike(v - theta)  # Heaviside forward; the surrogate gradient when training
        return spike * theta, (v * (1.0 - spike),)


@register_method
class ResetToZeroQCFS(QCFS):
    """CS-QCFS's ANN preparation, converted to reset-to-zero IF neurons."""

    name = "qcfs_reset_to_zero"

    def build(self, ann: nn.Module, window: int | None) -> SpikingNetwork:
        # snn_body does what every build shares (copy, average pooling, BatchNorm folded); each trained
        # SQCFS activation becomes the new node, its thresholds copied
        body = self.snn_body(ann, {SQCFS: lambda _, act: ResetToZeroNode.from_activation(act)})
        return SpikingNetwork(body, DirectEncoder())


def check_equations() -> None:
    """The node does what its docstring says, on a hand-checked input (θ = 1, v(0) = 0.5), and the CuPy
    backend, whose kernel would compute CSQCFSNode's equations, is refused."""
    node = ResetToZeroNode(torch.log(torch.expm1(torch.tensor([1.0]))))  # softplus(raw) = 1
    with torch.no_grad():
        out = node(torch.tensor([[[0.6]], [[0.2]], [[0.9]], [[0.9]]]))  # [T=4, B=1, C=1]
    # v: 0.5+0.6=1.1 fires → 0;  0+0.2=0.2;  0.2+0.9=1.1 fires → 0;  0+0.9=0.9
    assert out.flatten().tolist() == [1.0, 0.0, 1.0, 0.0], out.flatten().tolist()
    functional.reset_net(node)
    try:
        node.backend = "cupy"
    except NotImplementedError as refused:
        print(f"cupy backend: {refused}")
    else:
        raise AssertionError("a subclass with new equations must not run its parent's CuPy kernel")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--epochs", type=int, default=10, help="ANN training epochs")
    parser.add_argument("--method-epochs", type=int, default=2, help="epochs of each QCFS fine-tuning stage")
    parser.add_argument("--t-max", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="examples-out/custom_neuron")
    parser.add_argument("--force", action="store_true",
                        help="rerun finished runs (a finished run of another configuration is an error)")
    args = parser.parse_args()

    check_equations()
    assert get_method("qcfs_reset_to_zero") is ResetToZeroQCFS
    out = Path(args.out)
    ann = None
    results = []
    for method in ("qcfs", "qcfs_reset_to_zero"):
        config = RunConfig(model="mlp", dataset=args.dataset, method=method, sparsity=0.9, topology="cht",
                           t_max=args.t_max, train=FitConfig(epochs=args.epochs, lr=0.05, batch_size=64),
                           method_options=get_method(method).with_stage_epochs(args.method_epochs),
                           data_root=args.data_root, device=args.device)
        # the second method reuses the first one's ANN checkpoint: same sparse ANN, different neuron;
        # a run whose result.json exists is read back, not run again
        results.append(run_or_load(config, out / method, ann_checkpoint=ann, progress=False,
                                   force=args.force))
        ann = ann or out / method / "ann.safetensors"

    print(to_markdown(to_percent(table_a4(results)), ["method", "ann_accuracy", "snn_accuracy", "T", "energy_uj"]))
    for r in results:
        acc = r["per_step"]["accuracy"]
        print(f"{r['config']['method']:>20}: accuracy at T=4 {acc[3]:.4f}, T=8 {acc[7]:.4f}, "
              f"T={args.t_max} {acc[-1]:.4f}")
    write_report(build_report(results, title="A custom neuron: reset to zero vs by subtraction"), out / "report.md")


if __name__ == "__main__":
    main()
