"""The `native` engine: a C++ TensorFlow op that runs one LSTM layer's whole time loop.

`build.py` compiles `lstm_kernel.cc` on first use against the installed TensorFlow (cached per
user, TensorFlow version, source and CPU); `engine.py` wraps the op as `NativeLSTMStack`.
Importing this package imports neither TensorFlow nor a compiler.
"""
