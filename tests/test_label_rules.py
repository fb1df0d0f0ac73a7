"""The candidate flags and rankings of results/label_errors/measure.py on hand-made cases."""
import importlib.util
import os

import numpy as np
import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location(
    'measure', os.path.join(ROOT, 'results', 'label_errors', 'measure.py'))
measure = importlib.util.module_from_spec(spec)
spec.loader.exec_module(measure)


def record(probs, given, clean_prob, true=None):
    """A recorded run of two identical networks whose softmax is `probs` (N, C)."""
    logits = np.log(np.asarray(probs, float))
    clean_prob = np.asarray(clean_prob, float)
    return {'logits': np.array([logits, logits]), 'given': np.asarray(given),
            'true': np.asarray(true if true is not None else given),
            'final_clean_prob': np.array([clean_prob, clean_prob]),
            'clean_prob': np.array([[clean_prob, clean_prob]] * 10)}


def test_scores_and_best_f1_by_hand():
    wrong = np.array([1, 1, 0, 0, 0], bool)
    assert measure.scores(np.array([1, 0, 1, 0, 0], bool), wrong) == (2, 0.5, 0.5, 0.5)
    assert measure.scores(np.zeros(5, bool), wrong)[3] == 0.0
    # ranking the two wrong ones lowest: flagging those two is perfect
    assert measure.best_f1(np.array([0.1, 0.2, 0.9, 0.8, 0.7]), wrong) == 1.0
    # one wrong one ranked last: the best is to flag the first alone (F1 2/3; all five: 4/7)
    assert measure.best_f1(np.array([0.1, 0.95, 0.9, 0.8, 0.7]), wrong) == pytest.approx(2 / 3)
    assert measure.lowest(np.array([0.3, 0.1, 0.2]), 2).tolist() == [False, True, True]


def test_each_flag_on_a_hand_made_case():
    # 4 images of 2 classes; image 1 is labelled 0 but looks like 1, image 3 is uncertain
    probs = [[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.6, 0.4]]
    given, true = [0, 0, 1, 1], [0, 1, 1, 0]
    flags = measure.flags(record(probs, given, [0.9, 0.2, 0.8, 0.6], true))
    assert flags[measure.CO_DIVIDE].tolist() == [0, 1, 0, 0]
    assert flags['predicted != given'].tolist() == [0, 1, 0, 1]
    # thresholds: t_0 = mean p0 over images labelled 0 = (0.9 + 0.2) / 2 = 0.55,
    # t_1 = mean p1 over images labelled 1 = (0.9 + 0.4) / 2 = 0.65; image 1 (p1 0.8 >= t_1)
    # and image 3 (p0 0.6 >= t_0) are off the diagonal: one in each row, and each is its
    # class's lowest given-label probability (0.2 of 0.9, 0.2; 0.4 of 0.9, 0.4)
    assert flags[measure.FLAGGED].tolist() == [0, 1, 0, 1]
    assert flags["Confident Learning's count in all (not per class), lowest label_quality"
                 ].tolist() == [0, 1, 0, 1]
    # estimated noise 1 - mean(w) = 0.375 of 4 images: the lowest 2 (round(1.5) = 2)
    assert flags['count from 1 - mean clean probability, lowest label_quality'].tolist() == [
        0, 1, 0, 1]
    # class means of w: class 0 (0.9, 0.2) 0.55, class 1 (0.8, 0.6) 0.7
    assert flags["mean clean probability below its given class's mean"].tolist() == [
        0, 1, 0, 1]
    assert measure.CLEANLAB_FLAG not in flags  # no cleanlab run recorded


