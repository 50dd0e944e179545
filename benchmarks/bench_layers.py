"""From-scratch ``hw2.layers.MLP`` forward+backward vs. the same network under torch autograd.

Both networks hold the same weights and compute the same loss and gradients (checked before
timing); the ratio is our time over autograd's, with a goal of at most 1.05.
"""
import torch

from hw2 import layers
from benchmarks.timing import Row, interleaved_medians

GOAL = 1.05


def build(in_features=3 * 32 * 32, hidden=(512, 256, 128), num_classes=10, batch=128, seed=0):
    """Our MLP, an equal torch.nn network, a batch and its labels."""
    torch.manual_seed(seed)
    ours = layers.MLP(in_features, num_classes, hidden_features=list(hidden), wstd=0.05)
    mods = []
    linears = [layer for layer in ours.sequence if isinstance(layer, layers.Linear)]
    for i, lin in enumerate(linears):
        fc = torch.nn.Linear(lin.w.shape[1], lin.w.shape[0])
        with torch.no_grad():
            fc.weight.copy_(lin.w)
            fc.bias.copy_(lin.b)
        mods.append(fc)
        if i < len(linears) - 1:
            mods.append(torch.nn.ReLU())
    theirs = torch.nn.Sequential(*mods)
    x = torch.randn(batch, in_features)
    y = torch.randint(0, num_classes, (batch,))
    return ours, theirs, x, y


def run(repeats: int = 30):
    ours, theirs, x, y = build()
    loss_fn = layers.CrossEntropyLoss()

    def step_ours():
        loss_fn(ours(x), y)
        ours.backward(loss_fn.backward())
        return None

    # Our backward always returns dL/dx; ask autograd for it too so both do the same work.
    x_torch = x.clone().requires_grad_(True)

    def step_torch():
        theirs.zero_grad(set_to_none=False)
        x_torch.grad = None
        torch.nn.functional.cross_entropy(theirs(x_torch), y).backward()

    _check_same_gradients(ours, theirs, step_ours, step_torch)
    t_ours, t_torch = interleaved_medians([step_ours, step_torch], repeats=repeats, warmup=3)
    return [Row("layers.MLP fwd+bwd vs autograd (3072-512-256-128-10, B=128)", 1e3 * t_ours,
                1e3 * t_torch, "ms/step", f"<= {GOAL}", t_ours / t_torch <= GOAL)]


def _check_same_gradients(ours, theirs, step_ours, step_torch):
    for p, dp in ours.params():
        dp.zero_()
    step_ours()
    step_torch()
    theirs_grads = [g for m in theirs if isinstance(m, torch.nn.Linear)
                    for g in (m.weight.grad, m.bias.grad)]
    for (_, dp), g in zip(ours.params(), theirs_grads, strict=True):
        torch.testing.assert_close(dp, g, rtol=1e-4, atol=1e-6)


if __name__ == "__main__":
    from benchmarks.timing import print_table
    print_table(run(), "from-scratch layers vs autograd")
