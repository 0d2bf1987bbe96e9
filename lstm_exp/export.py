"""`python -m lstm_exp.export`: forwards to `lstm_exp.cli.export`, where the entry point lives."""

from lstm_exp.cli.export import main

if __name__ == "__main__":
    main()
