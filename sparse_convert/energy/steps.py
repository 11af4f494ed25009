"""How many time steps one module call carries, from the network's step modes and the call's input.

A SpikingJelly network may be run whole (``[T, B, ...]`` through multi-step modules), with
its stateless layers on the time-folded batch (``SeqToANNContainer``, ``layer.Conv2d`` in
step mode ``'m'``, a converted ``SpikingNetwork``: ``[T·B, ...]``), one call per time step
(``MultiStepContainer``, ``functional.multi_step_forward``, a single-step loop) or in chunks
of steps. ``StepTracker`` follows the calls of one network with forward hooks and answers,
for each call of a module inside it, how many steps that call carries:

* a module in step mode ``'m'`` (``base.StepModule``): ``x.shape[0]``;
* inside a module that folds time (``SeqToANNContainer``, a stateless ``StepModeContainer``
  in ``'m'``, a module with ``folds_time = True`` in ``'m'``, such as ``SpikingNetwork``): the
  container's ``T``, the input being ``[T·B, ...]``;
* inside a module that steps time itself (``MultiStepContainer``, a stateful
  ``StepModeContainer`` in ``'m'``), in a single-step network, or a module in step mode
  ``'s'`` called on its own: 1;
* a plain module (``nn.Linear``) in a network whose modules are all in ``'m'``: the root
  call's ``T`` (input ``[T, B, ...]`` or ``[T·B, ...]``); in a network without step
  modules: 1 (SpikingJelly's default, single-step).

Anything else (a network mixing step modes, time as the last dim) has no answer and is an
error naming the module, unless the caller states the steps of the root call.
"""

from __future__ import annotations

from dataclasses import dataclass

from spikingjelly.activation_based import base, layer
from torch import Tensor, nn

#: Containers that run their children on the time-folded batch ``[T·B, ...]``.
FOLDING_CONTAINERS: tuple[type[nn.Module], ...] = (layer.SeqToANNContainer,)
#: Containers that call their children once per time step.
LOOPING_CONTAINERS: tuple[type[nn.Module], ...] = (layer.MultiStepContainer,)
#: Containers whose inputs put time last (``[B, ..., T]``): not followed.
TIME_LAST_CONTAINERS: tuple[type[nn.Module], ...] = (layer.TLastSeqToANNContainer, layer.TLastMultiStepContainer)
#: Containers whose children keep their own step mode (``functional.set_step_mode`` does not descend).
_CONTAINERS = (*FOLDING_CONTAINERS, *LOOPING_CONTAINERS, *TIME_LAST_CONTAINERS, layer.StepModeContainer,
               layer.ElementWiseRecurrentContainer, layer.LinearRecurrentContainer)


@dataclass(frozen=True)
class StepContext:
    """How the modules called inside one call see time: ``kind`` in fold / loop / seq / single / unknown."""

    kind: str
    steps: int | None = None
    batch: int | None = None
    why: str = ""


def folds_time(module: nn.Module) -> bool:
    """Whether ``module`` runs its children on ``[T·B, ...]`` when in step mode ``'m'``."""
    return bool(getattr(module, "folds_time", False))


def step_mode_of(module: nn.Module) -> str | None:
    """``module``'s step mode (a ``MultiStepModule`` that never set one is ``'m'``), ``None`` for a plain module."""
    if not isinstance(module, base.StepModule):
        return None
    try:
        return module.step_mode
    except AttributeError:
        modes = module.supported_step_mode()
        return modes[0] if len(modes) == 1 else None


def _is_context(module: nn.Module) -> bool:
    return isinstance(module, _CONTAINERS) or folds_time(module)


def network_step_mode(net: nn.Module) -> str | None:
    """``'s'`` or ``'m'`` when every step module of ``net`` outside containers agrees, else ``None``.

    A container counts by its own step mode; its children keep theirs (as in
    ``functional.set_step_mode``). A network without step modules is single-step
    (SpikingJelly's default mode).
    """
    modes: set[str] = set()

    def visit(m: nn.Module) -> None:
        mode = step_mode_of(m)
        if mode is not None:
            modes.add(mode)
        if _is_context(m) and m is not net:
            return
        for child in m.children():
            visit(child)

    if _is_context(net):
        return step_mode_of(net)
    visit(net)
    if not modes:
        return "s"  # no step module: SpikingJelly's default, one step per call
    return modes.pop() if len(modes) == 1 else None


def _first_tensor(args: tuple) -> Tensor | None:
    for a in args:
        if isinstance(a, Tensor):
            return a
        if isinstance(a, (tuple, list)) and a and isinstance(a[0], Tensor):
            return a[0]
    return None


