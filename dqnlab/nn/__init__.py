"""Neural-network building blocks: Q-networks, the hand-written MLP fast path, foreach optimizers."""
