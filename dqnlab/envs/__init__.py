"""Environments: making vector envs, NumPy CartPole physics, the target task, noise wrappers, pixels, LQR."""
