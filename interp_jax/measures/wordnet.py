"""WordNet 3.0 nouns read from WordNet's own database files, and Wu-Palmer similarity.

    db = Database.find()                         # or Database.find("/usr/share/wordnet")
    a = wup_matrix(db, ["n02084071", "n02121808"])   # dog, cat -> [[1, .857], [.857, 1]]

ImageNet names its classes by wnids, "n" + the 8-digit offset of a WordNet
3.0 noun synset (n01440764 = tench). The offset is the byte position of the
synset's line in `data.noun`, so a synset is read by slicing the file at its
offset: no NLTK, no full parse. A line holds (WordNet's wndb(5) format):

    offset lex_filenum ss_type w_cnt(hex) [word lex_id]... p_cnt [symbol offset pos st]... | gloss

of whose pointers only "@" (hypernym) and "@i" (instance hypernym) are used.

Where the database is looked for, first found wins (`find`):
  1. the `path` argument, else the environment variable INTERP_JAX_WORDNET:
     a directory holding data.noun and index.noun (WordNet's `dict`), an NLTK
     data directory (holding corpora/wordnet or corpora/wordnet.zip), or that
     wordnet.zip itself;
  2. NLTK's data directories (nltk.data.path when NLTK is installed, else its
     defaults: $NLTK_DATA, ~/nltk_data, /usr/share/nltk_data, ...);
  3. /usr/share/wordnet, where Debian's and Ubuntu's `wordnet-base` installs it.

Wu-Palmer follows NLTK's `Synset.wup_similarity` for nouns (nltk 3.9), so the
numbers match NLTK's on the same data; see `wup` for the exact convention.
"""

import collections
import os
import re
import sys
import zipfile

import numpy as np

from interp_jax.errors import UserError

ENV_VAR = "INTERP_JAX_WORDNET"
DEBIAN_DIR = "/usr/share/wordnet"
_HYPERNYMS = ("@", "@i")
_WNID = re.compile(r"n\d{8}")
INSTALL_HINT = (
    "install WordNet 3.0 one of two ways: `pip install nltk && python -m nltk.downloader "
    "wordnet` (NLTK's data directory), or `apt-get install wordnet-base` (Debian/Ubuntu, "
    f"files in {DEBIAN_DIR}); or point {ENV_VAR}=DIR at a directory holding data.noun and "
    "index.noun")


def _nltk_data_dirs() -> list[str]:
  try:
    import nltk.data  # only for its list of data directories, which a user may extend
    return list(nltk.data.path)
  except ImportError:
    env = [os.path.expanduser(d) for d in os.environ.get("NLTK_DATA", "").split(os.pathsep) if d]
    return env + [os.path.expanduser("~/nltk_data")] + [
        os.path.join(sys.prefix, *p, "nltk_data") for p in ((), ("share",), ("lib",))] + [
        "/usr/share/nltk_data", "/usr/local/share/nltk_data", "/usr/lib/nltk_data",
        "/usr/local/lib/nltk_data"]


def _read_file(directory: str, name: str) -> bytes:
  with open(os.path.join(directory, name), "rb") as f:
    return f.read()


def _reader(location: str):
  """(read(name) -> bytes, where) for a WordNet dict found at or under `location`, or None."""
  location = os.path.expanduser(location)
  for d in (location, os.path.join(location, "corpora", "wordnet")):
    if all(os.path.isfile(os.path.join(d, f)) for f in ("data.noun", "index.noun")):
      return (lambda name, d=d: _read_file(d, name)), d
  for z in (location, os.path.join(location, "corpora", "wordnet.zip")):
    if os.path.isfile(z) and zipfile.is_zipfile(z):
      with zipfile.ZipFile(z) as f:
        members = {os.path.basename(n): n for n in f.namelist()}
      if "data.noun" in members and "index.noun" in members:
        def read(name, z=z, members=members):
          with zipfile.ZipFile(z) as f:
            return f.read(members[name])
        return read, z
  return None


