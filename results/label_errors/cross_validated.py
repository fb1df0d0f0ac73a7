"""cleanlab's detector on the images and labels of a measure.py run: out-of-fold predicted
probabilities from K-fold cross-validation of the same network trained with cross-entropy (the
way cleanlab's documentation and Confident Learning, Northcutt et al., JAIR 2021, obtain them),
then cleanlab's `find_label_issues` (the flag) and `get_label_quality_scores` (the ranking).

Each fold's network is a PreAct-ResNet18 of the run's width, trained on the other folds with
DivideMix's warm-up recipe (SGD, lr 0.02, momentum 0.9, weight decay 5e-4, batches of 128, the
run's crop and flip), for as many epochs as make its image passes about the DivideMix run's
(`epochs_for`), on the run's own fast path (the in-memory loaders, utils.speed.prepare).
cleanlab is needed for this comparison only: pip install cleanlab.
"""
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import StratifiedKFold

import dataloader_cifar
from PreResNet import ResNet18
from utils.speed import prepare

FOLDS = 4
BATCH_SIZE = 64  # the warm-up loader's batches are twice this, as in DivideMix's warm-up


def epochs_for(compute, num_images, folds=FOLDS):
    """Epochs per fold that spend `compute` forward-pass equivalents: each fold trains on
    (folds - 1) / folds of the images at 3 per image (forward and backward), and every image is
    predicted once, out of its fold."""
    per_epoch = 3 * folds * (num_images - num_images // folds)
    return max(1, round((compute - num_images) / per_epoch))


def out_of_fold_probs(images, labels, epochs, width, seed, folds=FOLDS, count=None):
    """(N, C) predicted probabilities, each image's from the network that did not train on it.
    images (N, 32, 32, 3) uint8, labels (N,) the given labels. `count` (optional): a
    measure.counting_passes to count the image passes."""
    num_class = 10
    probs = np.zeros((len(labels), num_class), np.float32)
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fold, (train, held_out) in enumerate(split.split(images, labels)):
        torch.manual_seed(seed + fold)
        loaders = dataloader_cifar.DeviceCIFARLoaders(
            'cifar10', images[train], labels[train], images[held_out], labels[held_out],
            BATCH_SIZE, torch.device('cpu'))
        net = prepare(ResNet18(num_class, width), torch.device('cpu'))
        optimizer = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
        net.train()
        for epoch in range(epochs):
            for inputs, targets, _ in loaders.warmup():
                loss = F.cross_entropy(net(inputs), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        net.eval()
        with torch.inference_mode():  # the held-out fold, unaugmented, in order
            logits = torch.cat([net(inputs).float() for inputs, _ in loaders.test()])
        probs[held_out] = F.softmax(logits, 1).numpy()
        print('fold %d/%d: %d epochs on %d images, %.1f%% of the held-out given labels predicted'
              % (fold + 1, folds, epochs, len(train),
                 100 * (probs[held_out].argmax(1) == labels[held_out]).mean()), flush=True)
    return probs


def detect(labels, probs):
    """cleanlab's flag (find_label_issues, its defaults) and ranking (get_label_quality_scores,
    low = more likely wrong)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    return find_label_issues(labels, probs), get_label_quality_scores(labels, probs)
