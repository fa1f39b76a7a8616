"""WordNet 3.0 read from its own database files, and Wu-Palmer worked by hand.

The database here is written by the test in WordNet's format (wndb(5)): a
license header, then one line per synset at the byte offset that is its id.
The taxonomy (edges point to hypernyms; dog has two, Lassie is an instance):

    entity
      organism
        animal
          carnivore
            canine ---- dog <-@i- Lassie
            feline ---- cat
          domestic_animal -- dog, cow
          fish -- tench
        pal.n.02 -------------------- mutt, cur
        pal.n.01 -------------------- mutt, cur
      group
        unit (@ entity, @ group) -- pal.n.01

NLTK's convention (measures/wordnet.py): the lcs is the common hypernym of
greatest *shortest* depth, depth(lcs) = its longest path to the root + 1, and
wup = 2 depth(lcs) / (d(a, lcs) + d(b, lcs) + 2 depth(lcs)) with d the fewest
hypernym edges.
"""

import os
import zipfile

import numpy as np
import pytest

from interp_jax.errors import UserError
from interp_jax.measures import similarity, wordnet

HEADER = ("  1 This software and database is being provided to you, the LICENSEE, by  \n"
          "  2 Princeton University under the following license.  \n"
          "  3 WordNet {version} Copyright 2006 by Princeton University.  All rights reserved.  \n")

# key: (lex_filenum, words, [(pointer symbol, target key)], gloss)
SYNSETS = {
    "entity": (3, ["entity"], [("~", "organism")], "that which is perceived"),
    "organism": (3, ["organism", "being"], [("@", "entity"), ("~", "animal")], "a living thing"),
    "animal": (5, ["animal", "animate_being", "beast"], [("@", "organism")], "a living organism"),
    "carnivore": (5, ["carnivore"], [("@", "animal")], "a flesh-eating mammal"),
    "canine": (5, ["canine", "canid"], [("@", "carnivore")], "dogs, wolves"),
    "feline": (5, ["feline", "felid"], [("@", "carnivore")], "cats"),
    "domestic_animal": (5, ["domestic_animal", "domesticated_animal"], [("@", "animal")],
                        "an animal kept by people"),
    "dog": (5, ["dog", "domestic_dog", "Canis_familiaris"],
            [("@", "canine"), ("@", "domestic_animal"), ("#m", "canine"), ("~", "cow")],
            "a member of the genus Canis"),
    "cat": (5, ["cat", "true_cat"], [("@", "feline")], "feline mammal"),
    "cow": (5, ["cow"], [("@", "domestic_animal")], "mature female of mammals"),
    "fish": (5, ["fish"], [("@", "animal")], "any of various cold-blooded vertebrates"),
    "tench": (5, ["tench", "Tinca_tinca"], [("@", "fish")], "freshwater dace-like game fish"),
    "lassie": (18, ["Lassie"], [("@i", "dog")], "a dog of the films"),
    # two synsets of the lemma "pal": sense 1 is written after sense 2 in data.noun
    "pal2": (3, ["pal", "buddy"], [("@", "organism")], "a friend"),
    "group": (3, ["group", "grouping"], [("@", "entity")], "any number of entities"),
    "unit": (3, ["unit", "social_unit"], [("@", "entity"), ("@", "group")], "an organization"),
    "pal1": (3, ["pal", "chum"], [("@", "organism"), ("@", "unit")], "a close friend"),
    "mutt": (5, ["mutt"], [("@", "pal2"), ("@", "pal1")], "a mongrel"),
    "cur": (5, ["cur"], [("@", "pal2"), ("@", "pal1")], "an inferior dog"),
}
SENSES = {"pal": ["pal1", "pal2"]}  # index.noun order of a lemma's synsets (sense 1 first)


def _line(key, offsets):
  lex, words, pointers, gloss = SYNSETS[key]
  head = f"{offsets[key]:08d} {lex:02d} n {len(words):02x} " + "".join(f"{w} 0 " for w in words)
  ptrs = "".join(f"{s} {offsets[t]:08d} n 0000 " for s, t in pointers)
  return f"{head}{len(pointers):03d} {ptrs}| {gloss}  \n"


