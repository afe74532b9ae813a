#!/usr/bin/python3
"""Writes half_golden.txt: half-precision cross-entropy references from PyTorch.

Run with Debian's python (torch and numpy load only there):
    /usr/bin/python3 tests/golden/make_golden_half.py
The output depends only on the seed below, so rerunning it reproduces the committed file.

Every input (logits, probability targets, grad_loss) is first rounded to the case's dtype, float16
or bfloat16, as the server rounds `values`; class weights are multiples of 1/8, exact in both. Two
references per case:
  - `*_ref`: torch in float64 on those rounded inputs: what the API's error bound is measured
    against, (max(1e-5, 0.1*classes*2^-24) + u) * max(1, max|ref|);
  - `*_torch`: what PyTorch itself answers in the half type. bfloat16 runs natively on the CPU
    (torch.bfloat16 cross_entropy + autograd). This torch's CPU kernels do not implement
    float16 softmax / log_softmax ("not implemented for 'Half'"), so for float16 it is torch in
    float32 on the rounded inputs, each output rounded to float16: how PyTorch computes float16
    on the GPU.

Format: as make_golden.py's (keyword lines, `end` closes a case), with these keys:
    case, dtype float16|bfloat16, shape, logits, index_targets | prob_targets, reduction,
    label_smoothing, weights (optional), ignore_index (optional), grad_loss (optional),
    probs_ref (softmax), loss_ref, grad_ref, denominator, loss_torch, grad_torch
Inputs and half results are Python repr (exact); float64 references have 12 significant digits.
"""

import os

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20261130
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'half_golden.txt')
TORCH = {'float16': torch.float16, 'bfloat16': torch.bfloat16}

rng = np.random.default_rng(SEED)
cases = []


def fmt(values):
  return ' '.join(repr(float(v)) for v in np.asarray(values, dtype=np.float64).ravel())


def fmt_ref(values):
  """12 significant digits: far finer than any half-precision bound."""
  return ' '.join('%.12g' % v for v in np.asarray(values, dtype=np.float64).ravel())


def rounded(x, dtype):
  """x rounded to the half type (round to nearest even), as float64."""
  t = torch.tensor(np.asarray(x, dtype=np.float64), dtype=torch.float64)
  return t.to(TORCH[dtype]).to(torch.float64).numpy()


def run(dtype_in, z, target, weights, kwargs, grad_loss):
  z = z.clone().requires_grad_(True)
  if weights is not None:
    kwargs = dict(kwargs, weight=weights)
  loss = F.cross_entropy(z, target, **kwargs)
  upstream = torch.ones_like(loss) if grad_loss is None else grad_loss.reshape(loss.shape)
  loss.backward(upstream)
  grad = z.grad if z.grad is not None else torch.zeros_like(z)
  return loss.detach(), grad


def add_case(name, dtype, logits, reduction, *, index=None, probs=None, weights=None,
             smoothing=0.0, ignore_index=None, grad_loss=None):
  z = rounded(logits, dtype)
  if probs is not None:
    p = np.asarray(probs, dtype=np.float64)
    p = rounded(p / p.sum(axis=-1, keepdims=True), dtype)
  g = None if grad_loss is None else rounded(grad_loss, dtype)
  kwargs = dict(reduction=reduction, label_smoothing=smoothing)
  if ignore_index is not None:
    kwargs['ignore_index'] = ignore_index

  def tensors(torch_dtype):
    target = (torch.tensor(np.asarray(index, dtype=np.int64)) if index is not None
              else torch.tensor(p, dtype=torch_dtype))
    w = None if weights is None else torch.tensor(weights, dtype=torch_dtype)
    up = None if g is None else torch.tensor(g, dtype=torch_dtype)
    return torch.tensor(z, dtype=torch_dtype), target, w, up

  zr, t, w, up = tensors(torch.float64)
  loss_ref, grad_ref = run(torch.float64, zr, t, w, kwargs, up)
  probs_ref = torch.softmax(zr, dim=-1)
  if dtype == 'bfloat16':
    zt, t, w, up = tensors(torch.bfloat16)
    loss_t, grad_t = run(torch.bfloat16, zt, t, w, kwargs, up)
  else:
    zt, t, w, up = tensors(torch.float32)
    loss_t, grad_t = run(torch.float32, zt, t, w, kwargs, up)
    loss_t, grad_t = loss_t.to(torch.float16), grad_t.to(torch.float16)

  denominator = 0.0
  if reduction == 'mean':
    if index is not None:
      ids = np.atleast_1d(np.asarray(index))
      wv = np.ones(z.shape[-1]) if weights is None else np.asarray(weights)
      kept = ids[ids != ignore_index] if ignore_index is not None else ids
      denominator = float(wv[kept].sum())
    else:
      denominator = float(z.shape[0]) if z.ndim == 2 else 1.0

  lines = [f'case {name}', f'dtype {dtype}', 'shape ' + ' '.join(str(d) for d in z.shape),
           'logits ' + fmt(z)]
  if index is not None:
    lines.append('index_targets ' + ' '.join(str(int(k)) for k in np.atleast_1d(index)))
  else:
    lines.append('prob_targets ' + fmt(p))
  lines += [f'reduction {reduction}', f'label_smoothing {smoothing!r}']
  if weights is not None:
    lines.append('weights ' + fmt(weights))
  if ignore_index is not None:
    lines.append(f'ignore_index {ignore_index}')
  if g is not None:
    lines.append('grad_loss ' + fmt(g))
  lines += ['probs_ref ' + fmt_ref(probs_ref.numpy()), 'loss_ref ' + fmt_ref(loss_ref.numpy()),
            'grad_ref ' + fmt_ref(grad_ref.numpy()), f'denominator {denominator!r}',
            'loss_torch ' + fmt(loss_t.to(torch.float64).numpy()),
            'grad_torch ' + fmt(grad_t.to(torch.float64).numpy()), 'end']
  assert name not in (c[0] for c in cases), name
  cases.append((name, '\n'.join(line.rstrip() for line in lines)))


