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


def part2_overfit_hp(dataset=None):
    """Hyperparameters for overfitting 20 samples with a 3x128 MLP and VanillaSGD.

    Chosen for CIFAR-10-sized inputs (3072 values in [0, 1]); checked on the CIFAR-shaped
    ``synthetic`` stand-in (100% train accuracy from epoch 12 of 20). The 8x8 ``digits`` images
    have 48x fewer inputs, so the same init gives much smaller activations and gradients there;
    they get a larger init and step (100% from epoch 5).

    :param dataset: Data set name; default ``$HW2_DATASET``, else ``'cifar10'``.
    :return: dict with ``wstd`` (init std of every Linear), ``lr`` and ``reg``.
    """
    # ====== YOUR CODE: ======
    from hw2.datasets import default_dataset_name

    hp = dict(wstd=0.1, lr=0.05, reg=0.001)
    if (dataset or default_dataset_name()) == "digits":
        hp.update(wstd=0.2, lr=0.1)
    return hp
    # ====== END YOUR CODE ======


def part2_optim_hp():
    """Hyperparameters of the VanillaSGD / MomentumSGD / RMSProp comparison (5x128 MLP).

    :return: dict with ``wstd``, ``reg`` and one learning rate per optimizer:
        ``lr_vanilla``, ``lr_momentum``, ``lr_rmsprop``.
    """
    # ====== YOUR CODE: ======
    return dict(wstd=0.1, reg=0.001, lr_vanilla=0.05, lr_momentum=0.005, lr_rmsprop=0.0002)
    # ====== END YOUR CODE ======


def part2_dropout_hp():
    """Hyperparameters of the dropout experiment (1x400 MLP, MomentumSGD, no L2).

    Small enough a step that the dropout-free model memorises its 400 training samples
    smoothly instead of oscillating.

    :return: dict with ``wstd`` and ``lr``.
    """
    # ====== YOUR CODE: ======
    return dict(wstd=0.1, lr=0.001)
    # ====== END YOUR CODE ======


part2_q1 = r"""
**Where the numbers come from.** `make evidence` repeats this notebook's dropout cells (same
models, hyperparameters, seed and order of random draws, one CPU thread) and writes every
figure below to `results/evidence/part2_dropout_synthetic.json`; the digits comparison is in
`results/evidence/part2_dropout_digits.json`. The data set is **`synthetic`**, the
CIFAR-10-shaped stand-in: we could not download CIFAR-10, so none of this is a CIFAR-10 result.
The model is one hidden layer of 400 units, trained for 30 epochs on 400 samples and evaluated
on 800 (one test sample is $1/8$ of a point).

**1. No dropout vs. dropout.** Broadly what we expected, with one caveat.

- *Without dropout* the network memorises its small training set. Its training accuracy is
  above 99% from epoch 10 (99.25%) and at 100% from epoch 18 on, and the mean training loss
  falls to 0.029. The test set tells another story: the mean test loss is lowest at epoch 6
  (2.88), climbs to 3.39 by epoch 14 and ends at 3.10, while the test accuracy creeps up to
  19.9% (its best, 20.9%, was at epoch 24). A training accuracy 80.1 points above the test
  accuracy, and a test loss that grows while the training loss shrinks, is overfitting, which is
  what this setting was chosen to produce.
- *With $p = 0.4$* training is slower and noisier (95.0% training accuracy after 30 epochs,
  training loss 0.29), because every step trains a different random sub-network and no unit can
  rely on particular partners. The test loss bottoms out at 2.42 (epoch 8) and ends at 2.56,
  well below the 3.10 of the unregularised model: the model is much less over-confident on
  images it has not seen. The final train-test gap shrinks to 74.4 points.
- *The caveat:* the test **accuracy** barely moves: 20.6% with dropout against 19.9% without at
  epoch 30, six test images. Over the last five epochs the two runs wander between 19.6% and
  20.0% (no dropout) and between 19.2% and 20.6% ($p = 0.4$), so the difference is within the
  epoch-to-epoch noise. With 400 samples of a hard, noisy task there is little signal to learn;
  dropout stops the network from fitting noise but cannot create information. On the easier
  `digits` set, with the same settings, the unregularised network overfits much less (final gap
  4.5 points) and there dropout did raise the final test accuracy, from 92.2% to 94.2% with
  $p = 0.4$ (a single run each, so a difference of seven of the 360 test images).

**2. Low ($p=0.4$) vs. high ($p=0.8$) dropout.** With $p = 0.8$ only about
$(1-p)\cdot 400 = 80$ hidden units survive each step, and the survivors are scaled by
$1/(1-p) = 5$, so the signal reaching the output layer is very noisy. The network
*underfits*: after 30 epochs its training accuracy is only 33.2% and its training loss is
still 1.83. Its test loss is the lowest of the three (2.31 at the end, close to the
$\ln 10$ of a uniform guess), but only because its predictions are barely confident at all,
and its test accuracy, 14.2%, is the worst. The low-dropout model sits in between: enough noise
to keep the test loss from growing as it does without dropout, little enough that the network
still learns what the data allows. Dropout is a regulariser with a strength knob: too little
leaves the overfitting, too much turns it into underfitting.
"""

