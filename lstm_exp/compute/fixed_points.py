"""Fixed points of a trained LSTM stack with its input held constant, and their stability.

Sussillo & Barak (2013): a state x with F(x) = x, F one step of the stack (`lstm_map.step`), found by
minimising q(x) = ½‖F(x) − x‖² from many initial states. Ours, in float64 NumPy:

- initial states: `n_inits` states drawn from the run's own trajectories (every layer's h and c at one
  (row, step) of the recorded batch), plus Gaussian noise of standard deviation `noise`;
- optimizer: Levenberg–Marquardt on the residual r = F(x) − x with the analytic Jacobian, all initial
  states at once, each with its own damping λ (start 1e-2; ÷10 after a step that lowers q, ×10 and
  the step undone otherwise). Near a fixed point it is Newton's method: q falls to ~1e-30 in a few
  steps, where FixedPointFinder's Adam needs thousands;
- stopping: a state converged when q < `tol_q` (1e-12, FixedPointFinder's); it stops trying when its λ
  passes 1e12 (a local minimum of q, a "slow point"), and everything stops after `max_iters` (200)
  steps or `max_seconds` (60 s), the initial states taken 1024 at a time (`SEARCH_CHUNK`: memory), all
  under one deadline. States still above `tol_q` are counted as not converged, not an error;
- outliers: a converged state farther from the initial states' centroid than `outlier_scale` (10)
  times their mean distance to it is dropped (FixedPointFinder's `outlier_distance_scale`);
- duplicates: two points closer than `tol_unique` (1e-3, Euclidean) are one; the one of lower q stays;
- stability: the eigenvalues of dF/dx at each point; stable when all |λ| < 1, else unstable with its
  number of unstable modes (|λ| ≥ 1) — a saddle when some modes are stable.
"""

import time
from dataclasses import dataclass

import numpy as np

from lstm_exp.compute.lstm_map import cell_trajectory, state_slices, step
from lstm_exp.config import names
from lstm_exp.config.analysis import N_INITS, SEARCH_CHUNK
from lstm_exp.config.specs import ModelSpec

_DAMPING_START, _DAMPING_GIVE_UP, _DAMPING_FLOOR = 1e-2, 1e12, 1e-12


@dataclass(frozen=True)
class FixedPointOptions:
    """The search's settings; the defaults are what `python -m lstm_exp.dynamics` uses."""

    n_inits: int = N_INITS
    noise: float = 0.5
    tol_q: float = 1e-12
    tol_unique: float = 1e-3
    max_iters: int = 200
    max_seconds: float = 60.0
    outlier_scale: float = 10.0
    seed: int = 0


@dataclass
class FixedPoints:
    """The unique fixed points found, with what the search tried."""

    points: np.ndarray  # (P, D): [h_0, c_0, h_1, c_1, ...] (`lstm_map.state_slices`)
    q: np.ndarray  # (P,)
    jacobians: np.ndarray  # (P, D, D): dF/dx at each point
    eigenvalues: np.ndarray  # (P, D) complex, by decreasing modulus
    unstable_modes: np.ndarray  # (P,) int: eigenvalues with |λ| >= 1
    n_inits: int
    n_not_converged: int  # initial states whose q stayed above tol_q
    n_outliers: int
    iterations: int

    @property
    def stable(self) -> np.ndarray:
        """(P,) bool: every |λ| < 1."""
        return self.unstable_modes == 0

    @property
    def max_q(self) -> float:
        return float(self.q.max()) if len(self.q) else 0.0


