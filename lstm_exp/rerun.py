"""`python -m lstm_exp.rerun`: forwards to `lstm_exp.cli.rerun`, where the entry point lives."""

from lstm_exp.cli.rerun import main

if __name__ == "__main__":
    main()