part2_q2 = r"""
**Yes.** Accuracy only asks which class gets the highest score, while the cross-entropy loss
$-\log p_{y}$ also measures *how much* probability the model gives the correct class, and it is
unbounded for confident mistakes. The two can therefore move in opposite directions: in the same
epoch the model can

- move a few borderline samples just across the decision boundary (each becomes correct, so the
  accuracy rises, while its loss changes little), and
- become much more confident on other samples, including some it gets wrong; a wrong prediction
  made with high confidence adds a large $-\log p_y$ to the loss.

<!-- worked example -->
A made-up example with four test samples, showing the probability the model gives to the
correct class:

| | sample 1 | sample 2 | sample 3 | sample 4 | accuracy | mean CE loss |
|---|---|---|---|---|---|---|
| epoch $t$ | 0.30 (wrong) | 0.30 (wrong) | 0.70 | 0.70 | 50% | 0.78 |
| epoch $t+1$ | 0.55 | 0.55 | 0.98 | 0.01 (wrong) | 75% | 1.46 |

(In the "wrong" cells another class gets more probability than the correct one.) The accuracy
rises from 50% to 75% while the loss almost doubles, driven by the single confident mistake,
$-\ln 0.01 \approx 4.6$.
<!-- end of example -->

This happens in practice when a model starts to overfit: its weights grow, its scores become
more extreme, and the few test samples it gets wrong cost more and more. This notebook's dropout
experiment on the **`synthetic`** data set shows it (`results/evidence/part2_dropout_synthetic.json`,
run without dropout): from epoch 6 to epoch 14 the mean test loss rose from 2.88 to 3.39 while
the test accuracy rose from 16.6% to 19.0%.
"""

