"""Each equation of the paper against values computed by hand."""
import math

import numpy as np
import torch
import torch.nn as nn

import Train_cifar
import dividemix as dm


def logits_of(probs):
    """Rows of probabilities -> logits whose softmax gives them back."""
    return torch.log(torch.tensor(probs, dtype=torch.float32))


def test_sharpen_eq4():
    # [0.6, 0.4] at T=0.5: [0.36, 0.16] / 0.52
    out = dm.sharpen(torch.tensor([[0.6, 0.4]]), 0.5)
    assert torch.allclose(out, torch.tensor([[0.36 / 0.52, 0.16 / 0.52]]))
    # T=1 leaves a distribution unchanged
    p = torch.tensor([[0.2, 0.3, 0.5]])
    assert torch.allclose(dm.sharpen(p, 1.0), p)


def test_mean_prediction_averages_softmax_over_views():
    # Eq. (3)'s p_i: softmax of each view, then the mean
    out = dm.mean_prediction(logits_of([[0.5, 0.5]]), logits_of([[0.9, 0.1]]))
    assert torch.allclose(out, torch.tensor([[0.7, 0.3]]), atol=1e-6)


def test_co_refine_eq3_blends_label_and_prediction_by_clean_prob():
    pred = torch.tensor([[0.7, 0.3]])  # the trained net's mean prediction over two views
    onehot = torch.tensor([[0.0, 1.0]])
    w = torch.tensor([0.25])
    # y_bar = 0.25*[0,1] + 0.75*[0.7,0.3] = [0.525, 0.475]; sharpen T=0.5
    expected = torch.tensor([[0.525 ** 2, 0.475 ** 2]]) / (0.525 ** 2 + 0.475 ** 2)
    assert torch.allclose(dm.co_refine(onehot, w, pred, 0.5), expected, atol=1e-6)
    # w = 1 keeps the (sharpened one-hot) label; w = 0 ignores it
    assert torch.allclose(dm.co_refine(onehot, torch.ones(1), pred, 0.5), onehot)
    p_sharp = torch.tensor([[0.49, 0.09]]) / 0.58
    assert torch.allclose(dm.co_refine(onehot, torch.zeros(1), pred, 0.5), p_sharp, atol=1e-6)


def test_co_guess_averages_both_networks():
    # net: views [0.8,0.2], [0.6,0.4] -> [0.7, 0.3]; partner uniform -> [0.5, 0.5]
    # mean of the four softmaxes = [0.6, 0.4]; sharpen T=0.5 -> [.36, .16] / .52
    pred = dm.mean_prediction(logits_of([[0.8, 0.2]]), logits_of([[0.6, 0.4]]))
    out = dm.co_guess(pred, torch.tensor([[0.5, 0.5]]), 0.5)
    assert torch.allclose(out, torch.tensor([[0.36 / 0.52, 0.16 / 0.52]]), atol=1e-6)


def test_mixup_eq5_to_8_one_lambda_one_permutation():
    np.random.seed(0)
    torch.manual_seed(0)
    n = 12
    inputs = torch.eye(n)  # row i = e_i, so a mixed row shows lambda' and its partner
    mixed_x, mixed_p = dm.mixup(inputs, 2 * inputs, *dm.draw_mix(n, 4, torch.device('cpu')))
    partners, lams = [], set()
    for i in range(n):
        others = [j for j in range(n) if j != i and mixed_x[i, j] > 1e-6]
        partners.append(others[0] if others else i)  # a row may be paired with itself
        if others:
            lams.add(round(mixed_x[i, i].item(), 5))
    assert len(lams) == 1 and lams.pop() >= 0.5  # one lambda' = max(lambda, 1-lambda), Eq. 6
    assert sorted(partners) == list(range(n))  # partners come from a single permutation
    assert torch.allclose(mixed_x.sum(1), torch.ones(n))  # convex combination, Eq. 7
    assert torch.allclose(mixed_p, 2 * mixed_x)  # targets mixed the same way, Eq. 8


def test_draw_mix_lambda_prime_follows_beta():
    # lambda' = max(lambda, 1-lambda) with lambda ~ Beta(4, 4): E[lambda'] = 1/2 + E|lambda-1/2|
    np.random.seed(3)
    draws = [dm.draw_mix(5, 4, torch.device('cpu')) for _ in range(4000)]
    lams = np.array([lam.item() for lam, _ in draws])
    assert all(lam.dim() == 0 and lam.dtype == torch.float32 for lam, _ in draws[:10])
    assert lams.min() >= 0.5 and lams.max() <= 1
    beta = np.random.RandomState(0).beta(4, 4, 200000)
    assert abs(lams.mean() - np.maximum(beta, 1 - beta).mean()) < 0.005
    assert all(sorted(perm.tolist()) == list(range(5)) for _, perm in draws[:10])


def test_mixup_with_given_draws():
    x, p = torch.randn(5, 3), torch.rand(5, 2)
    lam, perm = torch.tensor(0.75), torch.tensor([4, 3, 2, 1, 0])
    mixed_x, mixed_p = dm.mixup(x, p, lam, perm)
    assert torch.allclose(mixed_x[0], 0.75 * x[0] + 0.25 * x[4])
    assert torch.allclose(mixed_p[2], p[2])  # paired with itself


def test_labeled_loss_eq9():
    logits = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]])  # softmax [.5,.5], [.75,.25]
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    expected = (-math.log(0.5) - 0.5 * math.log(0.75) - 0.5 * math.log(0.25)) / 2
    assert math.isclose(dm.labeled_loss(logits, targets).item(), expected, rel_tol=1e-6)