def weights_for(classes):
  return rng.integers(1, 17, size=classes) / 8.0  # exact in float16 and bfloat16


SHAPES = [(5, 4), (6, 7), (3, 5), (8, 12), (2, 40), (12, 6)]
k = 0
for dtype in TORCH:
  for kind in ('index', 'soft'):
    for reduction in ('mean', 'sum', 'none'):
      for weighted in (False, True):
        for smoothing in (0.0, 0.1):
          for ignored in ((False, True) if kind == 'index' else (False,)):
            batch, classes = SHAPES[k % len(SHAPES)]
            k += 1
            logits = rng.normal(0.0, 3.0, size=(batch, classes))
            weights = weights_for(classes) if weighted else None
            name = '_'.join([kind, reduction, 'weights' if weighted else 'noweights',
                             'ls0p1' if smoothing else 'ls0', 'ignore' if ignored else 'noignore',
                             dtype])
            grad_loss = (rng.uniform(-2, 2, size=batch if reduction == 'none' else 1)
                         if k % 3 == 0 else None)
            if kind == 'index':
              ids = rng.integers(0, classes, size=batch)
              if ignored:
                ids[::3] = -100
              add_case(name, dtype, logits, reduction, index=ids, weights=weights,
                       smoothing=smoothing, ignore_index=-100 if ignored else None,
                       grad_loss=grad_loss)
            else:
              add_case(name, dtype, logits, reduction,
                       probs=rng.dirichlet(np.ones(classes), size=batch), weights=weights,
                       smoothing=smoothing, grad_loss=grad_loss)
  # Wide logits (float16's range tops out at 65504; bfloat16 shares float32's) and rank-1.
  wide = np.array([[60000.0, -60000.0, 0.0, 60000.0], [-3e4, -3e4, 1e4, 2e4], [0.0, 12.0, -12.0, 3.0]])
  for reduction in ('mean', 'sum', 'none'):
    add_case(f'wide_index_{reduction}_{dtype}', dtype, wide, reduction, index=np.array([0, 2, 1]),
             smoothing=0.1)
    add_case(f'rank1_index_{reduction}_{dtype}', dtype, rng.normal(0, 3, size=6), reduction,
             index=np.int64(2), weights=weights_for(6), smoothing=0.1)
  add_case(f'all_ignored_mean_{dtype}', dtype, rng.normal(0, 3, size=(4, 3)), 'mean',
           index=np.array([-100] * 4), ignore_index=-100)

with open(OUT, 'w') as f:
  f.write(f'# Generated by make_golden_half.py (seed {SEED}, torch {torch.__version__}); '
          'do not edit.\n')
  f.write(f'# {len(cases)} cases.\n')
  for _, text in cases:
    f.write(text + '\n')
print(f'wrote {len(cases)} cases to {OUT}')
