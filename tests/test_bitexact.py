"""The refactoring guard: every training script, run small and seeded on the CPU, gives the
same JSONL records (minus wall-clock seconds), text logs, weights, optimizer states and division
snapshots, bit for bit, as the code recorded in tests/bitexact/recorded.json (recorded from
commit cd8cf48, before the scripts took their own steps; see tests/bitexact/runs.py).

Digests depend on the torch build and on whether the CPU does bf16 in hardware (the fast path
uses bf16 autocast there), so the test skips where those differ from the recording. Re-record
only for a deliberate change of numbers, and say why in the commit.
"""
import json
import os
import tempfile

import pytest
import torch

from bitexact import runs

RECORDED = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'bitexact', 'recorded.json')


def recorded():
    with open(RECORDED) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def expected():
    saved = recorded()
    if saved['machine'] != runs.machine():
        pytest.skip('recorded with %s, this is %s' % (saved['machine'], runs.machine()))
    return saved['runs']


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(runs.SCENARIOS))
def test_same_outputs_as_recorded(name, expected):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as recorded
    try:
        with tempfile.TemporaryDirectory() as workdir:
            got = runs.run(name, workdir)
    finally:
        torch.set_num_threads(threads)
    want = expected[name]
    for part in ('jsonl', 'logs', 'weights', 'snapshots'):
        assert got[part] == want[part], '%s: %s differ' % (name, part)


def test_every_scenario_is_recorded():
    assert sorted(recorded()['runs']) == sorted(runs.SCENARIOS)