class Database:
  """The noun hypernym graph of one WordNet database, read on demand and cached."""

  def __init__(self, read, where: str):
    self.where = where
    self._data = read("data.noun")
    self._read_index = lambda: read("index.noun")
    self._index = None
    self._lines, self._names = {}, {}
    header = self._data[:self._data.find(b"\n0")] if self._data.startswith(b"  ") else b""
    version = re.search(rb"WordNet (\d+\.\d+)", header)
    if version and version.group(1) != b"3.0":
      raise UserError(f"the WordNet database at {where} is version "
                      f"{version.group(1).decode()}, but ImageNet's wnids are WordNet 3.0 "
                      f"offsets; {INSTALL_HINT}")

  @classmethod
  def find(cls, path: str = "") -> "Database":
    """The database at `path`, $INTERP_JAX_WORDNET, NLTK's data or Debian's; else UserError."""
    given = path or os.environ.get(ENV_VAR, "")
    if given:
      found = _reader(given)
      if found is None:
        origin = "" if path else f" ({ENV_VAR})"
        raise UserError(f"no WordNet database (data.noun and index.noun) at {given!r}{origin}; "
                        f"{INSTALL_HINT}")
      return cls(*found)
    for location in _nltk_data_dirs() + [DEBIAN_DIR]:
      found = _reader(location)
      if found is not None:
        return cls(*found)
    raise UserError(f"the wordnet similarity needs WordNet 3.0 and none was found; {INSTALL_HINT}")

  def offset(self, wnid: str) -> int:
    """The data.noun offset of an ImageNet wnid, checked to start a noun synset's line."""
    if not _WNID.fullmatch(str(wnid)):
      raise UserError(f"{wnid!r} is not a WordNet noun id like n01440764; the wordnet similarity "
                      "needs classes named by wnids (ImageNet's class folders)")
    offset = int(wnid[1:])
    self._line(offset, wnid)
    return offset

  def _line(self, offset: int, wnid: str = "") -> list[str]:
    if offset not in self._lines:
      head = b"%08d " % offset
      if not (self._data.startswith(head, offset) and (offset == 0 or
                                                        self._data[offset - 1] == 10)):
        raise UserError(f"{wnid or 'n%08d' % offset} is not a noun synset of the WordNet 3.0 "
                        f"database at {self.where}")
      end = self._data.find(b"\n", offset)
      line = self._data[offset:end if end >= 0 else len(self._data)].decode("utf-8", "replace")
      self._lines[offset] = line.split(" | ", 1)[0].split()
    return self._lines[offset]

  def lemmas(self, offset: int) -> list[str]:
    tokens = self._line(offset)
    return tokens[4:4 + 2 * int(tokens[3], 16):2]

  def hypernyms(self, offset: int) -> list[int]:
    """Hypernyms then instance hypernyms, in file order (as NLTK lists them)."""
    tokens = self._line(offset)
    at = 4 + 2 * int(tokens[3], 16)
    pointers = [tokens[at + 1 + 4 * i: at + 5 + 4 * i] for i in range(int(tokens[at]))]
    return [int(p[1]) for symbol in _HYPERNYMS for p in pointers
            if p[0] == symbol and p[2] == "n"]

  def name(self, offset: int) -> str:
    """NLTK's synset name, first lemma . n . sense number (dog.n.01), from index.noun."""
    if offset not in self._names:
      self._names[offset] = self._name(offset)
    return self._names[offset]

  def _name(self, offset: int) -> str:
    if self._index is None:
      self._index = b"\n" + self._read_index()
    lemma = re.sub(r"\([^()]*\)$", "", self.lemmas(offset)[0]).lower()
    start = self._index.find(b"\n" + lemma.encode() + b" n ")
    tokens = self._index[start + 1:self._index.find(b"\n", start + 1)].split() if start >= 0 else []
    if not tokens:
      return f"{lemma}.n.00"  # a malformed index: still a deterministic order
    offsets = [int(t) for t in tokens[-int(tokens[2]):]]
    sense = offsets.index(offset) + 1 if offset in offsets else 0
    return f"{lemma}.n.{sense:02d}"


