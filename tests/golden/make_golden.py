#!/usr/bin/python3
"""Writes cross_entropy_golden.txt: reference losses and gradients from PyTorch.

Run with Debian's python (torch and numpy load only there):
    /usr/bin/python3 tests/golden/make_golden.py
The output depends only on the seed below, so rerunning it reproduces the committed file.

Format: plain text, one case after another, each line a keyword followed by space-separated
values, so that C++ can read it with std::istringstream:

    case <name>                      unique, [A-Za-z0-9_] only
    dtype float32|float64            the precision torch computed in
    shape <batch> <classes>          or just <classes> for unbatched (rank-1) logits
    logits v v ...                   row-major, batch * classes values
    index_targets k k ...            one class id per row (one id when rank-1) ...
    prob_targets v v ...             ... or one probability per logit
    reduction mean|sum|none
    label_smoothing v
    weights v v ...                  one per class; line absent when there are no weights
    ignore_index k                   line absent when there is none
    grad_loss v ...                  upstream dL/dloss; line absent when it is the default 1
    loss v ...                       1 value, or batch values for none (1 value when rank-1)
    grad v v ...                     dL/dlogits, row-major, from autograd
    denominator v                    mean's divisor; 0 for sum and none
    end

Floats are Python repr (shortest string that round-trips; float32 values are printed as the
exact double they widen to), with nan, inf and -inf spelled that way. Lines with no values (an
empty batch) are the keyword alone. Lines starting with '#' are comments.
"""

import os

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20240611
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cross_entropy_golden.txt')
DTYPES = {'float32': (np.float32, torch.float32), 'float64': (np.float64, torch.float64)}

rng = np.random.default_rng(SEED)
cases = []


def fmt(values):
  return ' '.join(repr(float(v)) for v in np.asarray(values, dtype=np.float64).ravel())


def f32_exact(x):
  """Rounds to float32 so that the float32 and float64 runs (and the C++ doubles) agree exactly."""
  return np.asarray(x, dtype=np.float32).astype(np.float64)


def random_logits(shape, scale=3.0):
  return f32_exact(rng.normal(0.0, scale, size=shape))


def random_weights(classes):
  w = f32_exact(rng.uniform(0.2, 2.0, size=classes))
  if classes >= 4:
    w[-1] = 0.0  # a zero weight is legal and must not upset the denominator
  return w


def soft_targets(shape):
  p = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]) if len(shape) == 2 else rng.dirichlet(
      np.ones(shape[-1]))
  return p


def one_hot(ids, classes):
  return np.eye(classes)[np.asarray(ids)]


def add_case(name, dtype, logits, reduction, *, index=None, probs=None, weights=None,
             smoothing=0.0, ignore_index=None, grad_loss=None):
  """Runs torch on one problem and records it."""
  np_t, torch_t = DTYPES[dtype]
  z = torch.tensor(np.asarray(logits, dtype=np_t), dtype=torch_t, requires_grad=True)
  if index is not None:
    target = torch.tensor(np.asarray(index, dtype=np.int64))
  else:
    # Rows are renormalised in the case's dtype so they pass the library's sum-to-1 check.
    p = np.asarray(probs, dtype=np.float64)
    if p.size:
      p = p / p.sum(axis=-1, keepdims=True)
    p = np.asarray(p, dtype=np_t)
    probs = p.astype(np.float64)
    target = torch.tensor(p, dtype=torch_t)
  kwargs = dict(reduction=reduction, label_smoothing=smoothing)
  if weights is not None:
    kwargs['weight'] = torch.tensor(np.asarray(weights, dtype=np_t), dtype=torch_t)
  if ignore_index is not None:
    kwargs['ignore_index'] = ignore_index
  loss = F.cross_entropy(z, target, **kwargs)
  if grad_loss is None:
    upstream = torch.ones_like(loss)
  else:
    upstream = torch.tensor(np.asarray(grad_loss, dtype=np_t), dtype=torch_t).reshape(loss.shape)
  loss.backward(upstream)
  grad = z.grad if z.grad is not None else torch.zeros_like(z)

  # MEAN's divisor, computed in float64 from the (float32-exact) inputs.
  denominator = 0.0
  if reduction == 'mean':
    if index is not None:
      ids = np.atleast_1d(np.asarray(index))
      w = np.ones(z.shape[-1]) if weights is None else np.asarray(weights, dtype=np.float64)
      kept = ids[ids != ignore_index] if ignore_index is not None else ids
      denominator = float(w[kept].sum())
    else:
      denominator = float(z.shape[0]) if z.dim() == 2 else 1.0

  lines = [f'case {name}', f'dtype {dtype}', 'shape ' + ' '.join(str(d) for d in z.shape),
           'logits ' + fmt(z.detach().numpy())]
  if index is not None:
    lines.append('index_targets ' + ' '.join(str(int(k)) for k in np.atleast_1d(index)))
  else:
    lines.append('prob_targets ' + fmt(probs))
  lines += [f'reduction {reduction}', f'label_smoothing {smoothing!r}']
  if weights is not None:
    lines.append('weights ' + fmt(weights))
  if ignore_index is not None:
    lines.append(f'ignore_index {ignore_index}')
  if grad_loss is not None:
    lines.append('grad_loss ' + fmt(upstream.detach().numpy()))
  lines += ['loss ' + fmt(loss.detach().numpy()), 'grad ' + fmt(grad.numpy()),
            f'denominator {denominator!r}', 'end']
  assert name not in (c[0] for c in cases), name
  cases.append((name, '\n'.join(line.rstrip() for line in lines)))


