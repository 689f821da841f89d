#!/usr/bin/env python3
"""Fits the extractive answer model (src/answer/select.rs) on sentence features.

    wenda eval --dataset ../shared/data/cmrc2018_dev.json --answers --answer-features F
    python3 scripts/fit-answer-model.py F

Each line of F is one candidate sentence of one question: {"question": n, "outside": bool,
"label": bool, "text", "features": [...]}; `outside` marks the questions asked of the collection
without their own paragraph, `label` a sentence containing a gold answer.

Two fits, on the even-numbered questions only, so the odd-numbered half measures what the model
learned of the method rather than of the set:

1. Ranking weights: a linear score per sentence trained listwise (softmax over a question's
   candidates, the target spread over its correct ones), which is what choosing one sentence
   per question needs.
2. Calibration: the best sentence's score → the probability that it answers (a one-feature
   logistic regression over the questions asked with and without their paragraph), so one
   confidence threshold decides refusals.

Prints the weights, the accuracy of both halves, and refusal rates per threshold. Needs numpy.

    python3 scripts/fit-answer-model.py F --only cosine,kind_match,... --name CROSS_LINGUAL

fits with only the features named (the others weigh 0): the model for questions whose words
cannot be found in the passages' script (src/answer/select.rs says when), fitted on features
from `wenda eval ... --translations eval/cmrc2018_dev_en.jsonl`.
"""

import argparse

import json
import sys

import numpy as np

NAMES = [
    "cosine",
    "coverage",
    "focus",
    "in_order",
    "bigrams",
    "kind_match",
    "neighbour_cosine",
    "neighbour_focus",
    "passage_rank",
    "passage_score",
]


def load(path):
    groups, labels, rows, outside = [], [], [], []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            groups.append(record["question"] * 2 + int(record["outside"]))
            labels.append(float(record["label"]))
            rows.append(record["features"])
            outside.append(record["outside"])
    return np.array(groups), np.array(labels), np.array(rows), np.array(outside)


def softmax_fit(x, y, group, l2=1e-4, steps=6000, rate=3.0):
    """Listwise logistic ranking: maximise each question's softmax mass on its correct sentences."""
    groups, index = np.unique(group, return_inverse=True)
    positives = np.zeros(len(groups))
    np.add.at(positives, index, y)
    target = np.where(positives[index] > 0, y / np.maximum(positives[index], 1), 0.0)
    useful = positives[index] > 0
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        z = x @ w
        top = np.full(len(groups), -np.inf)
        np.maximum.at(top, index, z)
        e = np.exp(z - top[index])
        total = np.zeros(len(groups))
        np.add.at(total, index, e)
        p = e / total[index]
        gradient = x.T @ ((p - target) * useful) / max((positives > 0).sum(), 1) + l2 * w
        w -= rate * gradient
    return w


def logistic_fit(z, y, steps=20000, rate=0.5):
    """p = σ(a·z + b), by gradient descent on standardised z."""
    mean, std = z.mean(), z.std() or 1.0
    s = (z - mean) / std
    a = b = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(a * s + b)))
        a -= rate * ((p - y) * s).mean()
        b -= rate * (p - y).mean()
    return a / std, b - a * mean / std


def best_per_group(group, scores, keep):
    """For each group kept, the row of its best-scoring sentence."""
    best = {}
    for row in np.flatnonzero(keep):
        g = group[row]
        if g not in best or scores[row] > scores[best[g]]:
            best[g] = row
    return np.array(sorted(best.values()))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("features")
    parser.add_argument("--only", help="comma-separated feature names to fit; the rest weigh 0")
    parser.add_argument("--name", default="MONOLINGUAL", help="name of the printed constant")
    args = parser.parse_args()
    group, labels, x, outside = load(args.features)
    if args.only:
        kept = args.only.split(",")
        unknown = set(kept) - set(NAMES)
        if unknown:
            sys.exit(f"unknown features: {sorted(unknown)}")
        x = x * np.array([name in kept for name in NAMES], dtype=float)
    question = group // 2
    fitted = question % 2 == 0
    w = softmax_fit(x[fitted & ~outside], labels[fitted & ~outside], group[fitted & ~outside])
    z = x @ w
    for name, weight in zip(NAMES, w):
        print(f"{name:<20} {weight:+.3f}")
    for name, half in [("fitted half", fitted), ("held-out half", ~fitted)]:
        best = best_per_group(group, z, half & ~outside)
        print(f"sentence accuracy, {name}: {labels[best].mean():.3f} ({len(best)} questions)")

    best_fitted = best_per_group(group, z, fitted)
    a, b = logistic_fit(z[best_fitted], labels[best_fitted])
    print(f"calibration: confidence = σ({a:.4f}·score {b:+.4f})")
    confidence = 1.0 / (1.0 + np.exp(-(a * z + b)))
    print("threshold  refused-outside  refused-answerable (held-out half)")
    best_in = best_per_group(group, z, ~fitted & ~outside)
    best_out = best_per_group(group, z, ~fitted & outside)
    for threshold in [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]:
        print(f"{threshold:9.1f}  {(confidence[best_out] < threshold).mean():15.3f}  "
              f"{(confidence[best_in] < threshold).mean():18.3f}")
    # The calibration folded in: confidence = σ(WEIGHTS · features + INTERCEPT).
    print("const %s: Model = Model {" % args.name)
    print("    weights: [%s]," % ", ".join(f"{v:.3f}" for v in a * w))
    print(f"    intercept: {b:.3f},")
    print("};")


if __name__ == "__main__":
    main()
