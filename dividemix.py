"""DivideMix (Li, Socher, Hoi, ICLR 2020): the paper's equations and co-divide, written once for
every dataset. Each Train_*.py runs the networks and calls these on what they return.

Equation numbers refer to the paper; "Alg. 1" to its Algorithm 1. Shapes: B labeled and U
unlabeled images per mini-batch, C classes. Where the authors' public code does something the
paper does not say, the code's behaviour is kept (their hyperparameters were tuned with it) and
marked.

  co-divide   per_sample_loss -> normalise -> a mixture (MIXTURES; the paper's GMM:
              gmm_clean_prob) -> clean probabilities (Eq. 1) -> labeled_set (Alg. 1 lines
              4-8); co_divide does them all for one network, with the run's arguments
  warm-up     cross-entropy, plus the confidence penalty (negative_entropy, Eq. 2) where asked
  SSL step    mean_prediction of the augmented views; co_refine (Eq. 3-4, Alg. 1 lines 17-20),
              co_guess (lines 21-23), draw_mix + mixup (Eq. 5-8); dividemix_loss: Lx (Eq. 9),
              Lu (Eq. 10), uniform prior (Eq. 11), total (Eq. 12), with lambda_u from
              linear_rampup
  test        test_ensemble (sum of the two networks' logits)
"""
import collections
import warnings

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture

from utils.cli import Relation, at_least
from utils.distributed import all_reduce


# ---------------------------------------------------------------- equations ------------------

def sharpen(p, T):
    """Eq. (4): temperature sharpening of each row of p (N, C)."""
    p = p ** (1 / T)
    return p / p.sum(dim=1, keepdim=True)


def mean_prediction(*view_logits):
    """A network's prediction averaged over the M augmented views of the same images (Eq. 3's
    p_b, Alg. 1 lines 17 and 21): each view's logits (N, C) -> mean softmax (N, C)."""
    return sum(F.softmax(logits, dim=1) for logits in view_logits) / len(view_logits)


def co_refine(labels_onehot, clean_prob, pred, T):
    """Eq. (3)-(4) label co-refinement: blend the noisy label with the trained network's mean
    prediction `pred` (B, C), weighted by the clean probability w (B,) from the *other*
    network's GMM, then sharpen. labels_onehot (B, C) -> targets (B, C)."""
    w = clean_prob.view(-1, 1).float()
    return sharpen(w * labels_onehot + (1 - w) * pred, T)


def co_guess(pred, partner_pred, T):
    """Alg. 1 lines 21-23 label co-guessing: the mean of both networks' predictions (U, C) (each
    already averaged over the two views), sharpened (Eq. 4). With partner_pred None (ablations
    without co-training) the network guesses alone, as in the original MixMatch."""
    p = pred if partner_pred is None else (pred + partner_pred) / 2
    return sharpen(p, T)


def draw_mix(batch_size, alpha, device):
    """The random draws of Eq. (5)-(6) for one mini-batch: lambda ~ Beta(alpha, alpha) (numpy's
    global RNG), lambda' = max(lambda, 1 - lambda), and one random permutation of the batch's
    rows (torch's RNG). lambda' comes as a 0-dim float32 tensor on `device`, so the mixing
    arithmetic is the same float32 arithmetic on every path (a CUDA graph replays it too)."""
    lam = np.random.beta(alpha, alpha)
    return (torch.full((), max(lam, 1 - lam), device=device),
            torch.randperm(batch_size, device=device))


def mixup(inputs, targets, lam, perm):
    """Eq. (5)-(8): each row mixed with row perm[i] of the same batch (a row may be paired with
    itself, as in the authors' code), with one lambda' for the whole mini-batch (draw_mix).
    inputs (N, ...), targets (N, C) -> mixed inputs, mixed targets."""
    return (lam * inputs + (1 - lam) * inputs[perm],
            lam * targets + (1 - lam) * targets[perm])


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


def dividemix_loss(logits, mixed_targets, num_x, lambda_u):
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


def linear_rampup(current, warm_up, rampup_epochs, lambda_u):
    """Weight of Lu: 0 at the end of warm-up, lambda_u `rampup_epochs` later (authors' code: 16;
    not in the paper). `current` is the fractional epoch."""
    return lambda_u * float(np.clip((current - warm_up) / rampup_epochs, 0.0, 1.0))


# ---------------------------------------------------------------- co-divide ------------------

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
    return all_reduce(losses, dist.ReduceOp.MAX).cpu()


def normalise(losses):
    """Min-max normalisation to [0, 1] (authors' code). Equal losses give zeros, not 0/0."""
    span = losses.max() - losses.min()
    return (losses - losses.min()) / span if span > 0 else torch.zeros_like(losses)


