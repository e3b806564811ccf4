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

from dataclasses import dataclass, field

import numpy as np

from spot_edge.pose.skeleton import LIMBS, NUM_KEYPOINTS

#: limbs that may join keypoints to an existing person but never start one (shoulder-ear)
REDUNDANT_LIMBS = frozenset({17, 18})


def greedy_connections(scores: np.ndarray) -> list[tuple[int, int, float]]:
    """Best-first one-to-one matching of a ``(nA, nB)`` score matrix (``-inf`` = forbidden).

    Ties keep the candidates' order (a-major), as the original's stable sort does.
    """
    ia, ib = np.nonzero(np.isfinite(scores))
    if len(ia) == 0:
        return []
    # sorting (-score, a, b) tuples is the stable descending sort of the a-major pair list
    ranked = sorted(zip((-scores[ia, ib]).tolist(), ia.tolist(), ib.tolist()))
    used_a, used_b, matches = set(), set(), []
    limit = min(scores.shape)
    for neg, a, b in ranked:
        if a in used_a or b in used_b:
            continue
        used_a.add(a)
        used_b.add(b)
        matches.append((a, b, -neg))
        if len(matches) >= limit:
            break
    return matches


@dataclass
class _Person:
    order: int
    slots: list[int] = field(default_factory=lambda: [-1] * NUM_KEYPOINTS)
    total: float = 0.0
    count: float = 0.0


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
    holders: dict[int, list[_Person]] = {}  # global candidate index -> people holding it
    next_order = 0

    def put(person: _Person, slot: int, cand: int) -> None:
        old = person.slots[slot]
        if old >= 0:
            holders[old].remove(person)
        person.slots[slot] = cand
        holders.setdefault(cand, []).append(person)

    for limb, (part_a, part_b) in enumerate(LIMBS):
        scores = limb_scores[limb]
        if scores.size == 0:
            continue
        for ia, ib, s in greedy_connections(scores):
            a = int(part_starts[part_a]) + ia
            b = int(part_starts[part_b]) + ib
            found = {id(p): p for p in holders.get(a, ()) if p.slots[part_a] == a}
            found.update({id(p): p for p in holders.get(b, ()) if p.slots[part_b] == b})
            rows = sorted(found.values(), key=lambda p: p.order)
            if len(rows) == 1:
                person = rows[0]
                if person.slots[part_b] != b:
                    put(person, part_b, b)
                    person.count += 1
                    person.total += float(candidate_scores[b]) + s
            elif len(rows) == 2:
                first, second = rows
                overlap = any(x >= 0 and y >= 0 for x, y in zip(first.slots, second.slots))
                if not overlap:
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
                    first.total += float(candidate_scores[b]) + s
            elif not rows and limb not in REDUNDANT_LIMBS:
                person = _Person(order=next_order)
                next_order += 1
                put(person, part_a, a)
                put(person, part_b, b)
                person.count = 2
                person.total = float(candidate_scores[a] + candidate_scores[b]) + s
                people.append(person)
            # three or more holders cannot happen with a consistent grouping: ignored

    kept = [p for p in people if p.count >= min_parts and p.total / p.count >= min_mean_score]
    slots = np.array([p.slots for p in kept], dtype=np.int64).reshape(-1, NUM_KEYPOINTS)
    return People(slots=slots, totals=np.array([p.total for p in kept], dtype=np.float64),
                  counts=np.array([p.count for p in kept], dtype=np.float64))


__all__ = ["REDUNDANT_LIMBS", "greedy_connections", "People", "assemble_people"]
