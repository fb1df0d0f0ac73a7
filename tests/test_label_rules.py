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
    assert flags['co-divide: mean clean prob <= tau (today)'].tolist() == [0, 1, 0, 0]
    assert flags['predicted != given'].tolist() == [0, 1, 0, 1]
    # as many as disagree (2), the lowest clean probabilities: images 1 and 3
    assert flags['the disagreements count, lowest mean clean prob'].tolist() == [0, 1, 0, 1]
    # estimated noise 1 - mean(w) = 0.375 of 4 images: the lowest 2 (round(1.5) = 2)
    assert flags['count from 1 - mean clean prob'].tolist() == [0, 1, 0, 1]
    # class means of w: class 0 (0.9, 0.2) 0.55, class 1 (0.8, 0.6) 0.7
    assert flags['mean clean prob below its given class mean'].tolist() == [0, 1, 0, 1]
    # thresholds: t_0 = mean p0 over images labelled 0 = (0.9 + 0.2) / 2 = 0.55,
    # t_1 = mean p1 over images labelled 1 = (0.9 + 0.4) / 2 = 0.65; image 1 (p1 0.8 >= t_1)
    # and image 3 (p0 0.6 >= t_0) are off the diagonal
    assert flags['confident learning: another class above its threshold'].tolist() == [
        0, 1, 0, 1]


def test_rankings_score_the_wrong_labels_low():
    probs = [[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.6, 0.4]]
    ranked = measure.rankings(record(probs, [0, 0, 1, 1], [0.9, 0.2, 0.8, 0.6]))
    np.testing.assert_allclose(ranked['ensemble prob of the given label'], [0.9, 0.2, 0.9, 0.4])
    np.testing.assert_allclose(ranked['mean clean prob (today)'], [0.9, 0.2, 0.8, 0.6])
    np.testing.assert_allclose(ranked['clean prob, mean of last 3 epochs'], [0.9, 0.2, 0.8, 0.6])