def index_targets(batch, classes, weights, ignore_index):
  """Random ids; with ignore_index about a third of the rows are ignored, but never all of them,
  and the kept rows have a positive weight sum (degenerate sums get their own cases)."""
  while True:
    ids = rng.integers(0, classes, size=batch)
    if ignore_index is not None:
      ids[rng.random(batch) < 0.34] = ignore_index
    kept = ids[ids != ignore_index] if ignore_index is not None else ids
    w = np.ones(classes) if weights is None else weights
    if ignore_index is not None and len(kept) == batch:
      continue
    if len(kept) and w[kept].sum() > 0:
      return ids


# Every option combination: targets x reduction x weights x smoothing x ignore_index x dtype.
SHAPES = [(5, 4), (6, 7), (4, 3), (3, 5), (6, 2), (2, 6)]
shape_counter = 0
for target_kind in ('index', 'onehot', 'soft'):
  for reduction in ('mean', 'sum', 'none'):
    for weighted in (False, True):
      for smoothing in (0.0, 0.1):
        for ignored in ((False, True) if target_kind == 'index' else (False,)):
          for dtype in DTYPES:
            batch, classes = SHAPES[shape_counter % len(SHAPES)]
            shape_counter += 1
            logits = random_logits((batch, classes))
            weights = random_weights(classes) if weighted else None
            ignore_index = -100 if ignored else None
            name = '_'.join([target_kind, reduction, 'weights' if weighted else 'noweights',
                             'ls0p1' if smoothing else 'ls0',
                             'ignore' if ignored else 'noignore', dtype])
            if target_kind == 'index':
              add_case(name, dtype, logits, reduction, smoothing=smoothing, weights=weights,
                       ignore_index=ignore_index,
                       index=index_targets(batch, classes, weights, ignore_index))
            elif target_kind == 'onehot':
              add_case(name, dtype, logits, reduction, smoothing=smoothing, weights=weights,
                       probs=one_hot(rng.integers(0, classes, size=batch), classes))
            else:
              add_case(name, dtype, logits, reduction, smoothing=smoothing, weights=weights,
                       probs=soft_targets((batch, classes)))

# ignore_index may also be a real class: rows labelled with it are ignored, the class itself is
# still a softmax output and still smoothed into.
for reduction in ('mean', 'sum', 'none'):
  for dtype in DTYPES:
    weights = random_weights(5)
    add_case(f'index_{reduction}_ignore_in_range_{dtype}', dtype, random_logits((6, 5)),
             reduction, index=[0, 2, 2, 1, 4, 2], weights=weights, smoothing=0.1, ignore_index=2)

# Unbatched rank-1 logits: the loss is a scalar for every reduction, none included.
for reduction in ('mean', 'sum', 'none'):
  for dtype in DTYPES:
    for weighted in (False, True):
      tag = 'weights' if weighted else 'noweights'
      weights = random_weights(5) if weighted else None
      add_case(f'rank1_index_{reduction}_{tag}_{dtype}', dtype, random_logits(5), reduction,
               index=np.int64(1), weights=weights, smoothing=0.1)
      add_case(f'rank1_soft_{reduction}_{tag}_{dtype}', dtype, random_logits(5), reduction,
               probs=soft_targets((5,)), weights=weights, smoothing=0.1)
    add_case(f'rank1_index_{reduction}_ignored_{dtype}', dtype, random_logits(4), reduction,
             index=np.int64(3), ignore_index=3)

# A batch of 0 rows: mean is 0/0 = NaN, sum is 0, none is empty; the gradient is empty.
for reduction in ('mean', 'sum', 'none'):
  for dtype in DTYPES:
    add_case(f'empty_index_{reduction}_{dtype}', dtype, np.zeros((0, 4)), reduction,
             index=np.zeros(0, dtype=np.int64))
    add_case(f'empty_index_{reduction}_weights_ls0p1_{dtype}', dtype, np.zeros((0, 4)),
             reduction, index=np.zeros(0, dtype=np.int64), weights=random_weights(4),
             smoothing=0.1, ignore_index=-100)
    add_case(f'empty_soft_{reduction}_{dtype}', dtype, np.zeros((0, 4)), reduction,
             probs=np.zeros((0, 4)))