def write_database(root, version="3.0"):
  """data.noun and index.noun for SYNSETS at `root`; returns {key: wnid}."""
  header = HEADER.format(version=version)
  offsets, position = {}, len(header)
  for key in SYNSETS:  # line lengths do not depend on offsets (always 8 digits)
    offsets[key] = position
    position += len(_line(key, dict.fromkeys(SYNSETS, 0)))
  root.mkdir(parents=True, exist_ok=True)
  (root / "data.noun").write_bytes((header + "".join(_line(k, offsets) for k in SYNSETS))
                                   .encode())
  lemmas = {}
  for key, (_, words, _, _) in SYNSETS.items():
    for w in words:
      lemmas.setdefault(w.lower(), []).append(key)
  lemmas.update(SENSES)
  index = header + "".join(
      f"{lemma} n {len(keys)} 1 @ {len(keys)} 0 " + " ".join(f"{offsets[k]:08d}" for k in keys)
      + "  \n" for lemma, keys in sorted(lemmas.items()))
  (root / "index.noun").write_bytes(index.encode())
  return {k: f"n{o:08d}" for k, o in offsets.items()}


@pytest.fixture
def db(tmp_path):
  wnids = write_database(tmp_path / "dict")
  return wordnet.Database.find(str(tmp_path / "dict")), wnids


def _wup(db, a, b):
  database, wnids = db
  return wordnet.WuPalmer(database)(int(wnids[a][1:]), int(wnids[b][1:]))


@pytest.mark.parametrize("a, b, expected", [
    ("dog", "cat", 8 / 12),      # lcs carnivore: depth 4, dog and cat 2 edges below it
    ("dog", "cow", 8 / 10),      # lcs domestic_animal: its longest path to the root gives depth 4,
                                 # dog 1 edge below it (through its second hypernym)
    ("lassie", "cat", 8 / 13),   # an instance hypernym counts: Lassie -> dog -> canine -> carnivore
    ("tench", "cat", 6 / 11),    # lcs animal, depth 3
    ("animal", "dog", 6 / 8),    # a hypernym is its own lcs; dog's shortest way up is 2 edges
    ("tench", "entity", 2 / 6),  # the root, depth 1; tench is 4 edges below it
    ("mutt", "cur", 8 / 10),     # pal.n.01 and pal.n.02 tie at shortest depth 2: NLTK takes the
                                 # first by name, pal.n.01, whose longest path (through unit and
                                 # group) gives depth 4 (pal.n.02 would give 6 / 8)
])
def test_wu_palmer_worked_by_hand(db, a, b, expected):
  assert _wup(db, a, b) == pytest.approx(expected)
  assert _wup(db, b, a) == pytest.approx(expected)


def test_synsets_are_read_at_their_byte_offset(db):
  database, wnids = db
  dog = database.offset(wnids["dog"])
  assert database.lemmas(dog) == ["dog", "domestic_dog", "Canis_familiaris"]
  assert database.hypernyms(dog) == [int(wnids["canine"][1:]), int(wnids["domestic_animal"][1:])]
  assert database.hypernyms(int(wnids["lassie"][1:])) == [dog]
  assert database.name(dog) == "dog.n.01"
  assert database.name(int(wnids["pal1"][1:])) == "pal.n.01"
  assert database.name(int(wnids["pal2"][1:])) == "pal.n.02"


def test_similarity_matrix_is_valid_and_follows_the_class_order(db, tmp_path):
  _, wnids = db
  names = [wnids[k] for k in ("dog", "cat", "cow", "tench")]
  a = similarity.wordnet(names, str(tmp_path / "dict"))
  assert a.shape == (4, 4) and a.dtype == np.float32
  np.testing.assert_allclose(np.diag(a), 1.0)
  np.testing.assert_allclose(a, a.T)
  # dog/tench: lcs animal (depth 3), 2 edges above each (dog's shortest way: domestic_animal)
  np.testing.assert_allclose(a[0, 1:], [8 / 12, 8 / 10, 6 / 10], rtol=1e-6)
  np.testing.assert_allclose(a[3, 1], 6 / 11, rtol=1e-6)