def test_unlabeled_loss_eq10_mean_over_rows_and_classes():
    logits = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # row 1: (.5-1)^2 + .5^2 = .5; row 2: .75^2 + .75^2 = 1.125; / (2 rows * 2 classes)
    assert math.isclose(dm.unlabeled_loss(logits, targets).item(), (0.5 + 1.125) / 4,
                        rel_tol=1e-6)


def test_uniform_prior_penalty_eq11():
    logits = torch.tensor([[math.log(3), 0.0], [math.log(3), 0.0]])  # mean prediction .75/.25
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert math.isclose(dm.uniform_prior_penalty(logits).item(), expected, rel_tol=1e-6)
    assert abs(dm.uniform_prior_penalty(torch.zeros(4, 10)).item()) < 1e-6  # uniform: 0


def test_negative_entropy_eq2():
    assert math.isclose(dm.negative_entropy(torch.zeros(3, 2)).item(), -math.log(2),
                        rel_tol=1e-6)
    logits = torch.tensor([[math.log(3), 0.0]])
    expected = 0.75 * math.log(0.75) + 0.25 * math.log(0.25)
    assert math.isclose(dm.negative_entropy(logits).item(), expected, rel_tol=1e-6)


def test_linear_rampup():
    assert dm.linear_rampup(10, 10, 16, 25) == 0
    assert dm.linear_rampup(9, 10, 16, 25) == 0
    assert dm.linear_rampup(18, 10, 16, 25) == 12.5
    assert dm.linear_rampup(26, 10, 16, 25) == 25
    assert dm.linear_rampup(100, 10, 16, 25) == 25


def test_normalise_min_max():
    out = dm.normalise(torch.tensor([2.0, 4.0, 3.0]))
    assert torch.allclose(out, torch.tensor([0.0, 1.0, 0.5]))
    assert torch.equal(dm.normalise(torch.ones(3)), torch.zeros(3))  # no 0/0


def test_gmm_separates_bimodal_losses():
    rng = np.random.RandomState(0)
    losses = np.concatenate([rng.normal(0.1, 0.05, 900), rng.normal(0.8, 0.05, 100)])
    prob, mixture = dm.gmm_clean_prob([dm.normalise(torch.tensor(losses))], random_state=0)
    assert (prob[:900] > 0.5).mean() > 0.99  # low loss -> clean
    assert (prob[900:] < 0.5).mean() > 0.99
    # the components: means near the two modes (normalised to [0, 1]), weights 0.9 / 0.1
    clean = int(np.argmin(mixture['means']))
    span = losses.max() - losses.min()
    assert abs(mixture['means'][clean] - (0.1 - losses.min()) / span) < 0.02
    assert abs(mixture['weights'][clean] - 0.9) < 0.01
    assert mixture['variances'].shape == (2,) and (mixture['variances'] > 0).all()


def test_gmm_averages_loss_history():
    clean_now = torch.tensor([0.0] * 5 + [1.0] * 5)
    flipped = 1 - clean_now
    # Mean of three vectors where the first half is low twice: first half is clean.
    prob, _ = dm.gmm_clean_prob([clean_now, flipped, clean_now], random_state=0)
    assert (prob[:5] > 0.5).all() and (prob[5:] < 0.5).all()
    prob, _ = dm.gmm_clean_prob([flipped, clean_now, flipped], random_state=0)
    assert (prob[:5] < 0.5).all() and (prob[5:] > 0.5).all()


class LossNet(nn.Module):
    """Logits that give sample i a CE loss set by `bad`: class 0 certain for good samples."""
    def forward(self, x):
        return torch.stack([x[:, 0] * 10, torch.zeros(len(x))], 1)


def test_co_divide_keeps_history_and_uses_its_mean():
    from torch.utils.data import DataLoader, TensorDataset
    n = 20
    scores = torch.tensor([1.0] * 15 + [-1.0] * 5)  # last 5 get a high loss on label 0
    ds = TensorDataset(scores.view(-1, 1), torch.zeros(n, dtype=torch.long), torch.arange(n))
    loader = DataLoader(ds, batch_size=7)
    history = [torch.ones(n) * 7 for _ in range(4)]
    np.random.seed(0)
    args = Train_cifar.parse_args(['--loss_history', '2', '--p_threshold', '0.5'])
    division = dm.co_divide(LossNet(), loader, history, torch.device('cpu'), args)
    prob = division.clean_prob
    assert len(history) == 2 and torch.equal(history[0], torch.ones(n) * 7)
    assert torch.equal(division.loss, (history[0] + history[1]) / 2)  # what the GMM saw
    assert division.mixture == 'gmm'
    assert sorted(division.components) == ['means', 'variances', 'weights']
    assert (prob[:15] > 0.5).all() and (prob[15:] < 0.5).all()
    assert np.array_equal(division.labeled, prob > 0.5)  # Alg. 1 line 6: w > tau


def test_division_stats_by_hand():
    is_clean = [True, True, False, False]
    prob = np.array([0.9, 0.4, 0.6, 0.1])
    labeled = prob > 0.5
    stats = dm.division_stats(prob, labeled, is_clean)
    assert stats['labeled'] == 2
    assert stats['precision'] == 0.5 and stats['recall'] == 0.5
    assert stats['auc'] == 0.75  # pairs (clean > noisy): .9>.6 .9>.1 .4>.1, not .4>.6
    assert math.isnan(dm.division_stats(prob, labeled, [True] * 4)['auc'])
