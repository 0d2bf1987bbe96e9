"""`python -m lstm_exp.report`: forwards to `lstm_exp.cli.report`, where the entry point lives."""

from lstm_exp.cli.report import main

if __name__ == "__main__":
    main()
