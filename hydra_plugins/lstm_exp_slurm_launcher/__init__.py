"""lstm_exp's Slurm launcher (see lstm_exp_slurm_launcher.py)."""
