"""The scripts' SSL step and epoch loops: the order and modes of the network calls, which
rows are trained on, the lambda_u ramp, the warm-up penalty, the ensemble test."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

import dividemix as dm
import Train_cifar
import Train_clothing1M
import Train_imagefolder
import Train_webvision
from conftest import script_args
from utils.cli import TrainingError

C = 3


class Recorder(nn.Module):
    """A tiny BN network that records (name, batch size, train mode, grad enabled) per call."""
    def __init__(self, name, calls):
        super().__init__()
        self.name, self.calls = name, calls
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(),
                                  nn.Linear(8, C))

    def forward(self, x):
        self.calls.append((self.name, len(x), self.training, torch.is_grad_enabled()))
        return self.body(x)


def loaders(num_labeled, num_unlabeled, batch):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(num_labeled, 4, generator=g)
    labeled = TensorDataset(x, x + 0.1, torch.randint(0, C, (num_labeled,), generator=g),
                            torch.rand(num_labeled, generator=g))
    u = torch.randn(num_unlabeled, 4, generator=g)
    unlabeled = TensorDataset(u, u + 0.1)
    return (DataLoader(labeled, batch_size=batch, shuffle=True),
            DataLoader(unlabeled, batch_size=batch, shuffle=True) if num_unlabeled else None)


def run_epoch(calls, num_labeled=8, num_unlabeled=8, batch=4, epoch=12, script=Train_cifar,
              **kw):
    """One SSL epoch of `script`'s ssl_epoch on tiny data; kw override its arguments."""
    torch.manual_seed(0)
    np.random.seed(0)
    net, partner = Recorder('net', calls), Recorder('partner', calls)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    labeled, unlabeled = loaders(num_labeled, num_unlabeled, batch)
    values = dict(dict(warm_up=10, lambda_u=25, rampup_epochs=16, T=0.5, alpha=4), **kw)
    if script is Train_imagefolder:  # its classes are its data's: main sets num_class
        args = script_args(script, **values)
        args.num_class = C
    else:
        args = script_args(script, num_class=C, **values)
    if script in (Train_cifar, Train_imagefolder):
        out = script.ssl_epoch(net, partner, opt, labeled, unlabeled, epoch,
                               torch.device('cpu'), args, cuda_graphs=False, label='')
    else:
        out = script.ssl_epoch(net, partner, opt, labeled, unlabeled, epoch,
                               torch.device('cpu'), args, label='')
    return net, partner, out


@pytest.mark.parametrize('script', [Train_cifar, Train_clothing1M, Train_webvision,
                                    Train_imagefolder])
def test_ssl_step_forward_order_modes_and_batch(script):
    calls = []
    run_epoch(calls, num_labeled=4, num_unlabeled=4, batch=4, script=script)
    # co-guess: net(u1), net(u2) (train-mode BN: one view per call), partner([u1; u2]) (eval
    # mode: both views in one call); co-refine: net(x1), net(x2); then ONE forward of the
    # trained net on all 2B + 2U mixed rows, with gradients. Train_cifar.py and
    # Train_imagefolder.py make their four views' calls first (utils.speed.per_view), then the
    # partner's.
    view, partner = ('net', 4, True, False), ('partner', 8, False, False)
    order = ([view] * 4 + [partner] if script in (Train_cifar, Train_imagefolder)
             else [view] * 2 + [partner] + [view] * 2)
    assert calls == order + [('net', 16, True, True)]


def test_partner_is_frozen_and_net_learns():
    net, partner, _ = run_epoch([])
    torch.manual_seed(0)  # the same initial weights as run_epoch's
    net0, partner0 = Recorder('net', []), Recorder('partner', [])
    for k, v in partner.state_dict().items():
        assert torch.equal(v, partner0.state_dict()[k]), k  # not even BN running stats
    assert not torch.equal(net.state_dict()['body.1.weight'], net0.state_dict()['body.1.weight'])
    # The trained net's BN counted all its train-mode passes: 4 no-grad + 1 per step, 2 steps.
    assert net.state_dict()['body.2.num_batches_tracked'].item() == 10


