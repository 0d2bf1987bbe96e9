"""`python -m lstm_exp.compare`: forwards to `lstm_exp.cli.compare`, where the entry point lives."""

from lstm_exp.cli.compare import main

if __name__ == "__main__":
    main()
