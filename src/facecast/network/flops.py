"""Count the floating-point operations of one inference of an ONNX graph (a multiply-add counts as 2).

Shapes come from running the graph once in ONNX Runtime on zeros (static shape inference cannot see through
the dynamic reshapes of exported graphs), so any graph with the official interface can be measured.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper


def count_flops(path: str | os.PathLike, batch: int = 1) -> dict[str, int]:
    """FLOPs per operator type (Conv, MatMul, Gemm) for ``batch`` frames; elementwise ops are ignored."""
    import onnxruntime as ort

    model = onnx.load(str(path))
    heavy = [n for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
    constants = {t.name: list(t.dims) for t in model.graph.initializer}
    for node in model.graph.node:  # weights folded into Constant nodes (e.g. a fixed DFT basis)
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    constants[node.output[0]] = list(attr.t.dims)
    wanted = {name for n in heavy for name in [n.output[0], n.input[0]] if name not in constants}
    existing = {o.name for o in model.graph.output}
    for name in sorted(wanted - existing):
        model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    for inp in session.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in inp.shape]
        feeds[inp.name] = np.zeros(shape, np.float32)
    names = [o.name for o in session.get_outputs()]
    shapes = {name: list(value.shape) for name, value in zip(names, session.run(names, feeds), strict=True)}
    shapes.update(constants)
    flops = {"Conv": 0, "MatMul": 0, "Gemm": 0}
    for node in heavy:
        out = shapes[node.output[0]]
        if node.op_type == "Conv":
            flops["Conv"] += 2 * int(np.prod(out)) * int(np.prod(shapes[node.input[1]][1:]))
        else:
            a = shapes[node.input[0]]
            transposed = node.op_type == "Gemm" and any(x.name == "transA" and x.i for x in node.attribute)
            flops[node.op_type] += 2 * int(np.prod(out)) * int(a[-2] if transposed else a[-1])
    return flops