def test_clothing1m_with_lambda_u_0_trains_on_labeled_rows_only():
    calls = []
    _, _, (loss_x, loss_u) = run_epoch(calls, num_labeled=4, num_unlabeled=4, batch=4,
                                       script=Train_clothing1M, lambda_u=0)
    assert calls[-1] == ('net', 8, True, True)  # only the 2B labeled rows are trained on
    assert loss_u == 0


def test_empty_unlabeled_set_trains_on_labeled_rows():
    calls = []
    _, _, (loss_x, loss_u) = run_epoch(calls, num_labeled=4, num_unlabeled=0, batch=4)
    assert [c[0] for c in calls] == ['net', 'net', 'net']  # no co-guessing
    assert calls[-1] == ('net', 8, True, True) and loss_u == 0 and np.isfinite(loss_x)


def test_unlabeled_loader_restarts_and_epoch_follows_labeled_set():
    calls = []
    run_epoch(calls, num_labeled=16, num_unlabeled=6, batch=4)
    final = [c[1] for c in calls if c[3]]
    # 4 labeled batches of 4; the unlabeled set (6) gives batches 4, 2, then again 4, 2
    assert final == [2 * 4 + 2 * u for u in (4, 2, 4, 2)]


def test_rampup_uses_fractional_epoch_with_authors_num_iter(monkeypatch):
    seen = []
    real = dm.dividemix_loss

    def spy(logits, targets, num_x, lambda_u, *more, **named):
        seen.append(float(lambda_u))
        return real(logits, targets, num_x, lambda_u, *more, **named)
    monkeypatch.setattr(dm, 'dividemix_loss', spy)
    # 4 labeled, B=2: 2 steps, but num_iter = 4 // 2 + 1 = 3 (authors' count).
    run_epoch([], num_labeled=4, num_unlabeled=4, batch=2, epoch=11, warm_up=10,
              rampup_epochs=16, lambda_u=16)
    assert seen == pytest.approx([1.0, 1 + 1 / 3])


def test_warmup_penalty_only_when_asked(monkeypatch):
    calls = []
    monkeypatch.setattr(dm, 'negative_entropy',
                        lambda logits: calls.append(len(logits)) or logits.sum() * 0)
    ds = TensorDataset(torch.randn(6, 4), torch.randint(0, C, (6,)), torch.arange(6))
    net = Recorder('net', [])
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    dev = torch.device('cpu')
    args = script_args(Train_cifar)
    Train_cifar.warmup_epoch(net, opt, DataLoader(ds, batch_size=3), dev,
                             confidence_penalty=False, cuda_graphs=False, label='', args=args)
    assert calls == []
    ce = Train_cifar.warmup_epoch(net, opt, DataLoader(ds, batch_size=3), dev,
                                  confidence_penalty=True, cuda_graphs=False, label='', args=args)
    assert calls == [3, 3] and ce > 0


def test_non_finite_loss_stops_with_clear_error():
    calls = []
    with pytest.raises(TrainingError, match='non-finite'):
        run_epoch(calls, lambda_u=float('nan'))


def test_ensemble_sums_logits_not_softmaxes():
    class Fixed(nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits = torch.tensor([logits])

        def forward(self, x):
            return self.logits.expand(len(x), -1)
    # logits sum [5, 2, -3] -> class 0; softmax sum [0.62, 0.88, 0.50] would say class 1
    net1, net2 = Fixed([5.0, 0.0, 5.0]), Fixed([0.0, 2.0, -8.0])
    loader = DataLoader(TensorDataset(torch.zeros(4, 1), torch.tensor([0, 0, 1, 2])),
                        batch_size=3)
    ens, acc1, acc2 = dm.test_ensemble(net1, net2, loader, torch.device('cpu'))
    assert (ens, acc1, acc2) == (50.0, 50.0, 25.0)
