"""Plumbing shared by the training scripts, one concern per module:

  cli          the arguments' declarations (ArgumentParser), rules, signals
  errors       the errors a command reports in one line
  progress     the device line, images/s and the time left in the epoch and the run
  distributed  processes and devices (torchrun), rank-0 printing
  speed        the speed layer the scripts apply: prepare(net), graphed(step), per_view
  models       the ResNet-50 (torchvision's, with a fresh classifier)
  label_export the labels file: each training image's division and prediction
  data         the data contract every loader follows (NoisyLabelDataset, make_loader)
  checkpoint   seeding, random states, atomic writes, safe checkpoint loading
  runlog       a run's files: logs, arguments, checkpoints, resume
  snapshots    what a run saves for its figures (tools/figures.py draws them)
"""
