"""`python -m lstm_exp.weights`: forwards to `lstm_exp.cli.weights`, where the entry point lives."""

from lstm_exp.cli.weights import main

if __name__ == "__main__":
    main()
