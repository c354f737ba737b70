"""Defaults that never hurt: each method with its default feature
preparation against the same method on the raw vectors, on feature sets
of real images that ship offline; prints a table of ARI against the true
classes, mean of 3 seeds.

Feature sets: scikit-learn's digits as pixels and as HOG descriptors;
patches of scikit-image's photographs (the class is the photograph) as
pixels and as HOG; patches of its textures as LBP histograms.

    python bench/defaults.py [--seeds 3] [--methods kmeans,hdbscan]
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "hubble_deep_field",
          "retina", "immunohistochemistry", "coins", "horse")
TEXTURES = ("brick", "grass", "gravel", "moon", "page", "text")
PATCH = 32
PER_IMAGE = 150


def _grey(image):
    from skimage.color import rgb2gray, rgba2rgb

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 4:
        image = rgba2rgb(image)
    return rgb2gray(image) if image.ndim == 3 else image / max(float(image.max()), 1.0)


def _patches(names, seed=0):
    """``(patches, labels)``: PER_IMAGE random PATCH x PATCH grey patches of
    each named scikit-image picture, labelled by picture."""
    import skimage.data

    rng = np.random.default_rng(seed)
    patches, labels = [], []
    for label, name in enumerate(names):
        image = _grey(getattr(skimage.data, name)())
        rows = rng.integers(0, image.shape[0] - PATCH, PER_IMAGE)
        cols = rng.integers(0, image.shape[1] - PATCH, PER_IMAGE)
        patches += [image[r:r + PATCH, c:c + PATCH] for r, c in zip(rows, cols)]
        labels += [label] * PER_IMAGE
    return np.stack(patches), np.array(labels)


def _hog(images):
    from skimage.feature import hog

    return np.stack([hog(im, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
                     for im in images])


def feature_sets():
    """``{name: (X float32, y)}``: five feature sets of real offline images."""
    from skimage.feature import local_binary_pattern
    from skimage.transform import resize
    from sklearn.datasets import load_digits

    digits = load_digits()
    big_digits = np.stack([resize(im / 16, (32, 32), order=1) for im in digits.images])
    photos, photo_y = _patches(PHOTOS)
    textures, texture_y = _patches(TEXTURES)

    def lbp(image):
        codes = [local_binary_pattern((image * 255).astype(np.uint8), p, r, "uniform")
                 for p, r in ((8, 1), (16, 2))]
        return np.concatenate([np.bincount(c.astype(int).ravel(), minlength=p + 2) / c.size
                               for c, p in zip(codes, (8, 16))])

    sets = {
        "digits pixels": (digits.data, digits.target),
        "digits HOG": (_hog(big_digits), digits.target),
        "photo patches, pixels": (np.stack([resize(p, (16, 16)).ravel() for p in photos]),
                                  photo_y),
        "photo patches, HOG": (_hog(photos), photo_y),
        "texture patches, LBP": (np.stack([lbp(p) for p in textures]), texture_y),
    }
    return {name: (np.asarray(X, dtype=np.float32), y) for name, (X, y) in sets.items()}


def plugin_modules():
    from bench.clustering import plugin

    return plugin()


def ari_of(modules, method_name, X, y, prepare, seed):
    """ARI of ``method_name`` (k = the number of classes where it takes k)
    after ``prepare`` (the plugin's preparation settings) with ``seed``."""
    from sklearn.metrics import adjusted_rand_score

    features, methods = modules("clustering.features"), modules("clustering.methods")
    choice = modules("clustering.choice")
    method = methods.METHODS[method_name]
    params = {p.name: p.default for p in method.params}
    if method.needs_k:
        params["n_clusters"] = len(np.unique(y))
    resolved = choice.choose(prepare, method, X, params, seed)
    Z = features.prepare(X.copy(), resolved, random_state=seed)
    return adjusted_rand_score(y, method.fit(Z, params, seed).labels), resolved


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", default="kmeans,minibatch_kmeans,kmedoids,birch,"
                        "agglomerative,hdbscan")
    args = parser.parse_args()
    modules = plugin_modules()
    default = dict(normalize=None, reduce="auto", n_components=None)
    raw = dict(normalize=False, reduce="none", n_components=None)
    rows, start = [], time.perf_counter()
    for set_name, (X, y) in feature_sets().items():
        for method in args.methods.split(","):
            scores = {}
            for label, prepare in (("default", default), ("raw", raw)):
                runs = [ari_of(modules, method, X, y, prepare, seed)
                        for seed in range(args.seeds)]
                scores[label] = (np.mean([r[0] for r in runs]), runs[0][1])
            rows.append((set_name, X.shape, method, scores))
            print(f"{set_name} {method}: default {scores['default'][0]:.3f} raw "
                  f"{scores['raw'][0]:.3f}", file=sys.stderr, flush=True)
    print("| feature set | N x d | method | default preparation | ARI default | ARI raw | "
          "default - raw |")
    print("|---|---|---|---|---|---|---|")
    for set_name, shape, method, scores in rows:
        resolved = scores["default"][1]
        prep = ("normalised " if resolved["normalize"] else "raw ") + resolved["reduce"]
        delta = scores["default"][0] - scores["raw"][0]
        print(f"| {set_name} | {shape[0]:,} x {shape[1]} | {method} | {prep} | "
              f"{scores['default'][0]:.3f} | {scores['raw'][0]:.3f} | {delta:+.3f} |")
    deltas = [s["default"][0] - s["raw"][0] for _, _, _, s in rows]
    print(f"\nWorst default - raw: {min(deltas):+.3f}; mean: {np.mean(deltas):+.3f} "
          f"({len(rows)} cases, {args.seeds} seeds each, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