def test_rankings_score_the_wrong_labels_low():
    probs = [[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.6, 0.4]]
    run = record(probs, [0, 0, 1, 1], [0.9, 0.2, 0.8, 0.6])
    run['loss'] = np.array([[[0.1, 0.9, 0.3, 0.5]] * 2, [[0.3, 0.7, 0.1, 0.5]] * 2,
                            [[0.2, 0.8, 0.2, 0.5]] * 2])  # 3 epochs x 2 networks
    run['cleanlab'] = {'quality': np.array([0.7, 0.1, 0.8, 0.3]), 'flagged': np.ones(4, bool)}
    ranked = measure.rankings(run)
    np.testing.assert_allclose(ranked[measure.LABEL_QUALITY], [0.9, 0.2, 0.9, 0.4], rtol=1e-6)
    np.testing.assert_allclose(ranked[measure.MEAN_CLEAN], [0.9, 0.2, 0.8, 0.6])
    np.testing.assert_allclose(ranked['clean probability, mean of the last 3 epochs'],
                               [0.9, 0.2, 0.8, 0.6])
    np.testing.assert_allclose(ranked['1 - normalised loss, mean of the last 3 epochs'],
                               [0.8, 0.2, 0.8, 0.5])
    np.testing.assert_allclose(ranked[measure.CLEANLAB_RANK], [0.7, 0.1, 0.8, 0.3])


def test_cleanlab_gets_the_runs_image_passes():
    from results.label_errors import cross_validated
    # 4 folds of 1,000 images: 750 trained per fold at 3 per image, 9,000 per epoch in all,
    # and 1,000 predicted once
    assert cross_validated.epochs_for(9000 * 10 + 1000, 1000) == 10
    assert cross_validated.epochs_for(9000 * 10 + 1000 + 4400, 1000) == 10  # rounded
    assert cross_validated.epochs_for(100, 1000) == 1  # at least one
    assert measure.compute([10, 7]) == 37  # a backward pass is about two forward passes


def test_the_forward_passes_are_counted_apart_from_the_test(tmp_path):
    import torch
    counted = measure.counting_passes(torch.nn.Linear)
    try:
        net = torch.nn.Linear(2, 2)
        net(torch.zeros(5, 2))                          # with gradients: training
        with torch.no_grad():
            net(torch.zeros(3, 2))                      # without: evaluation
        counted.testing(lambda: net(torch.zeros(7, 2)))()  # the test set: not counted
    finally:
        torch.nn.Linear.forward = counted.forward
    assert (counted.train, counted.eval) == (5, 3)
    assert torch.nn.Linear(2, 2)(torch.zeros(1, 2)).shape == (1, 2)  # forward restored


def test_the_summary_names_each_goal(tmp_path):
    probs = [[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.6, 0.4]]
    for k, name in enumerate(['sym_seed1', 'sym_seed2']):
        run = record(probs, [0, 0, 1, 1], [0.9, 0.2, 0.8, 0.6], [0, 1, 1, 0])
        os.makedirs(str(tmp_path / name))
        np.savez(str(tmp_path / name / 'record.npz'), image_passes=np.array([100, 50]), **run)
        if k:  # cleanlab flags image 1 alone
            np.savez(str(tmp_path / name / 'cleanlab.npz'), flagged=np.array([0, 1, 0, 0], bool),
                     quality=np.array([0.9, 0.1, 0.8, 0.7]), epochs=3,
                     image_passes=np.array([40, 10]))
    text = measure.table([str(tmp_path / 'sym_seed1'), str(tmp_path / 'sym_seed2')])
    # ours flags images 1 and 3, both wrong: F1 1; cleanlab's image 1 alone: F1 2/3
    assert '| sym_seed1 | 1.000 |  | 1.000 | 1.00 | 350,  |' in text
    assert '| sym_seed2 | 1.000 | 0.667 | 1.000 | 1.00 | 350, 130 (3 epochs per fold) |' in text
    assert '| %s | 1.000 | 1.000 | 1.000 |' % measure.FLAGGED in text
    assert '| %s |  | 0.667 |  |' % measure.CLEANLAB_FLAG in text  # one run has none: no mean
