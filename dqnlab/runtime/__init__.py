"""What every training run shares: the loop, evaluation, the run directory and checkpoints, the policy file."""