def gmm_clean_prob(loss_history, random_state, max_iter=10, tol=1e-2, reg_covar=5e-4,
                   n_components=2):
    """Fit a GMM (the paper's: 2 components) to the mean of the normalised loss vectors in
    `loss_history` (the last few epochs; one entry = the current epoch only) and return the
    posterior of the lowest-mean component: the probability w_i that sample i is clean
    (Sec. 3.1), and the fitted components {'means', 'variances', 'weights'}, each
    (n_components,) float64, which the run's figures draw (gmm_log_density)."""
    # float64 (the authors pass float32; the posteriors differ at the 1e-7 level)
    x = torch.stack(list(loss_history)).mean(0).double().numpy().reshape(-1, 1)
    gmm = GaussianMixture(n_components=n_components, max_iter=max_iter, tol=tol,
                          reg_covar=reg_covar, random_state=random_state)
    with warnings.catch_warnings():  # max_iter=10 stops early on purpose, as in the authors' code
        warnings.simplefilter('ignore', ConvergenceWarning)
        gmm.fit(x)
    # 1-D data: every covariance_type holds one variance per component (one shared if tied)
    components = {'means': np.ravel(gmm.means_).astype(np.float64),
                  'variances': np.broadcast_to(np.ravel(gmm.covariances_),
                                               (n_components,)).astype(np.float64),
                  'weights': np.ravel(gmm.weights_).astype(np.float64)}
    return gmm.predict_proba(x)[:, gmm.means_.argmin()], components


def gmm_log_density(components, x):
    """log(w_k N(x; m_k, v_k)) of each fitted component at the losses x: (K, len(x))."""
    x = np.asarray(x, np.float64)[None, :]
    means, variances = components['means'][:, None], components['variances'][:, None]
    return (np.log(components['weights'])[:, None] - 0.5 * np.log(2 * np.pi * variances)
            - 0.5 * (x - means) ** 2 / variances)


# The models that co-divide may fit to the losses, chosen by name (--mixture in every script):
#   fit(loss_history, random_state, args) -> (clean probability (N,), components), where
#     components is a dict of (K,) float64 arrays, 'means' among them: the clean component is
#     the one of lowest mean loss (Sec. 3.1);
#   log_density(components, x) -> (K, len(x)), log(weight * density) of each component at x:
#     what Fig. 2 draws (and where its posterior crosses tau);
#   label: how the figures name it; num_components: how many (the fewest samples it can fit).
# A new model is one entry here: the division, the labels file and Fig. 2 follow it.
Mixture = collections.namedtuple('Mixture', 'label fit log_density num_components',
                                 defaults=[2])
MIXTURES = {
    'gmm': Mixture('GMM', lambda history, seed, args: gmm_clean_prob(
        history, seed, args.gmm_max_iter, args.gmm_tol, args.gmm_reg_covar), gmm_log_density),
}


def add_co_divide_arguments(parser, divided=lambda args: None):
    """The arguments of co-divide's model, as every training script declares them; divided(args)
    is how many images a network's mixture is fitted to (None: the whole training set)."""
    parser.add_argument('--mixture', default='gmm', choices=sorted(MIXTURES), names_run=True,
                        help='the model of the per-sample losses that divides them '
                             '(dividemix.MIXTURES; gmm: the paper\'s two-component GMM)',
                        rule=Relation(lambda a: divided(a) is None
                                      or divided(a) >= MIXTURES[a.mixture].num_components,
                                      '--mixture %(mixture)s fits more components than there are '
                                      'images to divide: use more images'))
    parser.add_argument('--gmm_max_iter', type=int, default=10, check=at_least(1))
    parser.add_argument('--gmm_tol', type=float, default=1e-2, check=at_least(0))
    parser.add_argument('--gmm_reg_covar', type=float, default=5e-4, check=at_least(0))


def labeled_set(clean_prob, args):
    """Alg. 1 lines 6-8: the samples put in the labeled set, w_i > tau (--p_threshold; the
    authors' strict '>', the paper writes >=: with continuous probabilities the two agree)."""
    return clean_prob > args.p_threshold


Division = collections.namedtuple('Division', 'clean_prob labeled loss mixture components')


def co_divide(net, eval_loader, loss_history, device, args):
    """One network's half of co-divide: per-sample loss, normalise, append to its history
    (keeping the last --loss_history), fit --mixture, threshold (labeled_set). Returns a
    Division: the clean probabilities (N,) as numpy, the labeled set (N,) bool, the loss the
    mixture was fitted on, the mixture's name and its components (for the run's figures).
    The mixture's seed comes from numpy's global RNG, so a seeded run is repeatable."""
    losses = per_sample_loss(net, eval_loader, len(eval_loader.dataset), device)
    loss_history.append(normalise(losses))
    # (Clothing1M divides a fresh subset every epoch: no history, no --loss_history)
    del loss_history[:-getattr(args, 'loss_history', 1)]
    prob, components = MIXTURES[args.mixture].fit(loss_history, np.random.randint(2 ** 31),
                                                  args)
    return Division(prob, labeled_set(prob, args), torch.stack(loss_history).mean(0),
                    args.mixture, components)


def division_stats(clean_prob, labeled, is_clean):
    """How good a division is against the truth (known for synthetic noise): ROC-AUC of the
    clean probability, and precision / recall of the labeled set. NaN where undefined."""
    is_clean, labeled = np.asarray(is_clean, bool), np.asarray(labeled, bool)
    both = (is_clean & labeled).sum()
    auc = roc_auc_score(is_clean, clean_prob) if 0 < is_clean.sum() < len(is_clean) else np.nan
    return {'labeled': int(labeled.sum()), 'auc': float(auc),
            'precision': float(both / labeled.sum()) if labeled.any() else np.nan,
            'recall': float(both / is_clean.sum()) if is_clean.any() else np.nan}


# ---------------------------------------------------------------- test -----------------------

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
    counts = all_reduce(counts, dist.ReduceOp.SUM).tolist()
    accuracies = tuple(100.0 * c / counts[4] for c in counts[:4])
    return accuracies if top5 else accuracies[:3]
