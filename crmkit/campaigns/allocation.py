"""Budget allocation by return per pound: at most one treatment per customer, within a budget.

Given, for every customer ``i`` and treatment ``t``, the expected incremental value
``gain[i, t]`` of sending ``t`` (NaN: not an option) and each treatment's cost per
contact, choose for each customer at most one treatment so that the sum of
``gain - cost`` is as large as possible while the spend stays within the budget and the
list within its size. This is the multiple-choice knapsack problem; crmkit solves it with
the greedy of its LP relaxation and the classic upgrade step (Sinha & Zoltners 1979):

1. a customer's options with a positive net value ``gain - cost`` are put on the upper
   convex hull of (cost, net value) starting from "no contact" at (0, 0); an option
   under the hull is never worth its cost against a mix of its neighbours;
2. each step along a hull, from one option to the next dearer one, is an *increment*
   with a return per pound ``d(net) / d(cost)``, decreasing along the hull;
3. all increments are taken in order of return per pound (ties: customer id, then
   step), each when its cost fits what is left of the budget; an increment that does
   not fit blocks that customer's later (dearer) upgrades, and the scan goes on with
   cheaper increments of other customers, so money left over at the end is still spent.

A customer whose every option loses money is never contacted. Only the treatment group
pays: a control customer is put on the list by the same rule (their increment must fit
what is left) but spends nothing, so who is listed does not depend on one's own group
and the control group stays comparable with the contacted one. The result is exact for
the LP relaxation up to one customer and never exceeds the budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-12


@dataclass(frozen=True)
class Allocation:
    """The chosen treatment per customer (-1: none) and what the budget bought."""

    chosen: np.ndarray
    spent: float
    #: Return per pound (net value per unit cost) of the last increment taken; None
    #: when nothing was bought.
    marginal_return: float | None
    #: Per customer: the return per pound of their last increment taken (NaN: none).
    last_ratio: np.ndarray
    #: Per customer: the position of their first increment in the scan (-1: none).
    first_taken: np.ndarray


def _hull_steps(
    net: np.ndarray, cost: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Increments along every customer's hull: customer, step, option, d(cost), d(net).

    ``net`` is ``n x T`` with NaN where a treatment is no option; ``cost`` is sorted
    ascending with distinct values.
    """
    n, t = net.shape
    current = np.full(n, -1)
    cur_cost = np.zeros(n)
    cur_net = np.zeros(n)
    rows: list[tuple[np.ndarray, ...]] = []
    for step in range(t):
        d_cost = cost[None, :] - cur_cost[:, None]
        d_net = net - cur_net[:, None]
        later = np.arange(t)[None, :] > current[:, None]
        ok = later & ~np.isnan(net) & (d_net > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(ok, np.where(d_cost > 0, d_net / d_cost, np.inf), -np.inf)
        best = np.argmax(slope, axis=1)
        who = np.flatnonzero(ok[np.arange(n), best])
        if who.size == 0:
            break
        to = best[who]
        rows.append((who, np.full(who.size, step), to, d_cost[who, to], d_net[who, to]))
        current[who], cur_cost[who], cur_net[who] = to, cost[to], net[who, to]
    if not rows:
        empty = np.zeros(0)
        return empty.astype(int), empty.astype(int), empty.astype(int), empty, empty
    who, steps, options, d_cost, d_net = (
        np.concatenate(parts) for parts in zip(*rows, strict=True)
    )
    return who, steps, options, d_cost, d_net


def _best_of_equal_cost(net: np.ndarray, sorted_cost: np.ndarray) -> np.ndarray:
    """Positive net values only, and of treatments of one cost only each customer's best."""
    net = np.where(net > 0, net, np.nan)
    rows = np.arange(net.shape[0])
    for price in np.unique(sorted_cost):
        same = np.flatnonzero(sorted_cost == price)
        if same.size > 1:  # the first on a tie
            block = net[:, same]
            best = np.argmax(np.where(np.isnan(block), -np.inf, block), axis=1)
            keep = np.zeros_like(block, dtype=bool)
            keep[rows, best] = True
            net[:, same] = np.where(keep, block, np.nan)
    return net


def _scan(
    scan: np.ndarray,
    steps_of: tuple[np.ndarray, ...],
    pays: np.ndarray,
    budget: float | None,
    size: int | None,
    n: int,
) -> tuple[np.ndarray, float, float | None, np.ndarray, np.ndarray]:
    """Take the increments in ``scan`` order where they fit (see the module's text)."""
    who, steps, options, d_cost, ratio = steps_of
    chosen, last_ratio, first_taken = np.full(n, -1), np.full(n, np.nan), np.full(n, -1)
    left = np.inf if budget is None else float(budget)
    room = n if size is None else int(size)
    blocked = np.zeros(n, dtype=bool)
    spent, last = 0.0, None
    for position, k in enumerate(scan):
        i = who[k]
        if blocked[i]:
            continue
        if (steps[k] == 0 and room == 0) or d_cost[k] > left + 1e-9:
            blocked[i] = True
            continue
        if pays[i]:
            left -= d_cost[k]
            spent += d_cost[k]
        if steps[k] == 0:
            room -= 1
            first_taken[i] = position
        chosen[i] = options[k]
        last = last_ratio[i] = float(ratio[k])
    return chosen, spent, last, last_ratio, first_taken


def allocate(
    gain: np.ndarray,
    cost: np.ndarray,
    pays: np.ndarray,
    budget: float | None,
    size: int | None = None,
) -> Allocation:
    """Choose at most one treatment per customer (rows of ``gain``, in tie-break order).

    Parameters
    ----------
    gain
        ``n x T`` expected incremental value of each treatment; NaN where not an option.
    cost
        ``T`` costs per contact.
    pays
        ``n`` booleans: whether the customer's contact is paid (the treatment group).
    budget, size
        Most spend (None: no limit) and most customers listed (None: no limit).
    """
    n, t = gain.shape
    if n == 0 or t == 0:
        return Allocation(np.full(n, -1), 0.0, None, np.full(n, np.nan), np.full(n, -1))
    order = np.argsort(cost, kind="stable")
    sorted_cost = np.asarray(cost, dtype=np.float64)[order]
    net = _best_of_equal_cost(
        np.asarray(gain, dtype=np.float64)[:, order] - sorted_cost[None, :], sorted_cost
    )
    who, steps, options, d_cost, d_net = _hull_steps(net, sorted_cost)
    with np.errstate(divide="ignore"):
        ratio = np.where(d_cost > 0, d_net / np.maximum(d_cost, _EPS), np.inf)
    scan = np.lexsort((steps, who, -d_net, -ratio))
    taken = _scan(scan, (who, steps, options, d_cost, ratio), pays, budget, size, n)
    chosen, spent, last, last_ratio, first_taken = taken
    mapped = np.where(chosen >= 0, order[np.maximum(chosen, 0)], -1)
    return Allocation(mapped, float(round(spent, 10)), last, last_ratio, first_taken)
