"""The prunable-width layers of a torch model as latency-table `Layer` s (Conv and Linear, with
the input spatial size each one sees), found by running the model once."""

from __future__ import annotations

from edgeprune.latency.ops import OpSignature
from edgeprune.latency.table import Layer


def model_layers(model, input_shape, graph=None, precision: str = "fp32") -> list[Layer]:
    """Every Conv2d and Linear that runs, in execution order (grouped convs other than depthwise
    are not supported by the table yet and are left out). With ``graph`` (a `ChannelGraph` of
    the model), only the channel counts pruning can change are swept. ``precision``: the
    operators' (fp32, or int8 for the quantized model)."""
    prunable = _prunable_dims(graph) if graph is not None else None
    import torch
    from torch import nn

    seen: list[Layer] = []
    handles = []

    def dims(name: str) -> tuple[bool, bool]:
        return prunable.get(name, (False, False)) if prunable is not None else (True, True)

    def hook(name):
        def record(module, inputs, _output):
            x = inputs[0]
            if isinstance(module, nn.Conv2d):
                depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
                if module.groups > 1 and not depthwise:
                    return
                pad = module.padding if isinstance(module.padding, tuple) else (0, 0)
                sig = OpSignature("conv", tuple(module.kernel_size), tuple(module.stride), tuple(pad),
                                  tuple(module.dilation), depthwise, tuple(x.shape[2:]), True, precision)
                seen.append(Layer(name, sig, module.in_channels, module.out_channels, *dims(name)))
            elif isinstance(module, nn.Linear) and x.dim() == 2:
                seen.append(Layer(name, OpSignature("gemm", relu=False, precision=precision), module.in_features,
                                  module.out_features,
                                  *dims(name)))
        return record

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            handles.append(module.register_forward_hook(hook(name)))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return seen


def _prunable_dims(graph) -> dict[str, tuple[bool, bool]]:
    """Layer name -> (input width prunable, output width prunable), from the graph's cost terms."""
    out: dict[str, tuple[bool, bool]] = {}
    for term in graph.cost.flops_terms:
        if term.b is None:  # depthwise: one width
            w = bool(term.a.parts)
            out[term.layer] = (w, w)
        else:
            out[term.layer] = (bool(term.a.parts), bool(term.b.parts))
    return out
