"""Tokenizer and vocabulary: official AttnGAN rules, checked on the real CUB captions when present."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from attngan_cli.core.errors import InputError
from attngan_cli.data._py2dict import py2_dict_order, py2_str_hash
from attngan_cli.data.tokenizer import nlp, split_caption_lines, tokenize
from attngan_cli.data.vocab import Vocabulary


def test_tokenize_official_rules():
    assert tokenize("This bird has a RED crown, and white-ish belly.") == [
        "this", "bird", "has", "a", "red", "crown", "and", "white", "ish", "belly"]
    # \w keeps digits and underscores; non-ASCII characters are dropped from inside a word
    assert tokenize("wing_bars 2 naïve café") == ["wing_bars", "2", "nave", "caf"]
    # the mojibake pair becomes a space; a lone U+FFFD is a separator
    assert tokenize("small\ufffd\ufffdbird\ufffdwith") == ["small", "bird", "with"]
    # a word made only of non-ASCII letters disappears
    assert tokenize("a été b") == ["a", "t", "b"]
    assert tokenize("ü") == []
    assert tokenize("  ...!  ") == []


def test_tokenizer_is_a_spacy_pipeline():
    doc = nlp()("A Blue-Jay!")
    assert [t.text for t in doc] == ["a", "blue", "jay"]
    assert nlp().lang == "en"


def test_caption_file_rules():
    text = "first Caption\n\n   \n...\nsecond one\nthird\n"
    caps, skipped = split_caption_lines(text, max_captions=2)
    assert caps == [["first", "caption"], ["second", "one"]]
    assert skipped == ["   ", "..."]  # non-empty lines without words are reported
    caps, _ = split_caption_lines(text, max_captions=None)
    assert len(caps) == 3


def test_py2_hash_known_values():
    # CPython 2.7 (64-bit) hash("a") and hash("abc"), as unsigned 64-bit integers
    assert py2_str_hash("a") == 12416037344
    assert py2_str_hash("abc") == 1453079729188098211
    assert py2_str_hash("") == 0
    assert py2_dict_order(["b", "a", "b", "c"]) == sorted(["a", "b", "c"], key=lambda w: py2_str_hash(w) & 7)


def test_vocabulary_encode_and_errors(attngan_caplog):
    v = Vocabulary.build([["a", "red", "bird"], ["a", "blue", "bird"]], order="first")
    assert v.words == ["<end>", "a", "red", "bird", "blue"]
    assert len(v) == 5 and v.word_to_index["bird"] == 3
    assert v.encode("A RED zebra bird") == ([1, 2, 3], ["zebra"])
    with attngan_caplog.at_level("WARNING", logger="attngan_cli"):
        ids, lengths = v.encode_batch(["a red bird", "blue zebra"])
    assert "zebra" in attngan_caplog.text
    assert ids.dtype == torch.long and ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert lengths.tolist() == [3, 1]
    with pytest.raises(InputError, match="no words"):
        v.encode_batch(["a red bird", "?!"])
    with pytest.raises(InputError, match="zebra"):
        v.encode_batch(["zebra giraffe"])
    assert v.decode([1, 2, 3, 0, 4]) == "a red bird"


def test_vocabulary_files(tmp_path):
    v = Vocabulary.build([["x", "y"], ["z"]])
    v.save(tmp_path / "v.json")
    w = Vocabulary.load(tmp_path / "v.json")
    assert w == v and w.sha256 == v.sha256
    from attngan_cli.data.vocab import vocab_sha256

    assert v.sha256 == vocab_sha256(v.words)
    # an official-style pickle: [train, test, ixtoword, wordtoix], protocol 2
    with open(tmp_path / "captions.pickle", "wb") as f:
        pickle.dump([[[1]], [[2]], {0: "<end>", 1: "x", 2: "y"}, {"<end>": 0, "x": 1, "y": 2}], f, protocol=2)
    assert Vocabulary.load(tmp_path / "captions.pickle").words == ["<end>", "x", "y"]
    (tmp_path / "bad.json").write_text(json.dumps({"words": ["x"]}))
    with pytest.raises(InputError, match="<end>"):
        Vocabulary.load(tmp_path / "bad.json")
    with pytest.raises(InputError, match="does not exist"):
        Vocabulary.load(tmp_path / "nope.pickle")
    (tmp_path / "junk.bin").write_bytes(b"\x80\x02junk")
    with pytest.raises(InputError, match="captions.pickle"):
        Vocabulary.load(tmp_path / "junk.bin")


@pytest.fixture(scope="module")
def cub_captions(cub_root, cub_records):
    """Tokens of every CUB caption (train then test, split-file order, 10 per image) and the official file."""
    from attngan_cli.data.h5 import TRAIN

    records = cub_records
    train = [c for r in records if r.split == TRAIN for c in r.captions]
    test = [c for r in records if r.split != TRAIN for c in r.captions]
    with open(cub_root / "captions.pickle", "rb") as f:
        official = pickle.load(f, encoding="latin1")
    return train, test, official


def test_cub_captions_match_official_indices(cub_captions, cub_root):
    train, test, (off_train, off_test, ixtoword, wordtoix) = cub_captions
    assert len(train) == len(off_train) == 88550
    assert len(test) == len(off_test) == 29330
    v = Vocabulary([ixtoword[i] for i in range(len(ixtoword))])
    assert Vocabulary.load(cub_root / "captions.pickle") == v
    assert len(v) == 5450 and v.words[0] == "<end>"
    for mine, ref in ((train, off_train), (test, off_test)):
        bad = 0
        for toks, ids in zip(mine, ref, strict=False):
            enc, unknown = v.encode_tokens(toks)
            bad += bool(unknown) or enc != list(ids)
        assert bad == 0


def test_cub_vocabulary_built_from_text_is_official(cub_captions):
    train, test, (_, _, ixtoword, _) = cub_captions
    built = Vocabulary.build(train + test)  # official order (Python 2.7 dict iteration)
    assert len(built) == 5450
    assert built.words == [ixtoword[i] for i in range(len(ixtoword))]
