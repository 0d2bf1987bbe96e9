"""PyTorch oracle: reference weights (PyTorch's own names) and states from `torch.nn.LSTM`.

Safe to import in the test process (no Keras switch involved).
"""

import numpy as np
import torch


def torch_lstm(
    input: np.ndarray,
    units: list[int],
    proj_size: int | None,
    lengths: list | None,
    seed: int,
    bidirectional: bool = False,
    num_layers_module: bool | None = None,
) -> tuple[dict, dict]:
    """Run a (stacked) nn.LSTM over `input` (B,T,F), batch-first, zero initial state.

    One nn.LSTM(num_layers=L) needs every layer the same size, so by default that is used
    only when `units` are all equal; otherwise each layer is its own single-layer nn.LSTM
    and its keys are renamed to the stacked ones (weight_ih_l{k}[_reverse], ...).
    `num_layers_module` forces the choice (True needs equal units). Both give the same
    computation; only the random draws differ.

    Returns (state_dict as float32 numpy with PyTorch's names, expected) where expected has
    `output` (B,T,H_out*dirs, zeros past each row's length) and per layer `layer_{k}/h`,
    `layer_{k}/c` (bidirectional: `layer_{k}/fw/h`, `layer_{k}/bw/h`, ...). With proj_size,
    h has proj_size columns and c has the hidden size.
    """
    x = torch.as_tensor(np.asarray(input, dtype=np.float32))
    if x.ndim != 3:
        raise ValueError(f"input must be (B,T,F), got shape {tuple(x.shape)}")
    equal = len(set(units)) == 1
    if num_layers_module is None:
        num_layers_module = equal
    if num_layers_module and not equal:
        raise ValueError(f"one nn.LSTM(num_layers=...) needs equal units, got {units}")
    proj = proj_size or 0  # nn.LSTM's "no projection" is 0
    dirs = 2 if bidirectional else 1
    batch, steps = x.shape[0], x.shape[1]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic reductions; restored so the caller is unaffected
    try:
        torch.manual_seed(seed)
        if num_layers_module:
            modules = [
                torch.nn.LSTM(
                    x.shape[2],
                    units[0],
                    num_layers=len(units),
                    batch_first=True,
                    bidirectional=bidirectional,
                    proj_size=proj,
                )
            ]
        else:
            modules, in_size = [], x.shape[2]
            for n in units:
                modules.append(
                    torch.nn.LSTM(
                        in_size, n, batch_first=True, bidirectional=bidirectional, proj_size=proj
                    )
                )
                in_size = (proj or n) * dirs  # the next layer sees the (concatenated) h
        state_dict = {}
        for k, module in enumerate(modules):
            for name, value in module.state_dict().items():
                # Single-layer modules say "_l0"; give them their place in the stack.
                if not num_layers_module:
                    name = name.replace("_l0", f"_l{k}")
                state_dict[name] = value.detach().numpy().astype(np.float32)

        with torch.no_grad():
            seq = x
            if lengths is not None:
                seq = torch.nn.utils.rnn.pack_padded_sequence(
                    x,
                    torch.as_tensor(lengths, dtype=torch.int64),
                    batch_first=True,
                    enforce_sorted=False,
                )
            h_all, c_all = [], []
            for module in modules:
                # Packed in, packed out: each layer only sees its rows' valid steps.
                seq, (h_n, c_n) = module(seq)
                h_all.append(h_n)
                c_all.append(c_n)
            if lengths is not None:
                seq, _ = torch.nn.utils.rnn.pad_packed_sequence(
                    seq, batch_first=True, total_length=steps
                )
        # Per layer h_n/c_n: (layers*dirs, B, H), layer-major then direction; nn.LSTM has
        # already put the rows back in the caller's order.
        h_n = [h.reshape(-1, dirs, batch, h.shape[-1]).numpy() for h in h_all]
        c_n = [c.reshape(-1, dirs, batch, c.shape[-1]).numpy() for c in c_all]
        h_n = [layer for module_h in h_n for layer in module_h]  # flat list over layers
        c_n = [layer for module_c in c_n for layer in module_c]
    finally:
        torch.set_num_threads(threads)

    expected = {"output": seq.numpy()}
    for k in range(len(units)):
        for d, sub in enumerate(("/fw", "/bw") if bidirectional else ("",)):
            expected[f"layer_{k}{sub}/h"] = h_n[k][d]
            expected[f"layer_{k}{sub}/c"] = c_n[k][d]
    return state_dict, expected
