"""`python -m lstm_exp.dynamics`: forwards to `lstm_exp.cli.dynamics`, where the entry point lives."""

from lstm_exp.cli.dynamics import main

if __name__ == "__main__":
    main()
