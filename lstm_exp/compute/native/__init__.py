"""The `native` engine: a C++ TensorFlow op that runs one LSTM layer's whole time loop.

`build.py` compiles the op's sources (`lstm_forward.cc`, `lstm_columns.cc`, `lstm_backward.cc`)
against the installed TensorFlow for the widest vector unit that compiles (`cpu.py` names this
CPU's); `cache.py` keeps the library per user, TensorFlow version, source and CPU, and verifies it
before it is loaded; `engine.py` loads it and wraps the op as `NativeLSTMStack`. Importing this
package imports neither TensorFlow nor a compiler.
"""
