"""CUDA graphs of VAR's generation steps: sampling at batch 1 is bound by ~10k kernel launches, not by the GPU.

`VAR.generate(..., cuda_graphs=True)` uses them (through `fpqvar.model.steps`); `graph_blocker` says when it
cannot and sampling runs eagerly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Step = Callable[[torch.Tensor, Sequence[torch.Tensor], torch.Tensor], torch.Tensor]


class StepGraphs:
    """One CUDA graph per generation step of one batch size: the transformer, from the step's input to its logits.

    The graphs read static copies of their inputs (step input, per-block modulations, class condition) and
    write keys and values into fixed slices of the StaticKVCache buffers, which their kernels address
    directly. Replayed in step order they run the same kernels on the same values as the eager steps, so
    the logits are identical. Sampling stays outside: torch.multinomial checks its input on the CPU
    (a synchronisation a graph cannot capture), and the generator then draws in the eager order.
    """

    def __init__(self, step: Step, caches: Sequence, inputs: Sequence[torch.Tensor],
                 modulations: Sequence[torch.Tensor], cond: torch.Tensor):
        self.caches = list(caches)
        self.inputs = [x.clone() for x in inputs]
        self.modulations = [m.clone() for m in modulations]
        self.cond = cond.clone()
        self.outputs: list[torch.Tensor] = []
        self.graphs: list[torch.cuda.CUDAGraph] = []
        # Autocast's weight-cast cache would hand one graph's casts to the next graph: capture without it.
        autocast = torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"),
                                  enabled=torch.is_autocast_enabled("cuda"), cache_enabled=False)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), autocast:  # warm-up outside capture: cuBLAS handles, compiled code, lazy inits
            self._run_eagerly(step)
        torch.cuda.current_stream().wait_stream(side)
        for cache in self.caches:
            cache.rewind()
        pool = torch.cuda.graph_pool_handle()  # shared: the graphs always replay in capture order
        for x in self.inputs:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool), autocast:
                self.outputs.append(step(x, self.modulations, self.cond))
            self.graphs.append(graph)

    def _run_eagerly(self, step: Step) -> None:
        for cache in self.caches:
            cache.rewind()
        for x in self.inputs:
            step(x, self.modulations, self.cond)

    def start(self, modulations: Sequence[torch.Tensor], cond: torch.Tensor) -> None:
        """Load one generate call's class-dependent inputs."""
        torch._foreach_copy_(self.modulations, list(modulations))
        self.cond.copy_(cond)

    def run(self, step: int, x: torch.Tensor) -> torch.Tensor:
        """The step's logits; valid until the next ``start``."""
        self.inputs[step].copy_(x)
        self.graphs[step].replay()
        return self.outputs[step]


def graph_blocker(var: torch.nn.Module, allowed: tuple[type, ...], default_cache: type) -> str | None:
    """Why ``var``'s steps cannot be captured (None when they can): a graph replays kernels, not Python, so
    hooks, replaced layers (they may synchronise or branch on values) and other KV stores must run eagerly.
    A layer type that launches the same kernels for the same shapes, never reading values on the host,
    declares it with a class attribute ``graph_capturable = True`` (fpqvar's quantized linears do)."""
    for name, module in var.named_modules():
        if type(module) not in allowed and not getattr(type(module), "graph_capturable", False):
            return f"{name} is a {type(module).__name__}, not a layer of the plain model"
        if module._forward_hooks or module._forward_pre_hooks:
            return f"{name} has forward hooks"
        if hasattr(module, "kv_cache_factory") and module.kv_cache_factory is not default_cache:
            return f"{name} has a replaced KV cache"
    if torch.nn.modules.module._global_forward_hooks or torch.nn.modules.module._global_forward_pre_hooks:
        return "global forward hooks are registered"
    if var.training:
        return "the model is in training mode (drop path draws random numbers)"
    if var.pos_1LC.device.type != "cuda":
        return "the model is not on a CUDA device"
    return None
