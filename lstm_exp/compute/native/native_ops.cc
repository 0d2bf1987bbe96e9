// The native op's one translation unit: every source, compiled together by build.py.
//
// Each source includes TensorFlow's framework headers, and parsing them is most of a build: five
// translation units took 41 s on a 2-core AMD EPYC (Zen 4), this one 8 s. The sources stay
// separate files to read; compiled as one, no two of them may define the same name.
#include "lstm_forward.cc"
#include "lstm_columns.cc"
#include "lstm_backward.cc"
#include "gru_forward.cc"
#include "gru_backward.cc"
