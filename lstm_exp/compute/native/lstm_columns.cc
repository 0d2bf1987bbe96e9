// The gate-column split of the forward op (lstm_forward.cc), `split="columns"`.
//
// The other way to share one layer: the threads split the unit blocks (the columns of U) of every
// row, one barrier per step (h_t must be whole before any block computes step t + 1). Thread p owns
// a contiguous range of blocks, so it keeps streaming the same slice of U (1/P of it, which can
// stay in its L2 where the row split streams all of U per thread); and the work of a step comes in
// one piece per block, so it balances finely: a block is claimed, not assigned. Its owner claims
// its blocks in order; a thread done with its own takes the others' unclaimed blocks from the far
// end, so a descheduled thread (or a pool thread not started yet) delays the step by one block at
// most, and the op never waits for a thread that does not come. Which split is faster depends on
// the CPU, its load and the shape; the caller chooses by measuring (split_choice.py).
// The projection of a chunk of steps is part of each block's first step of the chunk, into one
// buffer the blocks share, so whoever claims a block's step has its input ready. Every value comes
// from the same tile code as in the row split: the outputs are bit-identical to it.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#endif

#include "lstm_forward.h"

namespace lstm_exp_native {
namespace {

struct Columns {
  Layer L;
  int64_t threads, blocks;
  std::vector<float> xp;                         // (chunk, B, Hp/W, 4, W), shared
  std::unique_ptr<std::atomic<int64_t>[]> next;  // per unit block: the next step to claim
  std::atomic<int64_t> done{0};                  // block-steps finished, all steps together
  std::atomic<int64_t> joined{0};                // participants so far: the caller is 0
  std::atomic<int32_t> steps{0};                 // steps finished: the futex sleepers wait on
  std::atomic<int32_t> sleepers{0};
};
static_assert(sizeof(std::atomic<int32_t>) == 4, "a futex word is 32 bits");

// Unit block jb at step t: the chunk's projection first when t opens a chunk, then the recurrence.
void run_block(const Columns& S, float* gather, int64_t jb, int64_t t) {
  const Layer& L = S.L;
  const int64_t t0 = t / L.chunk * L.chunk, s = t - t0, B = L.batch;
  const Rows rows{0, B, const_cast<float*>(S.xp.data()), gather};
  if (s == 0) {
    const int64_t n = std::min<int64_t>(L.chunk, L.steps - t0);
    for (int64_t pair = 0; pair < n * B; pair += ROWS)
      project_rows<ROWS>(L, rows, t0, pair, jb, static_cast<int>(std::min<int64_t>(ROWS, n * B - pair)));
  }
  for (int64_t r0 = 0; r0 < B; r0 += ROWS)
    step_rows<ROWS>(L, rows, t, s, r0, jb, static_cast<int>(std::min<int64_t>(ROWS, B - r0)));
}

// Waits until `done` reaches `target`: a short spin (a step's last block is usually microseconds
// away), then asleep on the futex of `steps`, which the thread that finishes a step bumps. Spinning
// longer burnt a core per waiting thread on a loaded machine (median CPU per pass +25%).
void wait_for(Columns& S, int64_t target) {
  for (int spin = 0; spin < 256; ++spin) {
    if (S.done.load(std::memory_order_acquire) >= target) return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  while (true) {
    const int32_t seen = S.steps.load(std::memory_order_acquire);
    if (S.done.load(std::memory_order_acquire) >= target) return;
    S.sleepers.fetch_add(1, std::memory_order_acq_rel);
#if defined(__linux__)
    // Woken by finish_block; the timeout only bounds each sleep, should a wake-up ever be missed.
    const timespec timeout{0, 10 * 1000 * 1000};
    syscall(SYS_futex, reinterpret_cast<int32_t*>(&S.steps), FUTEX_WAIT_PRIVATE, seen, &timeout,
            nullptr, 0);
#else
    std::this_thread::yield();
#endif
    S.sleepers.fetch_sub(1, std::memory_order_acq_rel);
  }
}

// After one more block-step: the thread that completes a step wakes the sleepers.
void finish_block(Columns& S) {
  const int64_t done = S.done.fetch_add(1, std::memory_order_acq_rel) + 1;
  if (done % S.blocks != 0) return;
  S.steps.fetch_add(1, std::memory_order_acq_rel);
  if (S.sleepers.load(std::memory_order_acquire) > 0) {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<int32_t*>(&S.steps), FUTEX_WAKE_PRIVATE, INT32_MAX,
            nullptr, nullptr, 0);
#endif
  }
}

// Runs block jb's step t unless another thread has claimed it.
void try_block(Columns& S, float* gather, int64_t jb, int64_t t) {
  int64_t expected = t;
  if (S.next[jb].load(std::memory_order_relaxed) != t ||
      !S.next[jb].compare_exchange_strong(expected, t + 1, std::memory_order_acq_rel))
    return;
  run_block(S, gather, jb, t);
  finish_block(S);
}

void column_worker(Columns& S) {
  const int64_t p = S.joined.fetch_add(1), P = S.threads, J = S.blocks;
  const int64_t own0 = p < P ? J * p / P : 0, own1 = p < P ? J * (p + 1) / P : 0;
  std::vector<float> gather(ROWS * S.L.features);
  for (int64_t t = 0; t < S.L.steps; ++t) {
    wait_for(S, t * J);  // h_t is whole
    for (int64_t jb = own0; jb < own1; ++jb) try_block(S, gather.data(), jb, t);
    for (int64_t jb = J - 1; jb >= 0; --jb) try_block(S, gather.data(), jb, t);  // the others' left
  }
}

}  // namespace

void run_columns(const Layer& layer, int64_t threads, tensorflow::thread::ThreadPool* pool) {
  auto S = std::make_shared<Columns>();
  S->L = layer;
  S->blocks = layer.padded_units / W;
  S->threads = std::max<int64_t>(1, std::min<int64_t>(threads, S->blocks));
  S->xp.resize(std::min(layer.steps, layer.chunk) * layer.batch * layer.padded_units * 4);
  S->next.reset(new std::atomic<int64_t>[S->blocks]);
  for (int64_t jb = 0; jb < S->blocks; ++jb) S->next[jb].store(0);
  // A pool task that starts after the op has returned finds every block claimed and the barrier
  // passed, so it touches only S, which it keeps alive.
  for (int64_t i = 1; i < S->threads; ++i) pool->Schedule([S] { column_worker(*S); });
  column_worker(*S);
  wait_for(*S, layer.steps * S->blocks);
}

}  // namespace lstm_exp_native