def _context_of(module: nn.Module, x: Tensor | None, root: bool, net: nn.Module) -> StepContext | None:
    """The context ``module``'s call opens for the modules it calls, or ``None`` when it opens none."""
    if x is None:
        return StepContext("unknown", why=f"{type(module).__name__} was called without a tensor input")
    mode = step_mode_of(module)
    if isinstance(module, TIME_LAST_CONTAINERS):
        return StepContext("unknown", why=f"{type(module).__name__} puts time in the last dim")
    if isinstance(module, FOLDING_CONTAINERS):
        return StepContext("fold", x.shape[0])
    if isinstance(module, LOOPING_CONTAINERS):
        return StepContext("loop", 1)
    if isinstance(module, layer.StepModeContainer):
        if mode == "s":
            return StepContext("single", 1)
        return StepContext("loop", 1) if module.stateful else StepContext("fold", x.shape[0])
    if isinstance(module, (layer.ElementWiseRecurrentContainer, layer.LinearRecurrentContainer)):
        return StepContext("loop", 1)
    if folds_time(module):
        return StepContext("fold", x.shape[0]) if mode == "m" else StepContext("single", 1)
    if not root:
        return None
    mode = network_step_mode(net)
    if mode == "s":
        return StepContext("single", 1)
    if mode == "m":
        return StepContext("seq", x.shape[0], x.shape[1] if x.dim() > 1 else None)
    return StepContext("unknown", why=f"{type(net).__name__} mixes step modes 's' and 'm' "
                                      f"(set them all with functional.set_step_mode)")


class StepTracker:
    """Steps carried by each call of a module of ``net``, followed through ``net``'s forward calls."""

    def __init__(self, net: nn.Module):
        self.net = net
        self._stack: list[StepContext | None] = []
        #: Steps of the next root call as stated by the caller (``None``: found from the call).
        self.expected: int | None = None
        self.handles = [net.register_forward_pre_hook(self._enter_root),
                        net.register_forward_hook(self._leave)]
        for m in net.modules():
            if m is not net and _is_context(m):
                self.handles += [m.register_forward_pre_hook(self._enter), m.register_forward_hook(self._leave)]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _enter_root(self, module: nn.Module, args: tuple) -> None:
        self._stack.clear()  # an exception in an earlier call may have left contexts behind
        ctx = _context_of(module, _first_tensor(args), True, self.net)
        root_steps = ctx.steps if ctx.kind in ("fold", "seq", "single") else None
        if ctx.kind == "loop":
            root_steps = _first_tensor(args).shape[0]
        if self.expected is not None and root_steps is not None and root_steps != self.expected:
            raise ValueError(f"the monitor's steps = {self.expected}, but this call of {type(module).__name__} "
                             f"carries {root_steps} time steps (input of shape "
                             f"{tuple(_first_tensor(args).shape)}); leave steps unset to follow the network")
        self._stack.append(ctx)

    def _enter(self, module: nn.Module, args: tuple) -> None:
        self._stack.append(_context_of(module, _first_tensor(args), False, self.net))

    def _leave(self, module: nn.Module, args: tuple, out: object) -> None:
        if self._stack:
            self._stack.pop()

    def steps_of(self, module: nn.Module, x: Tensor, name: str) -> int:
        """Time steps that the call of ``module`` (named ``name``) on ``x`` carries; an error when unknowable."""
        if step_mode_of(module) == "m":
            return _check(x.shape[0], x, name)
        ctx = self._stack[-1] if self._stack else None
        if ctx is None and isinstance(module, base.StepModule):
            return 1  # a single-step module called on its own: one [B, ...] step
        if ctx is not None and ctx.kind in ("single", "loop"):
            return 1
        if ctx is not None and ctx.kind == "fold":
            return _check(ctx.steps, x, name)
        if ctx is not None and ctx.kind == "seq":
            steps, batch = ctx.steps, ctx.batch
        elif self.expected is not None:
            steps, batch = self.expected, None
        else:
            why = ctx.why if ctx is not None else "it was called outside a forward call of the monitored network"
            raise ValueError(f"cannot tell how many time steps the call of {name} ({type(module).__name__}, input "
                             f"of shape {tuple(x.shape)}) carries: {why}; set the monitor's steps to the "
                             f"steps of each call")
        if x.shape[0] == steps or (batch is not None and x.shape[0] == steps * batch):
            return steps
        if batch is None and x.shape[0] % steps == 0:
            return steps
        raise ValueError(f"the input of {name} of shape {tuple(x.shape)} holds neither {steps} steps "
                         f"[T, B, ...] nor {steps} folded steps [T·B, ...]")


def _check(steps: int, x: Tensor, name: str) -> int:
    if steps < 1 or x.shape[0] % steps:
        raise ValueError(f"the input of {name} of shape {tuple(x.shape)} does not hold {steps} time steps")
    return steps