part2_q3 = r"""
**1. Gradient descent vs. back-propagation.** They solve different problems. *Gradient descent*
is an optimisation algorithm: given the gradient of the loss with respect to the parameters, it
updates the parameters, $\theta \leftarrow \theta - \eta \nabla_\theta L$, and repeats.
*Back-propagation* is an algorithm for *computing* that gradient efficiently: it applies the
chain rule backwards through the computation graph (reverse-mode automatic differentiation),
each block turning the gradient of its output into the gradients of its inputs and parameters,
at a cost comparable to one forward pass. They are independent: gradient descent could use
gradients from another source (an analytic formula, finite differences, forward-mode
differentiation), and back-propagated gradients can feed other optimisers (momentum, RMSProp,
Adam) or other uses (e.g. the gradient of a prediction with respect to the input image).

**2. GD vs. SGD.** Write the training loss as an average over the $N$ samples,
$L(\theta) = \frac{1}{N}\sum_{i=1}^N \ell_i(\theta)$.

- *Gradient used.* GD computes the exact gradient $\nabla L$ over the whole training set at every
  step. SGD uses the gradient over a random mini-batch $B$,
  $g_B = \frac{1}{|B|}\sum_{i \in B}\nabla \ell_i$ (in its original form $|B| = 1$). $g_B$ is an
  *unbiased* estimate of $\nabla L$ ($\mathbb{E}[g_B] = \nabla L$) whose variance shrinks like
  $1/|B|$.
- *Cost per step and number of steps.* A GD step costs a full pass over the data; SGD takes
  $N/|B|$ steps in the same time, one epoch.
- *Trajectory.* With a small enough learning rate GD decreases the training loss at every step
  and moves smoothly and deterministically to a nearby stationary point. SGD's loss curve is
  noisy and not monotone; to converge exactly it needs a decreasing learning rate (otherwise it
  keeps jittering around a minimum within a region whose size grows with $\eta$ and the gradient
  noise).
- *Where it ends up.* GD can stall on plateaus and near saddle points, where the gradient is
  small. SGD's noise helps it escape saddle points and sharp, narrow minima, and tends to lead
  to flatter minima, which often generalise better.
- *Memory and data.* GD needs the whole data set for every step (or a full pass before each
  update); SGD needs one batch at a time and also works on streaming data and with random data
  augmentation, where a "full gradient" is not even defined.

**3. Why SGD dominates in deep learning.**

- *Scale.* Data sets have from hundreds of thousands to billions of samples and models have
  millions of parameters; a single exact gradient is expensive and its activations do not fit
  in memory, while a mini-batch does, and fits GPU parallelism well.
- *Redundancy.* Many samples carry similar information, so a batch of a few hundred samples
  already estimates the gradient well. Spending $N/|B|$ times more computation on one exact step
  improves its direction only a little, whereas SGD makes $N/|B|$ useful steps for the same cost:
  much faster progress per second of compute.
- *Better optima.* The non-convex loss surfaces of deep networks have saddle points and many
  minima; gradient noise helps escape saddles and acts as an implicit regulariser that favours
  flat minima, which usually generalise better.
- *Flexibility.* It works online, with augmentation that creates new samples every epoch, and
  with data sets that grow over time.

**4.A. Is the friend's scheme equivalent to GD?** Yes, up to a constant factor that depends on
how the batch losses are normalised. Differentiation is linear, so the gradient of a sum of
losses is the sum of their gradients. Split the data into disjoint batches $B_1, \dots, B_k$.
If each batch loss is the *sum* of its per-sample losses, then
$$
\nabla_\theta \sum_{j=1}^k \sum_{i \in B_j} \ell_i(\theta)
= \sum_{i=1}^N \nabla_\theta \ell_i(\theta) = N\,\nabla_\theta L(\theta),
$$
exactly the GD gradient times $N$. If each batch loss is the usual batch *mean* and all batches
have the same size $b = N/k$, then
$\sum_j \frac{1}{b}\sum_{i\in B_j}\ell_i = \frac{N}{b}L = kL$, so the gradient is $k\,\nabla L$:
the right direction, and the factor $k$ can be folded into the learning rate (or the sum divided
by $k$). With unequal batch sizes each batch mean must be weighted by $|B_j|/N$ to get $\nabla L$
exactly. The parameters do not change between the forward passes, so every term is evaluated at
the same $\theta$, as in GD. (Layers that behave differently per batch, such as batch
normalisation, which uses batch statistics, would break the exact equivalence.)

**4.B. Why the out-of-memory error?** To run a backward pass, autograd keeps the *computation
graph* of the forward pass together with every intermediate tensor the backward needs (the
activations of every layer, dropout masks, and so on). Because the backward pass is postponed
until all batches are done, the graph and saved activations of *every* batch stay alive:
memory grows linearly with the number of batches processed. Each batch alone fits, but their
accumulated graphs eventually do not. The fix follows from 4.A: call `backward()` on each
batch's loss right after its forward pass and let the gradients *accumulate* in the parameters'
`.grad` (this is gradient accumulation). The graph of each batch is freed right after its
backward pass, so memory stays that of one batch, and the summed gradient is the same.
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
    # ====== YOUR CODE: ======
    return dict(n_layers=3, hidden_dims=32, activation="tanh", out_activation="none")
    # ====== END YOUR CODE ======


def part3_optim_hp():
    """Loss and ``torch.optim.SGD`` settings of the first Part 3 classifier.

    :return: dict with ``loss_fn`` (popped by the notebook) and the SGD keyword arguments
        ``lr``, ``weight_decay`` and ``momentum``.
    """
    # ====== YOUR CODE: ======
    import torch.nn as nn

    return dict(loss_fn=nn.CrossEntropyLoss(), lr=0.02, weight_decay=1e-4, momentum=0.9)
    # ====== END YOUR CODE ======


part3_q1 = r"""
Figures from `results/evidence/part3_classifier.json` (written by `make evidence`, which
repeats this notebook's cells in order on one CPU thread); the architecture-experiment figures
at the end come from `results/evidence/part3_grid.json`.

**1. Optimization error: low.** The training accuracy passes 93% in the fifth epoch and then
stays between 92.9% and 93.9% for the remaining epochs (93.6% at the end), while the training
loss stops decreasing. The k-nearest-neighbours reference estimates the best accuracy any
classifier can reach on the training distribution (the moons overlap because of the noise) at
93.5%, so the optimizer has already found a solution about as good as the training data allows;
more epochs or a different optimizer have nothing left to win.

**2. Generalization error: high**, but not because of overfitting. The final validation
accuracy is 86.5% against 93.6% on the training set, and from the third epoch on the
validation accuracy jumps between 81.2% and 94.1% from one epoch to the next. The gap does not
grow as training goes on and the decision boundary is smooth, which is not what overfitting
looks like. The cause is the way the data was generated: 4000 of the 5333 training samples
(three quarters) come from population 1 (rotated 10°), while the validation set is population
2 only (rotated 50°). The reference cell shows that even the best classifier for the training
distribution reaches only 85.3% on population 2, although 94.1% is possible for a classifier
made for population 2. So the model generalizes as well as its training data lets it; the error
comes from the distribution shift. We would take measures, but ones aimed at the shift rather
than at variance: split the data after shuffling so both sets contain both populations, give
population-2 samples more weight, or at least tune the threshold on the validation set (which
raises the validation accuracy to 93.1%, see Question 2). More regularization would not help.

**3. Approximation error: low.** The decision boundary follows the S-shaped gap between the two
moons with no visible systematic misfit in the training populations, and the training accuracy
matches the estimated optimum. In the architecture experiment, networks of very different
sizes (one to four hidden layers of 8 to 128 units) reach validation accuracies between 91.3%
and 94.7% with their tuned thresholds, against 93.1% here, with no order by size: a richer
model class would not reduce the error either.
"""

part3_q2 = r"""
We expect, and observe, a **higher FNR**. With the threshold at 0.5 the first classifier has,
on the validation set, FNR = 24.5% and FPR = 2.7%, while on the training set both are small
(FNR 7.7%, FPR 4.0%); these rates are in `results/evidence/part3_classifier.json`.

The reason is the data generating process. The training set holds 4000 samples of population 1
(rotated 10°) and only 1333 of population 2 (rotated 50°), so the boundary is fitted mostly to
population 1. The validation set contains population 2 only, whose moons are rotated a further
$50° - 10° = 40°$ counter-clockwise. That rotation carries the middle of the class-1 (lower)
moon, the point $(1, -0.5)$ before rotation, to about $(1.03, 0.45)$, which lies inside the
class-0 (upper) moon of population 1 (its right end is at about $(0.98, 0.17)$ and its
upper-right part near $(0.57, 0.82)$). The model learned to call that area class 0, so many
positive samples of population 2 are labelled negative: false negatives. The decision-boundary
plot shows it: a blue (class 0) tongue reaches into the red points around
$x_1 \in [0.5, 1.2]$, $x_2 \in [0.2, 0.8]$. The class-0 moon of population 2, rotated the same
way, stays mostly in areas the model also assigns to class 0, so few negatives are flagged
positive and the FPR stays low.

This is also why the ROC-selected threshold is so low (0.095): the positive-class
probabilities of population-2 positives are too small, and lowering the threshold trades a
higher FPR (9.4% on the validation set) for a much lower FNR (4.5%).
"""

part3_q3 = r"""
No. The "optimal" point above (closest to $(0, 1)$) implicitly treats a false positive and a
false negative as equally bad. Here their costs differ, and they differ in opposite directions
in the two scenarios. The principled choice is the threshold that minimizes the expected cost
per screened person,

$$\text{cost}(t) = c_{FP}\,(1-\pi)\,\mathrm{FPR}(t) + c_{FN}\,\pi\,\mathrm{FNR}(t),$$

where $\pi$ is the prevalence of the disease. Geometrically this is the point where the ROC
curve touches a line of slope $\frac{c_{FP}(1-\pi)}{c_{FN}\,\pi}$ (lines of equal cost); with
equal costs and balanced classes it reduces to a balanced choice like the one above. Note that
in screening the disease is usually rare ($\pi$ small), which by itself pushes towards fewer
positive predictions.

1. **Symptoms will appear and confirm the disease, and it is not lethal.** A missed patient
   (FN) loses little: they are diagnosed when the symptoms show up and treated cheaply then.
   A false alarm (FP) sends a healthy person to an expensive and risky test. So
   $c_{FP} \gg c_{FN}$ and we choose a point with a **low FPR**, i.e. a higher threshold,
   accepting a lower TPR: the lower-left part of the ROC curve. The screening is still worth
   doing for the positives it catches early with high confidence.

2. **No clear symptoms, and likely death if not caught early.** Now an FN may cost a life,
   which outweighs the price and risk of a follow-up test: $c_{FN} \gg c_{FP}$. We choose a
   point with a **high TPR (low FNR)**, i.e. a low threshold, and accept many more false
   positives: the upper-right part of the curve. In practice: first fix the sensitivity we
   require (very close to one) and, among thresholds that reach it, take the one with the
   lowest FPR,
   since every extra false positive still costs an expensive and risky test, so we do not go
   as far as sending everyone to it.
"""

part3_q4 = r"""
All figures are from our run of the experiment, `results/evidence/part3_grid.json` (test
accuracy with the threshold chosen on the validation set; `make evidence` repeats the
notebook's grid cell in the same order and with the same seed), and, for the first classifier,
`results/evidence/part3_classifier.json`. With 2000 test samples the standard error of an
accuracy near 90% is about $\sqrt{0.9 \cdot 0.1 / 2000} \approx 0.7$ points, so differences of a
few tenths are not meaningful.

**1. Columns (fixed depth, growing width).** Width matters only while it is very small. With
depth 1, two hidden units give a boundary that is almost a straight diagonal line, and 84.0%
test accuracy; a nearly linear boundary cannot follow the interleaved moons. With 8 units the
boundary becomes the S-shaped curve that runs between the moons (90.35%), and 32 or 128 units
draw almost the same curve with the same accuracy (90.25% both). With depth 2 the accuracy is
about 90% at every width (90.7, 90.2, 90.4, 88.85%), and with depth 4 it rises a little from
width 2 to 128 (89.05, 89.9, 90.55, 90.9%). Once the boundary has the right shape, extra width
adds capacity the data cannot use: the wide models do not draw wiggly, overfitted boundaries
(5333 training samples, weight decay), and their accuracy stays just below the estimated best
possible on population 3 (91.3%, the k-nearest-neighbours reference of the classifier file).

**2. Rows (fixed width, growing depth).** Depth helps most when the layers are narrow: with
width 2, going from one to two hidden layers lifts the test accuracy from 84.0% to 90.7%,
because the second layer combines the two tanh features non-linearly and can bend the boundary
into the S shape that one layer of two units cannot. Four layers of width 2 give 89.05%: a chain
of 2-unit layers squeezes everything through two numbers at every step, which likely makes it
harder to train in 10 epochs (it also needed the lowest threshold of its row, 0.145). For width 8
and above, depth changes little: 90.35/90.2/89.9% (width 8), 90.25/90.4/90.55% (width 32) and
90.25/88.85/90.9% (width 128); the decision boundaries in each of these rows look alike.

**3. Equal-size pairs.** The pairs have the same number of hidden units (32 and 128), not the
same number of parameters: 162 vs 258 parameters for depth 1 / width 32 vs depth 4 / width 8,
and 642 vs 3330 for depth 1 / width 128 vs depth 4 / width 32.
- depth=1, width=32: 90.25%; depth=4, width=8: 89.9%.
- depth=1, width=128: 90.25%; depth=4, width=32: 90.55%.

Both differences are within the noise. Depth can make a network more expressive per unit
(composed layers can carve the input space into many more regions than one layer of the same
size), but this problem does not need that: the boundary between the moons is a single smooth
curve that one hidden layer of 32 tanh units already represents well. Spending the units on
depth or on width therefore gives the same decision boundary and the same accuracy here.

**4. Threshold selection.** Every selected threshold is below 0.5 (between 0.097 and 0.371).
Compared with the default 0.5, the selected threshold raised the test accuracy in 10 of the 12
configurations (by +0.05 points for depth 1 / width 32, which is negligible, and by up to +4.75;
the three largest gains are depth-4 models: +4.75 at width 128, +4.3 at width 2 and +4.05 at
width 8), and lowered it slightly in the other two (-0.45 for depth 1 / width 2, -0.10 for
depth 2 / width 32). For the first classifier it raised the **test** accuracy from 86.50% (at
0.5) to 89.35% (at 0.095). That 86.50% is a test accuracy; the 86.5% of Question 1 is the
validation accuracy after the last epoch (86.46%), a different number that happens to round
the same.

It helps because of how the data was generated: the models are trained mostly on population 1
(rotated 10°), the threshold is chosen on population 2 (rotated 50°), and the test set is
population 3 (rotated 40°), which is much closer to population 2 than to population 1. On the
rotated populations the positive samples get too low a class-1 probability (the FN-heavy errors
of Question 2), and a lower threshold corrects much of that; because the validation population
resembles the test population, the correction carries over. It is only a one-number
correction, tuned for a balance of FPR and FNR rather than for accuracy and on a population that
is similar to, not the same as, the test one, so it does not improve every model, as the two
small losses show.
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
    # ====== YOUR CODE: ======
    import torch.nn as nn

    return dict(loss_fn=nn.CrossEntropyLoss(), lr=0.01, weight_decay=1e-4, momentum=0.9)
    # ====== END YOUR CODE ======


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
**What these answers are based on.** CIFAR-10 could not be downloaded on the machine where the
experiments were run (no internet access), so every grid of this part was run with the same
code on **scikit-learn's handwritten digits** instead (1,437 training and 360 test images of
8x8 pixels, 10 classes): `python -m hw2.experiments grid-run all --dataset digits --epochs 20
--batches all --early-stopping 4 -o results/digits`. The result files are in `results/digits/`
and the notebook plots them. Every figure quoted in Questions 1-5 is in a file that
`make evidence` writes into `results/evidence/`, and each answer names its files; here they are
`results/evidence/part5_grids.json` (the numbers of each run of `results/digits/`, with the
file it was read from and that file's checksum) and `results/evidence/part5_probes.json` (the
notebook's measurement on freshly initialised networks). Each configuration was run once,
with seed 42. One test image is 0.28 percentage points, so differences of one point or less are
a few images and should not be over-read. Nothing below is a claim about CIFAR-10.

**1. Effect of depth.** Best test accuracy of the plain CNN (Experiment 1.1):

| L (convolutions) | K=32 | K=64 |
|---|---|---|
| 2 | 96.1% | **97.8%** |
| 4 | 95.0% | 97.2% |
| 8 | 10.3% | 10.0% |
| 16 | 10.3% | 10.0% |

The shallowest network, L=2, was best, L=4 almost as good, and beyond that the network did not
learn at all. For this data set the reason shallow wins is clear: two 3x3 convolutions with a
2x2 pooling after each already see the whole 8x8 digit, so extra layers add little that the
problem needs, while every extra layer makes the optimisation harder. L=4 already shows the
first signs of that: with K=32 its first epoch made no progress (training loss 2.303, test
accuracy 9.7%) before it started to learn. On larger images (CIFAR-10) deeper networks have more
to gain from their larger receptive field and more levels of features, so the best depth would
likely be higher there, but we have not measured it.

**2. Untrainable depths.** L=8 and L=16 (for both K) were not trainable: the mean training loss
of every epoch stayed between 2.302 and 2.307, i.e. at $\ln 10$, the loss of a model that
outputs the same distribution for every image, and the training accuracy never rose above
10.6%. Early stopping ended three of these runs (after 9, 15 and 14 epochs); the fourth,
L=16 with K=64, ran all 20 epochs, because its test loss still dropped by tiny amounts often
enough, while its accuracy stayed at 10.0%. Nothing diverged; the gradient simply carried no
useful signal. The cause is how the signal scales through a stack of Conv -> ReLU layers with
PyTorch's default initialisation (uniform weights of variance $1/(3\,\text{fan\_in})$): each
layer passes on only a constant fraction (roughly $1/6$ in variance) of the input-dependent part
of its input, while its bias adds a constant. After many layers the output hardly depends on
the image, and by the chain rule the gradient reaching the first layers is multiplied by the
same shrinking factors: the **vanishing gradient** problem. The notebook measures this on
freshly initialised networks (K=32, 256 digit images): the spread of the outputs across images
falls from $7.0\cdot10^{-3}$ (L=2) to $1.1\cdot10^{-5}$ (L=8) and $3.0\cdot10^{-9}$ (L=16), and
the gradient norm at the first convolution from $1.6\cdot10^{-2}$ to $2.1\cdot10^{-5}$ and
$2.0\cdot10^{-9}$. Adam rescales each parameter's step, but it cannot recover information about
the input that the forward pass has already lost, so the network settles on predicting the
class frequencies.

Remedies, each of which addresses the shrinking signal directly:
- **Batch normalisation** after the convolutions re-standardises the activations of every layer,
  so their scale no longer decays with depth (and it allows larger learning rates).
- **Skip (residual) connections** give the signal and the gradient a path that bypasses the
  convolutions; Experiment 1.4 shows a ResNet with K=32 and L=16 reaching 95.0% where the plain
  CNN stayed at chance.
- A **variance-preserving initialisation** (He/Kaiming normal with the ReLU gain $\sqrt 2$, zero
  biases) keeps the activation scale roughly constant at the start of training; a short
  learning-rate warm-up or simply fewer layers also help.
"""

part5_q2 = r"""
Data as in Question 1 (digits, not CIFAR-10); figures from `results/evidence/part5_grids.json`.
Best test accuracy of the plain CNN (Experiment 1.2):

| | K=32 | K=64 | K=128 | K=256 |
|---|---|---|---|---|
| L=2 | 96.1% | 97.8% | 97.8% | **99.4%** |
| L=4 | 95.0% | 97.2% | 98.3% | 97.2% |
| L=8 | 10.3% | 10.0% | 10.3% | 10.3% |

(The K=32 and K=64 runs have the same configuration and seed as those of Experiment 1.1 and, run
one after the other in the same process, gave exactly the same numbers.)

**Width helps, when the network trains.** More filters give each layer more feature detectors,
and the wider networks learned faster (test accuracy after the first epoch at L=2: 27.8%, 56.4%,
45.0%, 61.4% for K = 32 ... 256) and fitted the training set more completely (up to 99.5-100%
training accuracy for K >= 128 against 97.6% for K=32). At L=2 the widest network was the best of
the whole experiment. Width also shows its cost: at L=4, K=256 has 1.9 million parameters for
1,437 training images; it reached its best test accuracy (97.2%) at epoch 8 while its training
accuracy kept rising to 99.9%, and early stopping ended it at epoch 17 after four epochs without
a better test loss: overfitting. K=128 beat it there. Between K=64, 128 and 256 most differences
are one to six test images, so only the broad trend is meaningful.

**Width does not fix depth.** At L=8 every width failed exactly like in Experiment 1.1, even
K=256 with 4.2 million parameters. That fits the explanation of Question 1: the default
initialisation scales the weights by the fan-in, so the factor by which each layer shrinks the
signal does not depend on how many channels it has. Compared with Experiment 1.1: within the
range we tried, depth decided *whether* the network could be trained at all, width only *how
well* a trainable network did, and the best plain network was the shallow, wide one (L=2,
K=256).
"""

part5_q3 = r"""
Data as in Question 1 (digits, not CIFAR-10); figures from `results/evidence/part5_grids.json`.
Here the filters grow along the network, 64 -> 128 -> 256 with a pooling after each group, so
the network has $N = 3L$ convolutions:

| L | convolutions | best test accuracy | epochs run (of 20) |
|---|---|---|---|
| 1 | 3 | **98.1%** | 20 |
| 2 | 6 | 92.8% | 20 |
| 3 | 9 | 10.3% | 15 (stopped early) |
| 4 | 12 | 10.0% | 15 (stopped early) |

The growing-width design (few channels at high resolution, more channels as the maps shrink)
worked well at L=1: three convolutions reached 98.1%, better than every network of
Experiment 1.1 (best 97.8%) and than all of Experiment 1.2 but two: the shallow, wide
`exp1_2_L2_K256` (99.4%, five test images more) and `exp1_2_L4_K128` (98.3%, one image more).
But adding depth again hurt and then broke training. L=2 (six convolutions) still trained, but
its first epoch made no progress (training loss 2.305, test accuracy 10.0%) and it ended lower,
at 92.8%; L=3 and L=4 never left chance.

Taken together with Experiments 1.1 and 1.2, the limit is set by the **number of stacked
convolutions**, not by L or the widths as such: 4 convolutions trained (with K=32 after an idle
first epoch), 6 trained slowly, and 8 or more never did, whatever the filters. This is the
vanishing-signal effect of Question 1, which acts per layer. Growing the widths changes what
each layer can represent, but not how strongly each layer attenuates the signal at
initialisation, so it cannot move this limit.
"""

part5_q4 = r"""
Data as in Question 1 (digits, not CIFAR-10); figures from `results/evidence/part5_grids.json`
and, for the measurements at initialisation, `results/evidence/part5_probes.json`. The ResNet
was run **without** batch normalisation or dropout (as the plain CNN), so the only difference is
the skip connections. Each residual block spans the `pool_every` convolutions between two
poolings.

| ResNet run | convolutions | pool_every (= block length) | best test accuracy | plain CNN of the same depth |
|---|---|---|---|---|
| K=32, L=8 | 8 | 3 | 96.1% | 10.3% (Experiment 1.1, L=8) |
| K=32, L=16 | 16 | 6 | 95.0% | 10.3% (Experiment 1.1, L=16) |
| K=32, L=32 | 32 | 11 | 76.9% | (not run; L=8 already failed) |
| K=64-128-256, L=2 | 6 | 2 | 96.1% | 92.8% (Experiment 1.3, L=2) |
| K=64-128-256, L=4 | 12 | 4 | 96.7% | 10.0% (Experiment 1.3, L=4) |
| K=64-128-256, L=8 | 24 | 8 | 85.3% | (not run) |

**Skip connections made depth trainable.** Every configuration learned, including the 12- and
16-convolution networks whose plain counterparts never left chance. A block computes
$y = \mathrm{ReLU}(x + F(x))$, so $\partial y/\partial x$ contains the identity next to
$\partial F/\partial x$: the image information and the gradient travel along the shortcut around
the convolutions instead of being attenuated by each of them. The notebook's measurement at
initialisation shows it: the spread of the outputs across images is between $9.7\cdot10^{-3}$
and $1.1\cdot10^{-2}$ for the ResNets of L=8, 16 and 32, while it falls to $3.0\cdot10^{-9}$ for
the plain L=16 CNN. With growing widths (compare Experiment 1.3) the ResNet at L=2 also learned
faster (43.1% test accuracy after the first epoch, against 10.0% for the plain network) and
ended higher (96.1% against 92.8%).

**Depth was still not free.** The deepest runs, K=32 with L=32 and K=64-128-256 with L=8,
trained slowly: their best test accuracy came in the last of their 20 epochs, with training
accuracies of only 77.7% and 88.5%, and they reached 76.9% and 85.3%. The reason is the block
length: to keep the 8x8 (or 32x32) maps from shrinking to nothing we pool at most three times,
and in this ResNet a block ends at each pooling, so those networks have blocks of 11 and 8
convolutions. *Inside* a block the main path is a plain stack without normalisation, which
attenuates its signal just like the plain CNN (the gradient at the first convolution of the L=32
ResNet is $1.8\cdot10^{-6}$ at initialisation), so those blocks start out as little more than
their shortcut and their convolutions learn slowly. Short blocks with normalisation inside
remove that limitation, which is what `YourCNN` does (Question 5). On this small data set none of
the ResNets beat the best shallow plain networks (97.8-99.4%); their benefit here is that depth
stops breaking training.
"""

part5_q5 = r"""
**1. What `YourCNN` changes** (see the docstring and printout of `hw2.cnn.YourCNN`; the
constructor is the one of `CNN`, plus `dropout=0.1` and `block_size=2`):

- **Short pre-activation residual blocks.** The first convolution is a plain stem; every further
  convolution belongs to a residual block of at most two convolutions,
  `BN -> ReLU -> Conv -> BN -> ReLU -> [Dropout] -> Conv`, whose output is added to the block's
  input (through a bias-free 1x1 convolution when the number of channels changes), with nothing
  applied after the sum. The chain of shortcuts is a path from the classifier to the stem that
  is an identity except for the 1x1 projections where the width changes, so neither the signal
  nor the gradient has to pass through more than two 3x3 convolutions in a row. This removes the limitation of the course ResNet seen in Question 4,
  whose blocks had to be as long as the distance between poolings.
- **Batch normalisation before every convolution of the blocks** keeps the scale of the
  activations fixed at every depth, independently of the initialisation, which also tolerates
  larger learning rates. The convolutions have no bias because the following normalisation
  would cancel it.
- **Dropout** inside each block and before the classifier, against overfitting of the larger
  configurations.
- **Global average pooling** before the classifier: its input is one value per channel, so the
  first fully connected layer is small and the same for any image size.
- **A pooling schedule that cannot fail:** a pooling layer that would reduce the maps below 2x2
  is left out, so every depth is a valid network for any input size.

**2. Results of Experiment 2** (digits, same settings and caveats as Question 1; figures from
`results/evidence/part5_grids.json` and `results/evidence/part5_bn_ablation.json`). With
K=32-64-128 the network has $3L$ 3x3 convolutions: the stem and $3L - 1$ in the residual blocks
(plus the 1x1 shortcut projections where the width changes).

| L | 3x3 convolutions | best test accuracy | epochs run (early stopping) | first-epoch training loss |
|---|---|---|---|---|
| 3 | 9 | **99.4%** | 11 | 1.82 |
| 6 | 18 | **99.4%** | 8 | 1.87 |
| 9 | 27 | **99.4%** | 16 | 1.84 |
| 12 | 36 | 98.6% | 10 | 1.87 |

Every depth trained, quickly and to the top of what we measured anywhere. Compared with
Experiment 1: the plain CNN could not be trained with 8 or more convolutions (Questions 1-3), and
the course ResNet trained at 24-32 convolutions only slowly (76.9-85.3% after 20 epochs), while
`YourCNN` trained 36 convolutions to 98.6% and early stopping ended it after 10 epochs, once its
test loss had stopped improving. Its first epoch is also far more effective: a mean training
loss between 1.82 and 1.87, where every network of Experiment 1 was between 2.09 and 2.31.

How much of that is batch normalisation? The ablation trains `YourCNN` twice with the same seed,
data order and settings, once as built and once with every batch normalisation replaced by an
identity. At L=3 the first-epoch training loss is 1.82 with and 2.28 without it, the best test
accuracy 99.7% against 97.2%, and the network with normalisation stopped early after 16 epochs
while the one without was still improving at epoch 20; at L=6: 1.88 against 2.29, 98.9%
against 96.9%, 9 against 17 epochs. So the fast start and the extra points do come from the
normalisation; the residual structure alone, without it, still trains 18 convolutions, but
slowly.

Its best accuracy in the grid, 99.4% (two mistakes out of 360), equals the best run of
Experiment 1 (the shallow, wide plain CNN `exp1_2_L2_K256`), so on this easy data set the benefit
of the architecture is robustness and speed of training, not a higher ceiling; to see whether it
also raises the accuracy, the grid has to be run on CIFAR-10 (`python -m hw2.experiments
grid-run exp2`). Single runs are also not exact to the image: the ablation's batch-normalised
L=3 network has the configuration, seed and settings of `exp2_L3_K32-64-128` but reached 99.7%
instead of 99.4%: the two runs are not bit-identical, and training amplifies tiny
floating-point differences, so differences of an image or two between single runs are noise.

Two observations from the files that are easy to misread: the test accuracy after the first
epoch is 10.0% in all four runs and jumps afterwards. That is batch normalisation's running
statistics, which the model uses in evaluation mode: after only 12 training steps they do not
yet match the activations, so the first evaluation is poor although training is going well. The
ablation supports this: without normalisation the first-epoch test accuracy is 43.6% (L=3) and
26.9% (L=6). And early stopping watches the test loss, so the reported best test accuracy is
slightly optimistic for every run of this part; a separate validation split would remove that
bias.
"""