# Mean with every row ignored: the loss is NaN, the gradient zero.
for dtype in DTYPES:
  for weighted in (False, True):
    for smoothing in (0.0, 0.1):
      tag = ('weights' if weighted else 'noweights') + ('_ls0p1' if smoothing else '_ls0')
      add_case(f'all_ignored_mean_{tag}_{dtype}', dtype, random_logits((4, 3)), 'mean',
               index=[-100] * 4, weights=random_weights(3) if weighted else None,
               smoothing=smoothing, ignore_index=-100)
  add_case(f'all_ignored_sum_{dtype}', dtype, random_logits((3, 3)), 'sum', index=[-100] * 3,
           smoothing=0.1, ignore_index=-100)

# Mean with a zero weight sum over the non-ignored rows: NaN loss and NaN rows, zero ignored rows.
# Sum and none with the same zero weights stay finite.
for dtype in DTYPES:
  weights = np.array([0.0, 1.5, 0.0, 0.75])
  ids = [0, 1, 2, 0, 1]  # class 1 rows are ignored, the others weigh 0
  for smoothing in (0.0, 0.1):
    tag = 'ls0p1' if smoothing else 'ls0'
    for reduction in ('mean', 'sum', 'none'):
      add_case(f'zero_weight_sum_{reduction}_{tag}_{dtype}', dtype, random_logits((5, 4)),
               reduction, index=ids, weights=weights, smoothing=smoothing, ignore_index=1)
  add_case(f'zero_weight_sum_noignore_mean_{dtype}', dtype, random_logits((3, 4)), 'mean',
           index=[0, 2, 0], weights=weights)

# Extreme logits: softmax must be shifted by the row maximum; probabilities underflow to 0.
extremes = {
    'pm1e4': np.array([[1e4, -1e4, 0.0, 1e4], [-1e4, -1e4, -1e4, 1e4], [1e4, 1e4, 1e4, 1e4]]),
    'equal_rows': np.array([[3.5] * 4, [-7.25] * 4, [0.0] * 4]),
    'span1e3': np.array([[-500.0, 0.0, 250.0, 500.0], [1000.0, 0.0, 1.0, -2.0],
                         [-1000.0, -999.0, 0.0, -1.0]]),
    'zero_120': np.array([[0.0, 120.0], [120.0, 0.0], [0.0, 120.0]]),
}
for tag, logits in extremes.items():
  batch, classes = logits.shape
  for dtype in DTYPES:
    for reduction in ('mean', 'sum', 'none'):
      # Target class 0 is (often) the one whose probability underflows.
      add_case(f'extreme_{tag}_index_{reduction}_{dtype}', dtype, logits, reduction,
               index=np.zeros(batch, dtype=np.int64))
    add_case(f'extreme_{tag}_index_weights_ls0p1_mean_{dtype}', dtype, logits, 'mean',
             index=np.arange(batch) % classes, weights=random_weights(classes), smoothing=0.1)
    add_case(f'extreme_{tag}_onehot_sum_{dtype}', dtype, logits, 'sum',
             probs=one_hot(np.zeros(batch, dtype=np.int64), classes))
    add_case(f'extreme_{tag}_soft_ls0p1_none_{dtype}', dtype, logits, 'none',
             probs=soft_targets((batch, classes)), smoothing=0.1)

# A non-default upstream gradient: a scalar for mean and sum, one value per row for none.
for dtype in DTYPES:
  for reduction in ('mean', 'sum', 'none'):
    batch, classes = 4, 5
    grad_loss = f32_exact(rng.uniform(-2.0, 2.0, size=batch if reduction == 'none' else 1))
    weights = random_weights(classes)
    add_case(f'grad_loss_index_{reduction}_{dtype}', dtype, random_logits((batch, classes)),
             reduction, index=[0, -100, 3, 1], weights=weights, smoothing=0.1,
             ignore_index=-100, grad_loss=grad_loss)
    add_case(f'grad_loss_soft_{reduction}_{dtype}', dtype, random_logits((batch, classes)),
             reduction, probs=soft_targets((batch, classes)), weights=weights, smoothing=0.1,
             grad_loss=grad_loss)
  add_case(f'grad_loss_rank1_none_{dtype}', dtype, random_logits(4), 'none', index=np.int64(2),
           smoothing=0.1, grad_loss=f32_exact([-1.5]))

with open(OUT, 'w') as f:
  f.write(f'# Generated by make_golden.py (seed {SEED}, torch {torch.__version__}); '
          'do not edit.\n')
  f.write(f'# {len(cases)} cases.\n')
  for _, text in cases:
    f.write(text + '\n')
print(f'wrote {len(cases)} cases to {OUT}')