class WuPalmer:
  """Wu-Palmer similarity over a Database, with the per-synset work cached."""

  def __init__(self, db: Database):
    self.db = db
    self._up, self._min, self._max = {}, {}, {}

  def ancestors(self, s: int) -> dict[int, int]:
    """{synset or any (instance) hypernym of it: fewest edges from s} (breadth first)."""
    if s not in self._up:
      dist, queue = {}, collections.deque([(s, 0)])
      while queue:
        node, d = queue.popleft()
        if node not in dist:
          dist[node] = d
          queue.extend((h, d + 1) for h in self.db.hypernyms(node))
      self._up[s] = dist
    return self._up[s]

  def _depth(self, s: int, cache: dict, pick, seen=frozenset()) -> int:
    """Edges from s to a root along the shortest (pick=min) or longest (max) path."""
    if s not in cache:
      up = [h for h in self.db.hypernyms(s) if h not in seen]
      cache[s] = 1 + pick(self._depth(h, cache, pick, seen | {s}) for h in up) if up else 0
    return cache[s]

  def distance(self, a: int, b: int) -> float:
    """NLTK's shortest_path_distance: fewest edges a -> common ancestor <- b."""
    if a == b:
      return 0
    up_a, up_b = self.ancestors(a), self.ancestors(b)
    return min((up_a[x] + up_b[x] for x in up_a.keys() & up_b.keys()), default=float("inf"))

  def subsumer(self, a: int, b: int) -> int | None:
    common = self.ancestors(a).keys() & self.ancestors(b).keys()
    if not common:
      return None
    best = max(self._depth(c, self._min, min) for c in common)
    lowest = [c for c in common if self._depth(c, self._min, min) == best]
    for own in (a, b):
      if own in lowest:
        return own
    return lowest[0] if len(lowest) == 1 else min(lowest, key=self.db.name)

  def __call__(self, a: int, b: int) -> float:
    """Wu-Palmer similarity of two noun synsets (data.noun offsets), NLTK's convention.

    With the root at depth 1, depth(x) = 1 + the longest hypernym path from x
    to the root (NLTK's max_depth + 1), and
        wup = 2 depth(lcs) / (d(a, lcs) + d(b, lcs) + 2 depth(lcs)),
    d the fewest hypernym edges between a synset and the lcs through any
    common ancestor (NLTK's shortest_path_distance). The lcs is, as in NLTK
    (use_min_depth=True), the common hypernym (or a or b itself) farthest
    from the root by its *shortest* path; among ties, a or b itself if it is
    one, else the first by NLTK's synset name (dog.n.01). Hypernyms and
    instance hypernyms both count, over every path (multiple inheritance).
    NLTK simulates a root only for verbs (and WordNet 1.6 nouns); WordNet 3.0
    nouns share the root entity.n.01, so no root is simulated here. Synsets
    with no common hypernym (not in WordNet 3.0) give 0 where NLTK gives None.
    Differences from NLTK: NLTK checks only its first argument for "itself
    is the lcs", so its value can depend on argument order when one synset
    is a hypernym of the other; this equals NLTK's with the hypernym first,
    and is symmetric. a == b gives 1.
    """
    if a == b:
      return 1.0
    lcs = self.subsumer(a, b)
    if lcs is None:
      return 0.0
    depth = self._depth(lcs, self._max, max) + 1
    return 2.0 * depth / (self.distance(a, lcs) + self.distance(b, lcs) + 2.0 * depth)


def wup_matrix(db: Database, wnids) -> np.ndarray:
  """[C, C] Wu-Palmer similarities of the wnids' synsets (symmetric, ones on the diagonal)."""
  offsets = [db.offset(w) for w in wnids]
  wup = WuPalmer(db)
  n = len(offsets)
  a = np.eye(n, dtype=np.float64)
  for i in range(n):
    for j in range(i + 1, n):
      a[i, j] = a[j, i] = wup(offsets[i], offsets[j])
  return a
