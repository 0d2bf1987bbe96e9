"""`python -m lstm_exp.run`: forwards to `lstm_exp.cli.run`, where the entry point lives."""

from lstm_exp.cli.run import main

if __name__ == "__main__":
    main()
