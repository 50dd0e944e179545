"""Hyperparameters and written answers for the notebook questions.

Each part of the assignment owns one section below. Answers are markdown strings (LaTeX
allowed) rendered in the notebooks by :func:`cs236781.answers.display_answer`; the ``*_hp``
functions return the hyperparameter dicts that the notebooks read.
"""

# ==============================================================================
# Part 1: Backpropagation
# ==============================================================================

part1_q1 = r"""
**Setting.** The layer computes $Y = XW^\top + b$ with $X \in \mathbb{R}^{64 \times 1024}$,
$W \in \mathbb{R}^{512 \times 1024}$, $b \in \mathbb{R}^{512}$ and $Y \in \mathbb{R}^{64 \times 512}$.
Element-wise,

$$Y_{n,o} = \sum_{i=1}^{1024} X_{n,i} W_{o,i} + b_o .$$

Everything below follows from differentiating this one formula.

---

**1. The Jacobian $\partial Y / \partial X$**

**A. Shape.** It has one entry for every (output element, input element) pair, so its shape is the
shape of $Y$ followed by the shape of $X$: $(64, 512, 64, 1024)$. That is
$64 \cdot 512 \cdot 64 \cdot 1024 \approx 2.1 \cdot 10^9$ numbers, about 8 GiB in float32, for one
small layer and one batch.

**B. Sparsity.** Yes, it is sparse:

$$\frac{\partial Y_{n,o}}{\partial X_{m,i}} = \begin{cases} W_{o,i} & n = m \\ 0 & n \neq m \end{cases}$$

Sample $n$'s output depends only on sample $n$'s input, because the samples of a batch never
interact in a linear layer. If we view the tensor as a $64 \times 64$ grid of blocks indexed by
$(n, m)$, only the 64 diagonal blocks ($n = m$) can be non-zero, and each of them is the same
$512 \times 1024$ matrix $W$. So at least $63/64$ of the entries (about 98.4%) are zero by
construction, and the non-zero part carries no information beyond $W$ itself.

**C. Do we need to materialise it?** No. By the chain rule,

$$\delta X_{m,i} = \frac{\partial L}{\partial X_{m,i}}
= \sum_{n,o} \delta Y_{n,o} \frac{\partial Y_{n,o}}{\partial X_{m,i}}
= \sum_{o} \delta Y_{m,o} W_{o,i},$$

where the sum over $n$ collapsed because only $n = m$ contributes. In matrix form

$$\delta X = \delta Y \, W, \qquad (64 \times 512)(512 \times 1024) \to 64 \times 1024 .$$

This vector-Jacobian product needs only $W$, which the layer already stores, and one matrix
multiplication; the 2-billion-entry Jacobian never exists. This is exactly what `Linear.backward`
returns.

---

**2. The Jacobian $\partial Y / \partial W$**

**A. Shape.** Shape of $Y$ followed by the shape of $W$: $(64, 512, 512, 1024)$, i.e.
$64 \cdot 512 \cdot 512 \cdot 1024 \approx 1.7 \cdot 10^{10}$ numbers, about 64 GiB in float32.

**B. Sparsity.** Yes, even sparser:

$$\frac{\partial Y_{n,o}}{\partial W_{p,i}} = \begin{cases} X_{n,i} & o = p \\ 0 & o \neq p \end{cases}$$

Output unit $o$ is computed from row $o$ of $W$ only; the other 511 rows do not touch it. So
for a fixed output element $(n, o)$, the $512 \times 1024$ slice over $W$ is zero except for
row $p = o$, which holds the input sample $X_{n,:}$. Only a fraction $1/512$ of the entries
can be non-zero (more than 99.8% are zero), and those are copies of entries of $X$.

**C. Do we need to materialise it?** No. Again the Kronecker delta collapses one sum:

$$\delta W_{p,i} = \sum_{n,o} \delta Y_{n,o} \frac{\partial Y_{n,o}}{\partial W_{p,i}}
= \sum_{n} \delta Y_{n,p} X_{n,i},
\qquad\text{i.e.}\qquad
\delta W = \delta Y^\top X, \quad (512 \times 64)(64 \times 1024) \to 512 \times 1024 .$$

The result has the shape of $W$, as the gradient of a scalar loss must. It needs the input $X$,
which is why the forward pass caches it. The bias works the same way:
$\partial Y_{n,o} / \partial b_p = [o = p]$, so $\delta b = \sum_n \delta Y_{n,:}$ (the column
sums of $\delta Y$).

**Take-away.** In both cases the Jacobian is huge, almost entirely zero, and its non-zero part
is just a copy of something we already have ($W$ or $X$). Deriving the gradient of one scalar
entry and recognising the resulting sum as a matrix product gives the vector-Jacobian product
directly, at the cost of one matrix multiplication.
"""

