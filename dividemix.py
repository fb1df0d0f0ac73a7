"""DivideMix (Li, Socher, Hoi, ICLR 2020): the algorithm, written once for every dataset.

Equation numbers refer to the paper; "Alg. 1" to its Algorithm 1. Shapes: B labeled and U
unlabeled images per mini-batch, C classes. Where the authors' code does something the paper does
not say, the code's behaviour is kept (their hyperparameters were tuned with it) and marked.

  co-divide      per_sample_loss -> normalise -> gmm_clean_prob      (Eq. 1, Alg. 1 lines 4-8)
  warm-up        warmup_epoch (CE, plus the confidence penalty Eq. 2 where asked)
  SSL            ssl_epoch -> mixmatch_batch: co_guess (Alg. 1 line 21), co_refine (Eq. 3-4),
                 mixmatch (Eq. 5-8); dividemix_loss: Lx (Eq. 9), Lu (Eq. 10), uniform prior
                 (Eq. 11), total (Eq. 12)
  test           test_ensemble (sum of the two networks' logits)
"""
import collections
import contextlib
import sys
import warnings

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture

from run_utils import CUDAGraphStep, distributed


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says what happened."""


# ---------------------------------------------------------------- equations ------------------

def sharpen(p, T):
    """Eq. (4): temperature sharpening of each row of p (N, C)."""
    p = p ** (1 / T)
    return p / p.sum(dim=1, keepdim=True)


def co_refine(net, x1, x2, labels_onehot, clean_prob, T):
    """Eq. (3)-(4) label co-refinement: blend the noisy label with the trained network's mean
    prediction over two views, weighted by the clean probability w from the *other* network's
    GMM, then sharpen. labels_onehot (B, C), clean_prob (B,) -> targets (B, C)."""
    with torch.no_grad():
        p = (F.softmax(net(x1), dim=1) + F.softmax(net(x2), dim=1)) / 2
        w = clean_prob.view(-1, 1).float()
        return sharpen(w * labels_onehot + (1 - w) * p, T)


def co_guess(net, partner, u1, u2, T):
    """Alg. 1 lines 21-23 label co-guessing: mean of four softmaxes (both networks, both views),
    then sharpen (Eq. 4). u1, u2 (U, ...) -> targets (U, C). With partner=None (ablations
    without co-training) the network guesses alone, as in the original MixMatch."""
    with torch.no_grad():
        p = F.softmax(net(u1), dim=1) + F.softmax(net(u2), dim=1)
        if partner is None:
            return sharpen(p / 2, T)
        # The partner is in eval mode, so each row's output is independent of the batch: both
        # views go through it in one call (the trained net's BatchNorm sees them separately).
        p = p + F.softmax(partner(torch.cat([u1, u2])), dim=1).view(2, len(u1), -1).sum(0)
        return sharpen(p / 4, T)


def draw_mix(batch_size, alpha, device):
    """The random draws of Eq. (5)-(6) for one mini-batch: lambda ~ Beta(alpha, alpha),
    lambda' = max(lambda, 1-lambda), and one random permutation of the batch's rows."""
    lam = np.random.beta(alpha, alpha)
    return max(lam, 1 - lam), torch.randperm(batch_size, device=device)


def mixmatch(inputs, targets, alpha, mix=None):
    """Eq. (5)-(8): each row mixed with a row of one random permutation of the whole batch
    (a row may be paired with itself, as in the authors' code), with one lambda' per
    mini-batch. `mix` = (lambda', permutation) from draw_mix (drawn here when None).
    Returns mixed inputs and targets."""
    lam, idx = mix if mix is not None else draw_mix(inputs.size(0), alpha, inputs.device)
    return (lam * inputs + (1 - lam) * inputs[idx],
            lam * targets + (1 - lam) * targets[idx])


def labeled_loss(logits, targets):
    """Eq. (9) Lx: cross-entropy with soft targets, mean over rows."""
    return -torch.mean(torch.sum(F.log_softmax(logits, dim=1) * targets, dim=1))


def unlabeled_loss(logits, targets):
    """Eq. (10) Lu: squared error between softmax and target. The authors' code averages over
    rows *and* classes (an extra 1/C against the paper's formula); Table 7's lambda_u values were
    tuned with that, so it is kept."""
    return torch.mean((F.softmax(logits, dim=1) - targets) ** 2)


def uniform_prior_penalty(logits):
    """Eq. (11): KL(pi || mean prediction) with the uniform prior pi_c = 1/C, over all rows."""
    num_class = logits.size(1)
    prior = torch.full((num_class,), 1.0 / num_class, device=logits.device)
    mean_pred = F.softmax(logits, dim=1).mean(0)
    return torch.sum(prior * torch.log(prior / mean_pred))


def negative_entropy(logits):
    """Confidence penalty, minus Eq. (2): mean over rows of sum_c p_c log p_c. Adding it to the
    warm-up loss maximises entropy, so asymmetric noise is not memorised before co-divide."""
    p = F.softmax(logits, dim=1)
    return torch.mean(torch.sum(p * F.log_softmax(logits, dim=1), dim=1))


def linear_rampup(current, warm_up, rampup_epochs, lambda_u):
    """Weight of Lu: 0 at the end of warm-up, lambda_u `rampup_epochs` later (authors' code: 16;
    not in the paper). `current` is the fractional epoch."""
    return lambda_u * float(np.clip((current - warm_up) / rampup_epochs, 0.0, 1.0))


# ---------------------------------------------------------------- co-divide ------------------

def _all_reduce(tensor, op):
    """Combine a tensor over all processes under torch.distributed (no-op otherwise)."""
    if distributed()[1] > 1:
        dist.all_reduce(tensor, op=op)
    return tensor


def per_sample_loss(net, eval_loader, num_samples, device):
    """Eq. (1): CE of every training sample against its noisy label, eval mode, no
    augmentation. The loader yields (img, label, index); losses are written back by index in
    one op per batch. Under torch.distributed each process fills its shard and a max-reduce
    (losses are >= 0, unfilled slots 0) gives every process the whole vector."""
    net.eval()
    losses = torch.zeros(num_samples, device=device)
    with torch.inference_mode():
        for inputs, labels, index in eval_loader:
            logits = net(inputs.to(device))
            losses[index.to(device)] = F.cross_entropy(logits.float(), labels.to(device),
                                                       reduction='none')
    return _all_reduce(losses, dist.ReduceOp.MAX).cpu()


def normalise(losses):
    """Min-max normalisation to [0, 1] (authors' code). Equal losses give zeros, not 0/0."""
    span = losses.max() - losses.min()
    return (losses - losses.min()) / span if span > 0 else torch.zeros_like(losses)


def gmm_clean_prob(loss_history, random_state, max_iter=10, tol=1e-2, reg_covar=5e-4):
    """Fit a 2-component GMM to the mean of the normalised loss vectors in `loss_history`
    (the last few epochs; one entry = the current epoch only) and return the posterior of the
    lower-mean component: the probability w_i that sample i is clean (Sec. 3.1)."""
    # float64 (the authors pass float32; the posteriors differ at the 1e-7 level)
    x = torch.stack(list(loss_history)).mean(0).double().numpy().reshape(-1, 1)
    gmm = GaussianMixture(n_components=2, max_iter=max_iter, tol=tol, reg_covar=reg_covar,
                          random_state=random_state)
    with warnings.catch_warnings():  # max_iter=10 stops early on purpose, as in the authors' code
        warnings.simplefilter('ignore', ConvergenceWarning)
        gmm.fit(x)
    return gmm.predict_proba(x)[:, gmm.means_.argmin()], gmm


Division = collections.namedtuple('Division', 'clean_prob loss gmm')


def co_divide(net, eval_loader, loss_history, history_len, device, **gmm_kwargs):
    """One network's half of co-divide: per-sample loss, normalise, append to its history
    (keeping the last `history_len`), GMM. Returns a Division: the clean probabilities (N,)
    as numpy, the loss the GMM was fitted on and the fitted GMM (for the run's figures).
    The GMM seed comes from numpy's global RNG, so a seeded run is repeatable."""
    losses = per_sample_loss(net, eval_loader, len(eval_loader.dataset), device)
    loss_history.append(normalise(losses))
    del loss_history[:-history_len]
    prob, gmm = gmm_clean_prob(loss_history, np.random.randint(2 ** 31), **gmm_kwargs)
    return Division(prob, torch.stack(loss_history).mean(0), gmm)


def division_stats(clean_prob, labeled, is_clean):
    """How good a division is against the truth (known for synthetic noise): ROC-AUC of the
    clean probability, and precision / recall of the labeled set. NaN where undefined."""
    is_clean, labeled = np.asarray(is_clean, bool), np.asarray(labeled, bool)
    both = (is_clean & labeled).sum()
    auc = roc_auc_score(is_clean, clean_prob) if 0 < is_clean.sum() < len(is_clean) else np.nan
    return {'labeled': int(labeled.sum()), 'auc': float(auc),
            'precision': float(both / labeled.sum()) if labeled.any() else np.nan,
            'recall': float(both / is_clean.sum()) if is_clean.any() else np.nan}


# ---------------------------------------------------------------- training -------------------

def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group['lr'] = lr


def show_progress(line, *values):
    """`line % values` rewritten in place on a terminal; nothing when the output is a file, nor
    on the other processes under torch.distributed. Tensors among the values are read only
    then, so a GPU is not made to wait for a line nobody sees."""
    if sys.stdout.isatty() and distributed()[0] == 0:
        values = tuple(v.item() if torch.is_tensor(v) else v for v in values)
        sys.stdout.write('\r' + line % values)
        sys.stdout.flush()


def progress_bar(done, total, width=20):
    """'[######--------------]' for `done` of `total` steps."""
    filled = min(width, width * done // max(total, 1))
    return '[' + '#' * filled + '-' * (width - filled) + ']'


def _check_finite(total, what):
    if not torch.isfinite(total):
        raise TrainingError('non-finite %s loss: lower --lr or check the data' % what)


def warmup_epoch(net, optimizer, loader, device, confidence_penalty=False, label='',
                 cuda_graphs=False):
    """Alg. 1 line 2: standard CE on all samples with their noisy labels (loader batch 2B),
    plus the confidence penalty (negative entropy) when asked. Returns the mean CE.
    cuda_graphs: replay the steps as a CUDA graph (one GPU; run_utils.CUDAGraphStep)."""
    def step(inputs, labels):
        logits = net(inputs)
        loss = F.cross_entropy(logits, labels)
        penalty = negative_entropy(logits) if confidence_penalty else 0.0
        optimizer.zero_grad()
        (loss + penalty).backward()
        optimizer.step()
        return loss.detach()

    net.train()
    # A new graph every epoch: the learning rate is captured with it.
    step = CUDAGraphStep(step) if cuda_graphs else step
    total = torch.zeros((), device=device)
    for batch_idx, (inputs, labels, _) in enumerate(loader):
        loss = step(inputs.to(device), labels.to(device))
        total += loss
        if batch_idx % 20 == 0:
            show_progress('%s %s Iter[%3d/%3d]  CE-loss: %.4f', label,
                          progress_bar(batch_idx + 1, len(loader)), batch_idx + 1, len(loader),
                          loss)
    _check_finite(total, 'warm-up')
    return total.item() / len(loader)


def mixmatch_batch(net, partner, x1, x2, labels, clean_prob, u1, u2, *, num_class, T, alpha,
                   mix_labeled_only=False, refine_labels=True, mix=None):
    """The targets of one SSL mini-batch (Alg. 1 lines 17-25): co-guessing, co-refinement and
    MixMatch. x1, x2: two views of B labeled images; u1, u2: two views of U unlabeled images
    (None when the unlabeled set is empty). Returns the mixed inputs and targets, the 2B
    labeled rows first.

    As in the authors' code, `net` stays in train mode for its no-grad guessing passes, so its
    BatchNorm uses batch statistics there (the partner is in eval mode). With
    mix_labeled_only (Clothing1M, WebVision) only the 2B labeled rows are kept, with mixing
    partners drawn from the whole pool. Ablations (Table 5): partner=None guesses without
    co-training; refine_labels=False keeps the noisy labels as targets. `mix`: the draws of
    mixmatch, when made beforehand."""
    labels_onehot = F.one_hot(labels, num_class).float()
    # The authors' order of no-grad passes (it matters for BatchNorm running statistics).
    targets_u = co_guess(net, partner, u1, u2, T) if u1 is not None else None
    if refine_labels:
        targets_x = co_refine(net, x1, x2, labels_onehot, clean_prob, T)
    else:
        targets_x = labels_onehot

    if targets_u is None:
        all_inputs, all_targets = torch.cat([x1, x2]), torch.cat([targets_x, targets_x])
    else:
        all_inputs = torch.cat([x1, x2, u1, u2])
        all_targets = torch.cat([targets_x, targets_x, targets_u, targets_u])
    mixed_inputs, mixed_targets = mixmatch(all_inputs, all_targets, alpha, mix)
    if mix_labeled_only:
        num_x = 2 * x1.size(0)
        mixed_inputs, mixed_targets = mixed_inputs[:num_x], mixed_targets[:num_x]
    return mixed_inputs, mixed_targets


def dividemix_loss(logits, mixed_targets, num_x, *, lambda_u):
    """Eq. (12) on the logits of one forward over the whole mixed batch (shared BatchNorm):
    Lx on the first num_x rows, Lu on the rest (0 when there are none), the uniform prior
    over all, lambda_r = 1. lambda_u is the current (ramped) weight. Returns (total, Lx, Lu)."""
    loss_x = labeled_loss(logits[:num_x], mixed_targets[:num_x])
    if logits.size(0) > num_x:
        loss_u = unlabeled_loss(logits[num_x:], mixed_targets[num_x:])
    else:
        loss_u = torch.zeros((), device=logits.device)
    penalty = uniform_prior_penalty(logits)
    return loss_x + lambda_u * loss_u + penalty, loss_x, loss_u


def ssl_epoch(net, partner, optimizer, labeled_loader, unlabeled_loader, *, epoch, num_class,
              warm_up, lambda_u, rampup_epochs, T, alpha, device, mix_labeled_only=False,
              refine_labels=True, label='', cuda_graphs=False, timer=None):
    """Train `net` for one pass over its labeled set (Alg. 1 lines 9-30); `partner` is frozen
    and only co-guesses (None: no co-training). The unlabeled loader restarts whenever it runs
    out. Returns the mean Lx and Lu. cuda_graphs: replay the steps as a CUDA graph (one GPU;
    run_utils.CUDAGraphStep). `timer(stage)` is a context manager the benchmark uses to time
    the 'targets' and 'forward_backward' stages of each (then eager) step."""
    # A graph needs the unlabeled views (a fixed set of inputs); timing stages needs eager steps.
    graphed = cuda_graphs and unlabeled_loader is not None and timer is None
    timer = timer or (lambda stage: contextlib.nullcontext())

    def step(x1, x2, labels, clean_prob, u1, u2, lam, perm, weight_u):
        with timer('targets'):
            inputs, targets = mixmatch_batch(net, partner, x1, x2, labels, clean_prob, u1, u2,
                                             num_class=num_class, T=T, alpha=alpha,
                                             mix_labeled_only=mix_labeled_only,
                                             refine_labels=refine_labels, mix=(lam, perm))
        with timer('forward_backward'):
            loss, loss_x, loss_u = dividemix_loss(net(inputs), targets, 2 * x1.size(0),
                                                  lambda_u=weight_u)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return loss_x.detach(), loss_u.detach()

    net.train()
    if partner is not None:
        partner.eval()
    run_step = CUDAGraphStep(step) if graphed else step  # per epoch: it captures the lr
    # Authors' iteration count (one too many when |labeled| is divisible by B); it sets the
    # fractional epoch of the lambda_u ramp-up, so it is kept. Under torch.distributed each
    # process takes 1/world_size of the steps.
    num_iter = len(labeled_loader.dataset) // (labeled_loader.batch_size * distributed()[1]) + 1
    unlabeled_iter = iter(unlabeled_loader) if unlabeled_loader is not None else None
    sum_x = torch.zeros((), device=device)
    sum_u = torch.zeros((), device=device)
    for batch_idx, (x1, x2, labels, clean_prob) in enumerate(labeled_loader):
        u1 = u2 = None
        if unlabeled_iter is not None:
            try:
                u1, u2 = next(unlabeled_iter)
            except StopIteration:
                unlabeled_iter = iter(unlabeled_loader)
                u1, u2 = next(unlabeled_iter)
            u1, u2 = u1.to(device), u2.to(device)
        x1, x2 = x1.to(device), x2.to(device)
        labels, clean_prob = labels.to(device), clean_prob.to(device)

        rows = 2 * len(x1) + (2 * len(u1) if u1 is not None else 0)
        lam, perm = draw_mix(rows, alpha, device)
        weight_u = linear_rampup(epoch + batch_idx / num_iter, warm_up, rampup_epochs, lambda_u)
        # 0-dim tensors, as a CUDA graph needs them (it would keep a Python number as captured)
        lam, weight_u = (torch.full((), v, device=device) for v in (lam, weight_u))
        loss_x, loss_u = run_step(x1, x2, labels, clean_prob, u1, u2, lam, perm, weight_u)
        sum_x += loss_x
        sum_u += loss_u
        if batch_idx % 20 == 0:
            show_progress('%s %s Iter[%3d/%3d]  Labeled loss: %.2f  Unlabeled loss: %.2f',
                          label, progress_bar(batch_idx + 1, num_iter), batch_idx + 1, num_iter,
                          loss_x, loss_u)
    steps = len(labeled_loader)
    _check_finite(sum_x + sum_u, 'SSL')
    return sum_x.item() / steps, sum_u.item() / steps


def test_ensemble(net1, net2, loader, device, top5=False):
    """Top-1 accuracy (%) of the ensemble (argmax of the *sum of logits*, as the authors do)
    and of each network alone: (ensemble, net1, net2), plus the ensemble's top-5 with top5=True.
    Under torch.distributed the counts of all processes are summed."""
    net1.eval()
    net2.eval()
    counts = torch.zeros(5, dtype=torch.long, device=device)  # ens, net1, net2, ens top-5, total
    with torch.inference_mode():
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            logits1, logits2 = net1(inputs), net2(inputs)
            ensemble = logits1 + logits2
            for k, logits in enumerate((ensemble, logits1, logits2)):
                counts[k] += (logits.argmax(1) == targets).sum()
            if top5:
                best5 = ensemble.topk(min(5, ensemble.size(1)), dim=1).indices
                counts[3] += (best5 == targets[:, None]).any(1).sum()
            counts[4] += targets.size(0)
    counts = _all_reduce(counts, dist.ReduceOp.SUM).tolist()
    accuracies = tuple(100.0 * c / counts[4] for c in counts[:4])
    return accuracies if top5 else accuracies[:3]
