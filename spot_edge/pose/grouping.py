"""Limb matching and person assembly: the original's greedy grouping (shared by both parsers).

Inputs are the keypoint candidates (one global index per candidate, its confidence) and, per limb,
the ``(nA, nB)`` PAF scores of every candidate pair (``-inf``: the pair fails the criteria).

1. Per limb, pairs are taken best score first; a pair is kept when neither candidate is already
   used by that limb, until ``min(nA, nB)`` pairs are kept (:func:`greedy_connections`).
2. Limbs are visited in the model's order (:data:`~spot_edge.pose.skeleton.LIMBS`). For each kept
   pair (a, b), the people holding candidate a (in slot a) or b (in slot b) are looked up:

   - one person: b joins it unless it already holds b (it replaces whatever was in slot b, and the
     person's part count and score grow: the original's behaviour, kept);
   - two people with no keypoint type in common: they merge (scores and counts add, plus the limb);
     two overlapping people: b joins the first one as above (without the "already holds b" check);
   - nobody: a new person with a and b, unless the limb is one of the two redundant
     shoulder-ear limbs (they may only complete people).

   A person's score is the sum of its keypoint confidences and limb scores; people with fewer
   than ``min_parts`` parts or a mean (score / parts) below ``min_mean_score`` are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spot_edge.pose.skeleton import LIMBS, NUM_KEYPOINTS

#: limbs that may join keypoints to an existing person but never start one (shoulder-ear)
REDUNDANT_LIMBS = frozenset({17, 18})


def ranked_pairs(limb_scores: list[np.ndarray]) -> tuple[list, list, list, list]:
    """The acceptable pairs of all limbs (finite scores), by limb, then best score first, ties in
    the candidates' order (a-major, as the original's stable sort): four lists ``limb, a, b, score``
    (local candidate indices)."""
    sizes = [m.size for m in limb_scores]
    flat = np.concatenate([np.ravel(m) for m in limb_scores]) if sum(sizes) else np.zeros(0)
    keep = np.flatnonzero(np.isfinite(flat))
    if not len(keep):
        return [], [], [], []
    first = np.zeros(len(sizes), np.int64)
    np.cumsum(sizes[:-1], out=first[1:])
    limb = np.searchsorted(first, keep, side="right") - 1
    order = np.lexsort((keep, -flat[keep], limb))
    keep, limb = keep[order], limb[order]
    widths = np.array([m.shape[1] if m.ndim == 2 else 0 for m in limb_scores], np.int64)
    a, b = np.divmod(keep - first[limb], widths[limb])
    return limb.tolist(), a.tolist(), b.tolist(), flat[keep].tolist()


def greedy_connections(scores: np.ndarray) -> list[tuple[int, int, float]]:
    """Best-first one-to-one matching of a ``(nA, nB)`` score matrix (``-inf`` = forbidden).

    Ties keep the candidates' order (a-major), as the original's stable sort does.
    """
    _, ranked_a, ranked_b, ranked_s = ranked_pairs([scores])
    used_a, used_b, matches = set(), set(), []
    limit = min(scores.shape)
    for a, b, s in zip(ranked_a, ranked_b, ranked_s):
        if a in used_a or b in used_b:
            continue
        used_a.add(a)
        used_b.add(b)
        matches.append((a, b, s))
        if len(matches) >= limit:
            break
    return matches


class _Person:
    __slots__ = ("order", "slots", "total", "count")

    def __init__(self, order: int) -> None:
        self.order = order
        self.slots = [-1] * NUM_KEYPOINTS
        self.total = 0.0
        self.count = 0.0


@dataclass
class People:
    """Assembled people: ``slots`` ``(P, 18)`` global candidate index per keypoint (-1 absent),
    ``totals`` ``(P,)`` summed scores, ``counts`` ``(P,)`` part counts as the original keeps them."""

    slots: np.ndarray
    totals: np.ndarray
    counts: np.ndarray


def assemble_people(limb_scores: list[np.ndarray], part_starts: np.ndarray, candidate_scores: np.ndarray,
                    min_parts: int = 4, min_mean_score: float = 0.4) -> People:
    """Group candidates into people (see the module docstring).

    Args:
        limb_scores: per limb ``l`` the ``(nA, nB)`` scores of the candidates of parts
            ``LIMBS[l]`` (local indices within each part); an empty matrix when either part has none.
        part_starts: ``(18,)`` global index of each part's first candidate.
        candidate_scores: ``(N,)`` keypoint confidence per global candidate index.
        min_parts, min_mean_score: the final filter.
    """
    people: list[_Person] = []
    holders: dict[int, list[_Person]] = {}  # global candidate index -> the people holding it
    conf = np.asarray(candidate_scores, dtype=np.float64).tolist()
    starts = [int(v) for v in part_starts]

    def put(person: _Person, slot: int, cand: int) -> None:
        old = person.slots[slot]
        if old >= 0:
            holders[old].remove(person)
        person.slots[slot] = cand
        holders.setdefault(cand, []).append(person)

    # the greedy matching of each limb (best pair first, each candidate once per limb, at most
    # min(nA, nB) pairs), each kept pair assembled as soon as it is chosen: the original's order
    current, used_a, used_b, matched, limit, created = -1, set(), set(), 0, 0, 0
    part_a = part_b = 0
    for limb, ia, ib, s in zip(*ranked_pairs(limb_scores)):
        if limb != current:
            current, used_a, used_b, matched = limb, set(), set(), 0
            limit = min(limb_scores[limb].shape)
            part_a, part_b = LIMBS[limb]
        if matched >= limit or ia in used_a or ib in used_b:
            continue
        used_a.add(ia)
        used_b.add(ib)
        matched += 1
        a, b = starts[part_a] + ia, starts[part_b] + ib
        rows = list(holders.get(a, ()))  # holding a means holding it in slot part_a
        for p in holders.get(b, ()):
            if p not in rows:
                rows.append(p)
        if len(rows) == 1:
            person = rows[0]
            if person.slots[part_b] != b:
                put(person, part_b, b)
                person.count += 1
                person.total += conf[b] + s
        elif len(rows) == 2:
            first, second = sorted(rows, key=lambda p: p.order)
            if not any(x >= 0 and y >= 0 for x, y in zip(first.slots, second.slots)):
                for slot, cand in enumerate(second.slots):
                    if cand >= 0:
                        holders[cand].remove(second)
                        put(first, slot, cand)
                first.total += second.total + s
                first.count += second.count
                people.remove(second)
            else:
                put(first, part_b, b)
                first.count += 1
                first.total += conf[b] + s
        elif not rows and limb not in REDUNDANT_LIMBS:
            person = _Person(order=created)
            created += 1
            put(person, part_a, a)
            put(person, part_b, b)
            person.count = 2
            person.total = conf[a] + conf[b] + s
            people.append(person)
        # three or more holders cannot happen with a consistent grouping: ignored

    kept = [p for p in people if p.count >= min_parts and p.total / p.count >= min_mean_score]
    slots = np.array([p.slots for p in kept], dtype=np.int64).reshape(-1, NUM_KEYPOINTS)
    return People(slots=slots, totals=np.array([p.total for p in kept], dtype=np.float64),
                  counts=np.array([p.count for p in kept], dtype=np.float64))


__all__ = ["REDUNDANT_LIMBS", "ranked_pairs", "greedy_connections", "People", "assemble_people"]