part1_q2 = r"""
**Short answer: no, not in principle — but in practice it is what makes training large
networks affordable.**

A descent method needs a descent direction, usually the gradient $\nabla_\theta L$ of the loss
with respect to all $P$ parameters. Back-propagation is one way to obtain it; it is not the only
one:

- **Finite differences.** Estimate each partial derivative as
  $\frac{L(\theta + h e_j) - L(\theta - h e_j)}{2h}$. This needs two forward passes *per
  parameter*, i.e. $2P$ passes for one gradient. With $P$ in the millions that is hopeless, and
  the choice of $h$ trades truncation error against floating-point cancellation. (We use this
  in the tests only, on tiny inputs, as an independent check.)
- **Forward-mode automatic differentiation.** Propagate a tangent vector $v$ alongside the
  forward pass to get the directional derivative $\nabla L^\top v$ exactly, at roughly the cost
  of one forward pass. The full gradient needs one such pass per parameter direction ($P$
  passes). Using a single random direction per step ("forward gradient") gives an unbiased but
  very noisy gradient estimate whose variance grows with $P$.
- **Zeroth-order / black-box methods.** SPSA, evolution strategies, random search and similar
  methods estimate a descent direction from loss values only. They work for small models or
  non-differentiable objectives but need many evaluations and converge slowly in high
  dimensions.
- **Closed forms and local learning rules.** Some models have an analytic gradient or even an
  analytic optimum (linear or logistic regression), and there are research alternatives that
  train layers with local signals (feedback alignment, greedy layer-wise training,
  forward-forward), typically at a cost in accuracy.

**Why back-propagation wins.** The gradient of a network is a product of Jacobians,
$\frac{\partial L}{\partial \theta_1} = \frac{\partial L}{\partial z_L}
\frac{\partial z_L}{\partial z_{L-1}} \cdots \frac{\partial z_2}{\partial \theta_1}$.
Because the loss is a *scalar*, evaluating this product from the loss side (reverse mode) means
every step multiplies a *vector* by a Jacobian — exactly the vector-Jacobian products our
`backward` methods compute, without ever forming the Jacobians (see Question 1). One backward
pass therefore yields all $P$ partial derivatives, exactly (up to rounding), for a small
constant multiple (roughly 2–3×) of the cost of the forward pass, independent of $P$. Every
alternative above either pays about $P$ times more compute or gives a noisy estimate.

The price of reverse mode is memory: the intermediate values the backward pass needs (layer
inputs, activations, dropout masks) must be kept from the forward pass, which is what our
`grad_cache` does. Techniques such as gradient checkpointing recompute some of them to save
memory. So back-propagation is not *required* for descent-based training, but for deep networks
with millions of parameters it is by far the most efficient way to get an exact gradient, which
is why every practical framework is built on it.
"""

# ==============================================================================
# Part 2: Optimization and Training
# ==============================================================================


def part2_overfit_hp():
    """Hyperparameters for overfitting 20 samples with a 3x128 MLP and VanillaSGD.

    :return: dict with ``wstd`` (init std of every Linear), ``lr`` and ``reg``.
    """
    return dict(wstd=0.1, lr=0.05, reg=0.001)


part2_q1 = r"""
TODO (Part 2)
"""

part2_q2 = r"""
TODO (Part 2)
"""

part2_q3 = r"""
TODO (Part 2)
"""

# ==============================================================================
# Part 3: Binary Classification with Multilayer Perceptrons
# ==============================================================================


def part3_arch_hp():
    """Architecture of the first Part 3 classifier.

    :return: dict with ``n_layers`` (hidden layers), ``hidden_dims`` (units per hidden layer),
        ``activation`` (hidden nonlinearity) and ``out_activation`` (applied to the 2 output
        scores; ``'none'`` because the classifier applies its own softmax).
    """
    return dict(n_layers=3, hidden_dims=32, activation="tanh", out_activation="none")


