"""Class-similarity matrices A for consis(n) = p^T A p (METHOD.md section 1).

    A = identity(9)                                  # purity: sum_c p_c^2
    A = from_tree(meta.class_tree, meta.class_names)  # Wu-Palmer over a class tree
    A = from_tree_file("tree.json", class_names)      # a tree of your own
    A = wordnet(["n01440764", ...])                   # ImageNet wnids, WordNet 3.0's Wu-Palmer

Every matrix is validated on construction: square, symmetric, entries in
[0, 1], ones on the diagonal.

Reference: Wu & Palmer 1994, "Verb semantics and lexical selection".
"""

import json

import numpy as np

from interp_jax.errors import UserError
from interp_jax.measures import wordnet as _wordnet  # the WordNet reader and Wu-Palmer


def validate(a: np.ndarray) -> np.ndarray:
  a = np.asarray(a, np.float32)
  if a.ndim != 2 or a.shape[0] != a.shape[1]:
    raise UserError(f"a class-similarity matrix must be square, got shape {a.shape}")
  if not np.allclose(a, a.T, atol=1e-6):
    raise UserError("a class-similarity matrix must be symmetric")
  if not np.allclose(np.diag(a), 1.0, atol=1e-6):
    raise UserError("a class-similarity matrix must have ones on its diagonal")
  if a.min() < -1e-6 or a.max() > 1 + 1e-6:
    raise UserError(f"class similarities must lie in [0, 1], got [{a.min():g}, {a.max():g}]")
  return a


def identity(num_classes: int) -> np.ndarray:
  return validate(np.eye(num_classes))


def _paths(tree, prefix=()) -> dict[str, tuple[str, ...]]:
  """{leaf: path of node names from the root's child down to the leaf}."""
  out = {}
  items = tree.items() if isinstance(tree, dict) else ((None, tree),)
  for name, children in items:
    here = prefix + ((name,) if name is not None else ())
    for child in children if isinstance(children, (list, tuple)) else [children]:
      if isinstance(child, dict):
        out.update(_paths(child, here))
      else:
        if child in out:
          raise UserError(f"class {child!r} appears twice in the class tree")
        out[str(child)] = here + (str(child),)
  return out


def from_tree(tree: dict, class_names) -> np.ndarray:
  """Wu-Palmer similarity 2 depth(lca) / (depth(i) + depth(j)), the root at depth 1.

  `tree` maps group names to lists of classes or of nested groups, for example
  {"round": ["disk", "ring"], "angular": ["square", {"pointed": ["star"]}]}.
  """
  paths = _paths(tree)
  missing = [c for c in class_names if c not in paths]
  if missing:
    raise UserError(f"the class tree lacks the classes {missing}")
  n = len(class_names)
  a = np.empty((n, n), np.float32)
  for i, ci in enumerate(class_names):
    for j, cj in enumerate(class_names):
      pi, pj = paths[ci], paths[cj]
      common = 0
      while common < min(len(pi), len(pj)) and pi[common] == pj[common]:
        common += 1
      # depth = 1 (root) + position in the path; the lca is the root plus `common` nodes
      a[i, j] = 2 * (1 + common) / ((1 + len(pi)) + (1 + len(pj)))
  return validate(a)


def from_tree_file(path: str, class_names) -> np.ndarray:
  try:
    with open(path) as f:
      tree = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise UserError(f"cannot read the class tree {path!r}: {e}") from None
  return from_tree(tree, class_names)


def wordnet(wnids, path: str = "") -> np.ndarray:
  """Wu-Palmer similarity of WordNet 3.0 noun synsets given as ImageNet wnids (n01440764).

  Reads WordNet's own database files (data.noun, index.noun) with no NLTK:
  from `path`, else $INTERP_JAX_WORDNET, else NLTK's data directories
  (`python -m nltk.downloader wordnet`), else /usr/share/wordnet (Debian's
  `wordnet-base`); a UserError naming both install routes when none has it.
  The values are NLTK's `wup_similarity` for nouns on the same data (the
  convention is spelled out in measures/wordnet.py, WuPalmer.__call__).
  """
  return validate(_wordnet.wup_matrix(_wordnet.Database.find(path), list(wnids)))


def for_dataset(source: str, meta, tree_file: str = "", wordnet_dir: str = "") -> np.ndarray:
  """The matrix a config names: identity, hierarchy (the data set's tree or tree_file), wordnet.

  wordnet reads WordNet 3.0 from `wordnet_dir` ("" = $INTERP_JAX_WORDNET, NLTK's data,
  /usr/share/wordnet) for classes named by wnids.
  """
  if source == "identity":
    return identity(meta.num_classes)
  if source == "hierarchy":
    if tree_file:
      return from_tree_file(tree_file, meta.class_names)
    if not meta.class_tree:
      raise UserError(f"data set {meta.name!r} ships no class tree; pass one as JSON with "
                      "--config.similarity_tree=FILE or use --config.similarity=identity")
    return from_tree(meta.class_tree, meta.class_names)
  if source == "wordnet":
    return wordnet(meta.class_names, wordnet_dir)
  raise UserError(f"unknown similarity {source!r}; use identity, hierarchy or wordnet")
