"""Plumbing shared by the training scripts, one concern per module:

  cli          one-line errors, signals, the progress line
  distributed  processes and devices (torchrun), rank-0 printing
  speed        the speed layer the scripts apply: prepare(net), graphed(step)
  data         the data contract every loader follows (NoisyLabelDataset, make_loader)
  checkpoint   seeding, random states, atomic writes, safe checkpoint loading
  runlog       a run's files: logs, arguments, checkpoints, resume
  snapshots    what a run saves for its figures (tools/figures.py draws them)
"""