def trajectory_states(spec: ModelSpec, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Every (row, step) of the recorded batch as a stack state, (B, T, D).

    h comes from `layer_{k}/sequence`; c is rebuilt from the recorded gates (`cell_trajectory`).
    """
    parts = []
    for k in range(len(spec.units)):
        h = np.asarray(arrays[names.array_name(k, names.SEQUENCE)], np.float64)
        gates = {g: arrays[names.gate_name(k, g)] for g in ("i", "f", "g")}
        parts += [h, cell_trajectory(gates)]
    return np.concatenate(parts, axis=-1)  # (B, T, D)


def find_fixed_points(spec: ModelSpec, weights: dict[str, np.ndarray], u: np.ndarray,
                      trajectories: np.ndarray,
                      options: FixedPointOptions = FixedPointOptions()) -> FixedPoints:
    """Finds the fixed points of the stack under the constant input `u`.

    Args:
        spec: a plain LSTM stack (`config.analysis.check_plain_lstm`).
        weights: keras layout.
        u: the constant input (F,).
        trajectories: recorded states (N, D) to start from (`trajectory_states`, flattened).
        options: see `FixedPointOptions` and the module docstring.

    Example:
        >>> states = trajectory_states(spec, arrays).reshape(-1, 32)  # (B*T, D)
        >>> found = find_fixed_points(spec, weights, np.zeros(3), states)
        >>> int(found.stable.sum()), found.n_not_converged
        (8, 3)
    """
    rng = np.random.default_rng([options.seed, 25])
    picks = rng.integers(0, len(trajectories), options.n_inits)
    noise = rng.standard_normal((options.n_inits, trajectories.shape[1]))
    starts = trajectories[picks] + options.noise * noise
    # A chunk of initial states at a time bounds memory, and one deadline for all: the chunks that
    # finish in time keep their points, those the deadline stops are counted as not converged.
    deadline = time.monotonic() + options.max_seconds
    x, q, iterations = starts.copy(), np.full(len(starts), np.inf), 0
    for first in range(0, len(starts), SEARCH_CHUNK):
        rows = slice(first, first + SEARCH_CHUNK)
        x[rows], q[rows], steps = _levenberg_marquardt(spec, weights, u, x[rows], options, deadline)
        iterations = max(iterations, steps)
    converged = q < options.tol_q
    centroid = starts.mean(axis=0)
    scale = np.linalg.norm(starts - centroid, axis=1).mean()
    outlier = converged & (np.linalg.norm(x - centroid, axis=1) > options.outlier_scale * scale)
    keep = _unique(x[converged & ~outlier], q[converged & ~outlier], options.tol_unique)
    points, q_kept = x[converged & ~outlier][keep], q[converged & ~outlier][keep]
    _, jacobians = step(spec, weights, u, points)
    eigenvalues = np.linalg.eigvals(jacobians) if len(points) else np.zeros((0, x.shape[1]), complex)
    eigenvalues = np.take_along_axis(eigenvalues, np.argsort(-np.abs(eigenvalues), axis=1), axis=1)
    unstable = (np.abs(eigenvalues) >= 1.0).sum(axis=1)
    order = np.lexsort((q_kept, unstable))  # stable points first
    return FixedPoints(points[order], q_kept[order], jacobians[order], eigenvalues[order], unstable[order],
                       options.n_inits, int((~converged).sum()), int(outlier.sum()), iterations)


def _levenberg_marquardt(spec, weights, u, x, options, deadline: float):
    """Minimises q from every row of x at once until `deadline` (time.monotonic); returns (x, q, steps)."""
    damping = np.full(len(x), _DAMPING_START)
    fx, jac = step(spec, weights, u, x)
    residual = fx - x
    q = 0.5 * np.sum(residual**2, axis=1)
    damping[~np.isfinite(q)] = _DAMPING_GIVE_UP  # a state whose step overflowed is not tried
    eye = np.eye(x.shape[1])
    iterations = 0
    while iterations < options.max_iters and time.monotonic() < deadline:
        active = (q >= options.tol_q) & (damping < _DAMPING_GIVE_UP)
        if not active.any():
            break
        iterations += 1
        jr = jac[active] - eye  # dr/dx, (A, D, D)
        jt = np.swapaxes(jr, 1, 2)
        # The identity under λ keeps the system positive definite (solvable) however small λ gets.
        normal = jt @ jr + damping[active, None, None] * eye
        delta = np.linalg.solve(normal, -(jt @ residual[active][..., None]))[..., 0]
        trial = x[active] + delta
        f_trial, j_trial = step(spec, weights, u, trial)
        r_trial = f_trial - trial
        q_trial = 0.5 * np.sum(r_trial**2, axis=1)
        better = q_trial < q[active]
        rows = np.flatnonzero(active)[better]
        x[rows], residual[rows] = trial[better], r_trial[better]
        q[rows], jac[rows] = q_trial[better], j_trial[better]
        damping[rows] = np.maximum(damping[rows] / 10.0, _DAMPING_FLOOR)
        damping[np.flatnonzero(active)[~better]] *= 10.0
    return x, q, iterations


def _unique(points: np.ndarray, q: np.ndarray, tolerance: float) -> np.ndarray:
    """Indices of the points left when each closer than `tolerance` to a kept one (of lower q) goes."""
    kept: list[int] = []
    for index in np.argsort(q, kind="stable"):
        if all(np.linalg.norm(points[index] - points[k]) >= tolerance for k in kept):
            kept.append(int(index))
    return np.asarray(kept, dtype=int)


def readout_at(points: np.ndarray, spec: ModelSpec, readout: dict[str, np.ndarray]) -> np.ndarray:
    """The trained readout applied to each point's last-layer h: (P, O), what the task would answer there."""
    h = points[:, state_slices(spec)[names.array_name(len(spec.units) - 1, names.H)]]
    kernel, bias = (np.asarray(readout[n], np.float64) for n in ("readout/kernel", "readout/bias"))
    return h @ kernel + bias


def pca_projection(trajectories: np.ndarray, points: np.ndarray, components: int = 2):
    """The recorded states and the fixed points on the states' first principal components.

    Args:
        trajectories: (B, T, D) recorded states (`trajectory_states` before flattening).
        points: (P, D).

    Returns:
        ((B, T, components), (P, components)); the components are the states' (centred SVD); a
        batch of fewer states than components (one step of one row) gets zeros for the rest.
    """
    flat = trajectories.reshape(-1, trajectories.shape[-1])
    mean = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    basis = np.zeros((flat.shape[1], components))  # (D, components): zero columns past the data's rank
    basis[:, : min(components, len(vt))] = vt[:components].T
    return (trajectories - mean) @ basis, (points - mean) @ basis
