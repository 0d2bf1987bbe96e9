"""lstm_exp's Hydra sweeper (see lstm_exp_sweeper.py)."""
