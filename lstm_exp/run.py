"""`python -m lstm_exp.run`: forwards to `lstm_exp.cli.run`, where the entry point lives."""

from lstm_exp.cli.run import console

if __name__ == "__main__":
    console()