def part3_optim_hp():
    """Loss and ``torch.optim.SGD`` settings of the first Part 3 classifier.

    :return: dict with ``loss_fn`` (popped by the notebook) and the SGD keyword arguments
        ``lr``, ``weight_decay`` and ``momentum``.
    """
    import torch.nn as nn

    return dict(loss_fn=nn.CrossEntropyLoss(), lr=0.02, weight_decay=1e-4, momentum=0.9)


part3_q1 = r"""
TODO (Part 3)
"""

part3_q2 = r"""
TODO (Part 3)
"""

part3_q3 = r"""
TODO (Part 3)
"""

part3_q4 = r"""
TODO (Part 3)
"""

# ==============================================================================
# Part 4: Convolutional Neural Networks
# ==============================================================================

def part4_optim_hp():
    """Loss and ``torch.optim.SGD`` settings for overfitting a tiny training subset with a
    one-conv CNN (Part 4 sanity check: best train accuracy >= 90% within 25 short epochs).

    :return: dict with ``loss_fn`` (popped by the notebook) and the SGD keyword arguments
        ``lr``, ``weight_decay`` and ``momentum``.
    """
    import torch.nn as nn

    return dict(loss_fn=nn.CrossEntropyLoss(), lr=0.01, weight_decay=1e-4, momentum=0.9)


part4_q1 = r"""
We compare, on a 256-channel input, a **regular block** (two 3×3 convolutions 256→256→256)
with the **bottleneck block** (1×1 256→64, 3×3 64→64, 1×1 64→256). Both add the input back
through an identity shortcut, which has no parameters. Convolutions have biases, as in our
`ResidualBlock`.

**1. Parameters.** A convolution with kernel $k\times k$ from $C_{in}$ to $C_{out}$ channels
holds $k^2 C_{in} C_{out}$ weights and $C_{out}$ biases.

* Regular: $2\,(3^2\cdot 256\cdot 256 + 256) = 2\cdot 590{,}080 = \mathbf{1{,}180{,}160}$.
* Bottleneck: $(256\cdot 64 + 64) + (3^2\cdot 64\cdot 64 + 64) + (64\cdot 256 + 256)
  = 16{,}448 + 36{,}928 + 16{,}640 = \mathbf{70{,}016}$.

Both numbers are what `ResidualBlock(256, [256, 256], [3, 3])` and
`ResidualBottleneckBlock(256, [64], [3])` report in the notebook. The bottleneck needs about
17 times fewer parameters.

**2. Floating point operations.** Every convolution here keeps the spatial size, so each of the
$H\cdot W$ output positions costs one multiply-add per weight. The work is therefore roughly
the parameter count times $HW$: about $1.18\cdot 10^6$ multiply-adds per position for the
regular block against $7\cdot 10^4$ for the bottleneck, again a factor of about 17 (on a 32×32
map: about 1.2 billion against 72 million multiply-adds, as torchinfo counts them). The
activations, the sum with the shortcut and the final ReLU cost $O(C\,HW)$ in both and do not
change the picture. The bottleneck also stores smaller intermediate maps (64 instead of 256
channels), so it needs less memory during the backward pass.

**3. Ability to combine the input.**

* *Spatially (within feature maps).* Two stacked 3×3 convolutions give every output a 5×5
  receptive field, and both of them mix neighbouring positions on all 256 channels. The
  bottleneck has a single 3×3 convolution, so one block only sees a 3×3 neighbourhood, and that
  spatial mixing happens in the narrow 64-channel space; the 1×1 convolutions do not look at
  neighbours at all. Per block, the regular design combines information over a larger area and
  with more capacity; a bottleneck network has to stack more blocks to reach the same
  receptive field (which it can afford, being cheap).
* *Across feature maps.* Every convolution in both blocks combines all of its input channels,
  so both mix channels. The regular block does so at full width twice, with an unconstrained
  256×256 mixing at each tap. The bottleneck spends its first and last layers on pure channel
  mixing (1×1 convolutions), but everything passes through 64 channels: the channel
  combination the main path can represent has rank at most 64, a compression that forces the
  block to keep only the most useful directions. The identity shortcut carries the full
  256-channel input around the bottleneck, so the compression limits what the block *adds*, not
  what reaches the next layer.
"""

# ==============================================================================
# Part 5: Convolutional Architecture Experiments
# ==============================================================================

part5_q1 = r"""
TODO (Part 5)
"""

part5_q2 = r"""
TODO (Part 5)
"""

part5_q3 = r"""
TODO (Part 5)
"""

part5_q4 = r"""
TODO (Part 5)
"""

part5_q5 = r"""
TODO (Part 5)
"""