def test_found_through_the_environment_nltk_layouts_and_for_dataset(tmp_path, monkeypatch):
  wnids = write_database(tmp_path / "nltk_data" / "corpora" / "wordnet")
  pair = [wnids["dog"], wnids["cat"]]
  monkeypatch.setenv(wordnet.ENV_VAR, str(tmp_path / "nltk_data"))   # an NLTK data directory
  assert similarity.wordnet(pair)[0, 1] == pytest.approx(8 / 12)
  # NLTK's zipped corpus, named directly
  with zipfile.ZipFile(tmp_path / "wordnet.zip", "w") as z:
    for f in ("data.noun", "index.noun"):
      z.write(tmp_path / "nltk_data" / "corpora" / "wordnet" / f, f"wordnet/{f}")
  monkeypatch.setenv(wordnet.ENV_VAR, str(tmp_path / "wordnet.zip"))
  assert similarity.wordnet(pair)[0, 1] == pytest.approx(8 / 12)
  # searched in NLTK's data directories when nothing is named
  monkeypatch.delenv(wordnet.ENV_VAR)
  monkeypatch.setattr(wordnet, "_nltk_data_dirs", lambda: [str(tmp_path / "nltk_data")])
  meta = type("Meta", (), {"class_names": tuple(pair), "num_classes": 2, "name": "folder"})()
  assert similarity.for_dataset("wordnet", meta)[0, 1] == pytest.approx(8 / 12)


def test_missing_wordnet_names_both_install_routes(tmp_path, monkeypatch):
  monkeypatch.delenv(wordnet.ENV_VAR, raising=False)
  monkeypatch.setattr(wordnet, "_nltk_data_dirs", lambda: [str(tmp_path / "nltk_data")])
  monkeypatch.setattr(wordnet, "DEBIAN_DIR", str(tmp_path / "usr_share_wordnet"))
  for call in (lambda: similarity.wordnet(["n01440764"]),
               lambda: similarity.wordnet(["n01440764"], str(tmp_path / "nowhere"))):
    with pytest.raises(UserError) as e:
      call()
    message = str(e.value)
    assert "nltk.downloader wordnet" in message and "apt-get install wordnet-base" in message
    assert wordnet.ENV_VAR in message
  monkeypatch.setenv(wordnet.ENV_VAR, str(tmp_path / "elsewhere"))
  with pytest.raises(UserError, match=f"elsewhere.*{wordnet.ENV_VAR}"):
    similarity.wordnet(["n01440764"])


def test_bad_class_names_and_other_versions_are_user_errors(db, tmp_path):
  database, wnids = db
  with pytest.raises(UserError, match="'cat' is not a WordNet noun id"):
    database.offset("cat")
  with pytest.raises(UserError, match="n00000001 is not a noun synset"):
    database.offset("n00000001")
  write_database(tmp_path / "wn31", version="3.1")
  with pytest.raises(UserError, match="version 3.1.*WordNet 3.0"):
    wordnet.Database.find(str(tmp_path / "wn31"))


REAL = wordnet.DEBIAN_DIR


@pytest.mark.skipif(not os.path.isfile(os.path.join(REAL, "data.noun")),
                    reason="WordNet 3.0 is not installed (apt-get install wordnet-base)")
def test_real_wordnet_values_match_nltk():
  """NLTK's wup_similarity on the same files gives these (checked once, see the note)."""
  a = similarity.wordnet(["n02084071", "n02121808", "n02121620", "n01440764", "n01443537"], REAL)
  assert a[0, 1] == pytest.approx(24 / 29)   # dog.n.01 / domestic_cat.n.01
  assert a[0, 2] == pytest.approx(6 / 7)     # dog.n.01 / cat.n.01
  assert a[3, 4] == pytest.approx(16 / 17)   # tench.n.01 / goldfish.n.01
