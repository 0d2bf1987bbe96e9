// The forward's data and tiles, shared by the row split (lstm_forward.cc) and the column split
// (lstm_columns.cc).
#pragma once

#include "lstm_simd.h"

namespace lstm_exp_native {

struct Layer {
  int64_t batch, steps, features, units, padded_units, chunk;
  const float* x;       // (B, T, F)
  const float* kernel;  // W packed (Hp/W, F, 4, W)
  const float* bias;    // (Hp/W, 4, W)
  const float* packed;  // U packed (Hp/W, H, 4, W)
  const int32_t* lengths;
  float* seq;           // (B, T, H)
  float* gates[4];      // (B, T, H) each, or null
  float* h[2];          // (B, Hp) double buffer: step t reads h[t % 2], writes the other
  float* c;             // (B, Hp), updated in place
};

// A thread's rows [first, last) and its projection buffer (chunk, rows, Hp/W, 4, W).
struct Rows {
  int64_t first, last;
  float* xp;
  float* gather;  // ROWS x F: a tile's x rows copied together when they span two steps
};

// xp for steps [t0, t0 + n) of the thread's rows: R consecutive (step, row) pairs per tile.
template <int R>
void project_tile(const Layer& L, const Rows& rows, int64_t t0, int64_t pair, int64_t jb) {
  const int64_t F = L.features, blocks = L.padded_units / W, nrows = rows.last - rows.first;
  const float* bias = L.bias + jb * 4 * W;
  vf acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < 4; ++g) acc[r][g] = load(bias + g * W);
  // Consecutive pairs are consecutive rows of one step (x rows T * F apart) unless the tile
  // crosses into the next step; that tile gathers its rows one by one.
  const int64_t s = pair / nrows, r0 = pair % nrows;
  const float* panel = L.kernel + jb * F * 4 * W;
  if (r0 + R <= nrows) {
    accumulate<R>(acc, L.x + ((rows.first + r0) * L.steps + t0 + s) * F, L.steps * F, panel, F);
  } else {
    for (int r = 0; r < R; ++r) {
      const int64_t p = pair + r, b = rows.first + p % nrows, t = t0 + p / nrows;
      std::memcpy(rows.gather + r * F, L.x + (b * L.steps + t) * F, sizeof(float) * F);
    }
    accumulate<R>(acc, rows.gather, F, panel, F);
  }
  for (int r = 0; r < R; ++r) {
    float* out = rows.xp + ((pair + r) * blocks + jb) * 4 * W;
    for (int g = 0; g < 4; ++g) store(out + g * W, acc[r][g]);
  }
}

template <int R>
void project_rows(const Layer& L, const Rows& rows, int64_t t0, int64_t pair, int64_t jb, int n) {
  if constexpr (R > 1) {
    if (n < R) return project_rows<R - 1>(L, rows, t0, pair, jb, n);
  }
  project_tile<R>(L, rows, t0, pair, jb);
}

// Rows [r0, r0 + R) x units [j0, j0 + W) at step t (step s of the chunk): the recurrent product
// on top of the projected input, then the cell in registers.
template <int R>
void step_tile(const Layer& L, const Rows& rows, int64_t t, int64_t s, int64_t r0, int64_t jb) {
  const int64_t H = L.units, Hp = L.padded_units, j0 = jb * W, blocks = Hp / W;
  const int64_t nrows = rows.last - rows.first;
  const int n = static_cast<int>(std::min<int64_t>(W, H - j0));
  const float* hin = L.h[t & 1] + r0 * Hp;
  float* hout = L.h[(t + 1) & 1];
  vf acc[R][4];
  for (int r = 0; r < R; ++r) {
    const float* xp = rows.xp + ((s * nrows + r0 - rows.first + r) * blocks + jb) * 4 * W;
    for (int g = 0; g < 4; ++g) acc[r][g] = load(xp + g * W);
  }
  // The outputs are one cache line per row (and gate), strided far apart through (B, T, H):
  // requested here, they arrive while the product runs instead of stalling the epilogue.
  for (int r = 0; r < R; ++r) {
    const int64_t at = ((r0 + r) * L.steps + t) * H + j0;
    for (int g = 0; g < 4; ++g)
      if (L.gates[g]) __builtin_prefetch(L.gates[g] + at, 1, 3);
    __builtin_prefetch(L.seq + at, 1, 3);
  }
  accumulate<R>(acc, hin, Hp, L.packed + jb * H * 4 * W, H);
  for (int r = 0; r < R; ++r) {
    const int64_t b = r0 + r, at = (b * L.steps + t) * H + j0;
    float* c = L.c + b * Hp + j0;
    if (t >= L.lengths[b]) {  // past the row's length: state carried, outputs zero
      store(hout + b * Hp + j0, load(hin + r * Hp + j0));
      store_n(L.seq + at, vf{}, n);
      for (int g = 0; g < 4; ++g)
        if (L.gates[g]) store_n(L.gates[g] + at, vf{}, n);
      continue;
    }
    const vf i = vsigmoid(acc[r][0]);
    const vf f = vsigmoid(acc[r][1]);
    const vf g = vtanh(acc[r][2]);
    const vf o = vsigmoid(acc[r][3]);
    const vf cn = f * load(c) + i * g;
    const vf hn = o * vtanh(cn);
    store(c, cn);
    store(hout + b * Hp + j0, hn);
    store_n(L.seq + at, hn, n);
    const vf acts[4] = {i, f, g, o};
    for (int q = 0; q < 4; ++q)
      if (L.gates[q]) store_n(L.gates[q] + at, acts[q], n);
  }
}

template <int R>
void step_rows(const Layer& L, const Rows& rows, int64_t t, int64_t s, int64_t r0, int64_t jb,
               int n) {
  if constexpr (R > 1) {
    if (n < R) return step_rows<R - 1>(L, rows, t, s, r0, jb, n);
  }
  step_tile<R>(L, rows, t, s, r0, jb);
}

// The whole layer for rows [first, last): independent of every other row.
inline void run_rows(const Layer& L, int64_t first, int64_t last) {
  const int64_t blocks = L.padded_units / W, nrows = last - first;
  const int64_t chunk = std::min<int64_t>(L.steps, L.chunk);
  std::vector<float> buffer(chunk * nrows * blocks * 4 * W + ROWS * L.features);
  const Rows rows{first, last, buffer.data(), buffer.data() + chunk * nrows * blocks * 4 * W};
  for (int64_t t0 = 0; t0 < L.steps; t0 += chunk) {
    const int64_t n = std::min<int64_t>(chunk, L.steps - t0);
    // Unit blocks outside: one W (or U) panel serves every row (and step) before the next.
    for (int64_t jb = 0; jb < blocks; ++jb)
      for (int64_t pair = 0; pair < n * nrows; pair += ROWS)
        project_rows<ROWS>(L, rows, t0, pair, jb,
                           static_cast<int>(std::min<int64_t>(ROWS, n * nrows - pair)));
    for (int64_t s = 0; s < n; ++s)
      for (int64_t jb = 0; jb < blocks; ++jb)
        for (int64_t r0 = first; r0 < last; r0 += ROWS)
          step_rows<ROWS>(L, rows, t0 + s, s, r0, jb,
                          static_cast<int>(std::min<int64_t>(ROWS, last - r0)));
  }
}

// The whole layer split by unit blocks over `threads` threads, on the caller and the pool
// (lstm_columns.cc).
void run_columns(const Layer& layer, int64_t threads, tensorflow::thread::ThreadPool* pool);

}  // namespace lstm_exp_native
