"""The text foundation: Vocabulary (ids, batches, JSON files), reading sentence files, PTB and the toy corpus."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import shared_data_root
from hypothesis import given
from hypothesis import strategies as st

from vaekit.core.atomic import atomic_write_text
from vaekit.errors import ConfigError, DataError
from vaekit.text import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIALS,
    TOY_MAX_LEN,
    TOY_MIN_LEN,
    TOY_VOCAB_SIZE,
    UNK,
    UNK_ID,
    Vocabulary,
    read_sentences,
    teacher_forcing,
    tokenize,
    toy_corpus,
)
from vaekit.text.data import ptb_files, ptb_splits

SENTENCES = [tokenize("the cat sat on the mat ."), tokenize("the dog sat ."), tokenize("a <unk> ran .")]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.build(SENTENCES)


# --- building ------------------------------------------------------------------------------------------------


def test_specials_first_then_by_count_and_word(vocab):
    assert vocab.words[:4] == SPECIALS == ("<pad>", "<bos>", "<eos>", "<unk>")
    # the: 3, ".": 3, sat: 2, then the words seen once, alphabetically; PTB's "<unk>" is not a word of its own
    assert vocab.words[4:] == (".", "the", "sat", "a", "cat", "dog", "mat", "on", "ran")
    assert len(vocab) == 13


def test_max_size_min_count_and_determinism():
    small = Vocabulary.build(SENTENCES, max_size=6)
    assert small.words == SPECIALS + (".", "the")
    assert Vocabulary.build(SENTENCES, min_count=2).words == SPECIALS + (".", "the", "sat")
    # ties are broken by the word, so the order of the sentences does not matter
    assert Vocabulary.build(list(reversed(SENTENCES))) == Vocabulary.build(SENTENCES)
    assert Vocabulary.build([["b", "a", "c"]]).words[4:] == ("a", "b", "c")


@pytest.mark.parametrize("kwargs", [{"max_size": 4}, {"max_size": 5.0}, {"min_count": 0}, {"min_count": True}])
def test_build_refuses_bad_limits(kwargs):
    with pytest.raises(ConfigError) as info:
        Vocabulary.build(SENTENCES, **kwargs)
    assert "\n" not in str(info.value) and next(iter(kwargs)) in str(info.value)


def test_build_refuses_strings_and_no_words():
    with pytest.raises(ConfigError, match="tokenize"):
        Vocabulary.build("the cat sat")
    with pytest.raises(ConfigError, match="token lists"):
        Vocabulary.build(["the cat", "sat"])
    with pytest.raises(DataError, match="no word"):
        Vocabulary.build([["<unk>"], []])
    with pytest.raises(DataError, match="no word occurs at least 5"):
        Vocabulary.build(SENTENCES, min_count=5)


# --- ids -----------------------------------------------------------------------------------------------------


def test_unknown_words_and_ptb_unk(vocab):
    assert vocab.encode(["the", "zebra", "<unk>"]) == [vocab.id("the"), UNK_ID, UNK_ID]
    # the other specials written in a text are not words either
    assert vocab.encode(["<pad>", "<bos>", "<eos>"]) == [UNK_ID] * 3
    assert vocab.decode(vocab.encode(["the", "zebra", "."])) == ["the", UNK, "."]
    assert vocab.unk_rate([["the", "zebra"], ["<unk>", "cat"]]) == 0.5
    assert vocab.unk_rate([[]]) == 0.0
    with pytest.raises(ConfigError, match="not a string"):
        vocab.encode("the cat")


words = st.text(alphabet=st.characters(whitelist_categories=("L", "N", "P", "S")), min_size=1, max_size=8)


@given(st.lists(st.lists(words, max_size=12), min_size=1, max_size=8), st.data())
def test_encode_decode_round_trip(training, data):
    vocab = Vocabulary.build(training + [["x"]])
    # a sentence mixing words of the vocabulary with (mostly unknown) random ones
    sentence = data.draw(st.lists(st.sampled_from(vocab.words) | words, max_size=12))
    ids = vocab.encode(sentence)
    expected = [w if w in vocab and w not in SPECIALS[:3] else UNK for w in sentence]
    assert vocab.decode(ids) == expected
    assert vocab.decode([BOS_ID, *ids, EOS_ID, PAD_ID, vocab.id("x")]) == expected  # markers dropped, stops at <eos>
    batch, lengths = vocab.encode_batch([sentence])
    assert vocab.decode(batch[0]) == expected and int(lengths[0]) == len(sentence) + 2
    assert Vocabulary.from_json(vocab.to_json()) == vocab


def test_encode_batch_padding_and_lengths(vocab):
    ids, lengths = vocab.encode_batch([["the", "cat"], [], ["the", "dog", "sat", "on", "the", "mat", "."]])
    assert ids.dtype == lengths.dtype == torch.int64
    assert ids.shape == (3, 9) and lengths.tolist() == [4, 2, 9]
    assert ids[0].tolist() == [BOS_ID, vocab.id("the"), vocab.id("cat"), EOS_ID] + [PAD_ID] * 5
    assert ids[1].tolist() == [BOS_ID, EOS_ID] + [PAD_ID] * 7
    assert ((ids != PAD_ID).sum(1) == lengths).all()
    # max_len counts words: a longer sentence is cut and still ends in <eos>
    cut, cut_lengths = vocab.encode_batch([["the", "dog", "sat", "on", "the", "mat", "."], ["the"]], max_len=3)
    assert cut.shape == (2, 5) and cut_lengths.tolist() == [5, 3]
    assert vocab.decode(cut[0]) == ["the", "dog", "sat"] and int(cut[0, 4]) == EOS_ID
    empty, none = vocab.encode_batch([])
    assert empty.shape == (0, 2) and none.shape == (0,)


@pytest.mark.parametrize("max_len", [0, -1, 2.5, True])
def test_encode_batch_refuses_bad_max_len(vocab, max_len):
    with pytest.raises(ConfigError, match="max_len"):
        vocab.encode_batch(SENTENCES, max_len=max_len)


def test_teacher_forcing_shift(vocab):
    ids, lengths = vocab.encode_batch([["the", "cat"], ["dog"]])
    inputs, targets, steps = teacher_forcing(ids, lengths)
    the, cat, dog = vocab.encode(["the", "cat", "dog"])
    assert inputs.tolist() == [[BOS_ID, the, cat], [BOS_ID, dog, PAD_ID]]
    assert targets.tolist() == [[the, cat, EOS_ID], [dog, EOS_ID, PAD_ID]]
    assert steps.tolist() == [3, 2]
    assert ((inputs != PAD_ID).sum(1) == steps).all() and ((targets != PAD_ID).sum(1) == steps).all()


def test_decode_refuses_ids_outside(vocab):
    with pytest.raises(DataError, match="13 ids"):
        vocab.decode([BOS_ID, 13])
    with pytest.raises(DataError):
        vocab.decode([-1])


# --- files ---------------------------------------------------------------------------------------------------


def test_save_load_round_trip(vocab, tmp_path):
    path = tmp_path / "sub" / "vocab.json"
    atomic_write_text(path, vocab.to_json() + "\n")  # as the run writer writes vocab.json
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.words == vocab.words
    assert loaded.encode(["the", "cat"]) == vocab.encode(["the", "cat"])
    assert [p.name for p in path.parent.iterdir()] == ["vocab.json"]  # no temporary file left behind


def _file(tmp_path, payload) -> str:
    path = tmp_path / "vocab.json"
    path.write_bytes(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    return str(path)


GOOD = {"format": "vaekit.vocabulary", "version": 1, "words": list(SPECIALS) + ["the", "cat"]}


@pytest.mark.parametrize("payload, message", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    ([1, 2], "not a vaekit vocabulary"),
    ({**GOOD, "format": "other"}, "not a vaekit vocabulary"),
    ({**GOOD, "version": 2}, "version 2"),
    ({**GOOD, "words": "the cat"}, "list of strings"),
    ({**GOOD, "words": ["<bos>", "<pad>", "<eos>", "<unk>", "the"]}, "first four"),
    ({**GOOD, "words": list(SPECIALS) + ["the", "cat", "the"]}, "'the' appears twice \\(ids 4 and 6\\)"),
    ({**GOOD, "words": list(SPECIALS) + ["the", "<unk>"]}, "appears twice"),
    ({**GOOD, "words": list(SPECIALS) + ["the", 7]}, "word 5 is 7"),
    ({**GOOD, "words": list(SPECIALS) + ["two words"]}, "whitespace"),
    ({**GOOD, "words": list(SPECIALS) + [""]}, "non-empty"),
    ({**GOOD, "words": list(SPECIALS)}, "no words besides"),
])
def test_corrupted_vocabulary_refused(tmp_path, payload, message):
    path = _file(tmp_path, payload)
    with pytest.raises(DataError, match=message) as info:
        Vocabulary.load(path)
    assert path in str(info.value) and "\n" not in str(info.value)
    assert Vocabulary.load(_file(tmp_path, GOOD)).words[4:] == ("the", "cat")


def test_missing_vocabulary_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        Vocabulary.load(tmp_path / "nope.json")


# --- reading sentence files ----------------------------------------------------------------------------------


def test_read_sentences_blank_lines_and_report(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(b"\xef\xbb\xbfthe cat sat\n\n   \nthe dog\r\n  a  b \t c \n")
    sentences, report = read_sentences(path)
    assert sentences == [["the", "cat", "sat"], ["the", "dog"], ["a", "b", "c"]]
    assert (report.lines, report.blank, report.truncated, report.longest, report.sentences) == (5, 2, 0, 3, 3)
    assert report.warning() is None


def test_read_sentences_truncates_and_counts(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("one two three four five\nshort one\nsix seven eight nine\n")
    sentences, report = read_sentences(path, max_len=3)
    assert sentences == [["one", "two", "three"], ["short", "one"], ["six", "seven", "eight"]]
    assert (report.truncated, report.longest) == (2, 5)
    assert "2 of 3 sentences" in report.warning() and "max_len=3" in report.warning()
    for bad in (0, 1.5, False):
        with pytest.raises(ConfigError, match="max_len"):
            read_sentences(path, max_len=bad)


def test_read_sentences_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("good line\nanother\ncaf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError) as info:
        read_sentences(path)
    message = str(info.value)
    assert str(path) in message and "line 3" in message and "0xe9" in message and "\n" not in message


def test_read_sentences_empty_blank_and_missing(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        read_sentences(empty)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\t\n")
    with pytest.raises(DataError, match="no sentences \\(3 blank"):
        read_sentences(blank)
    with pytest.raises(DataError, match="does not exist"):
        read_sentences(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="not a file"):
        read_sentences(tmp_path)


def test_read_sentences_checks_the_memory_budget(tmp_path, monkeypatch):
    path = tmp_path / "s.txt"
    path.write_text("the cat sat on the mat\n" * 100)
    monkeypatch.setenv("VAEKIT_MAX_MEMORY", "1000")
    with pytest.raises(DataError, match="VAEKIT_MAX_MEMORY"):
        read_sentences(path)


def test_ptb_missing_file_says_what_is_expected_where(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="expected ptb.train.txt in .*no such folder"):
        ptb_splits(tmp_path / "nowhere")
    (tmp_path / "ptb").mkdir()
    (tmp_path / "ptb" / "ptb.train.txt").write_text("a b\n")
    (tmp_path / "ptb" / "ptb.valid.txt").write_text("a\n")
    with pytest.raises(DataError, match=f"expected ptb.test.txt in {tmp_path / 'ptb'}"):
        ptb_splits(tmp_path)
    monkeypatch.delenv("VAEKIT_DATA", raising=False)
    with pytest.raises(DataError, match="VAEKIT_DATA"):
        ptb_splits()
    (tmp_path / "ptb" / "ptb.test.txt").write_text("b\n")
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path))
    assert ptb_splits() == {"train": [["a", "b"]], "valid": [["a"]], "test": [["b"]]}


# --- corpora -------------------------------------------------------------------------------------------------


def test_toy_corpus_deterministic_and_varied():
    corpus = toy_corpus(2000, seed=0)
    assert corpus == toy_corpus(2000, seed=0) and corpus != toy_corpus(2000, seed=1)
    assert toy_corpus(50, seed=3) == toy_corpus(100, seed=3)[:50]
    assert len(corpus) == 2000 and all(s[-1] == "." for s in corpus)
    assert min(map(len, corpus)) == TOY_MIN_LEN and max(map(len, corpus)) == TOY_MAX_LEN
    assert len({w for s in corpus for w in s}) == TOY_VOCAB_SIZE
    assert len({tuple(s) for s in corpus}) > 1800  # hardly any repeats: something to learn, not to memorise
    vocab = Vocabulary.build(corpus)
    assert len(vocab) == TOY_VOCAB_SIZE + len(SPECIALS) and vocab.unk_rate(toy_corpus(200, seed=9)) == 0.0
    with pytest.raises(ConfigError, match="n must"):
        toy_corpus(0)


SHARED = shared_data_root()


@pytest.mark.skipif(SHARED is None or not (SHARED / "ptb").is_dir(),
                    reason="PTB is absent (set VAEKIT_DATA to a folder holding ptb/)")
def test_ptb_splits_on_the_real_data():
    splits = ptb_splits(SHARED)
    assert {k: len(v) for k, v in splits.items()} == {"train": 42068, "valid": 3370, "test": 3761}
    assert set(ptb_files(SHARED)) == {"train", "valid", "test"}
    vocab = Vocabulary.build(splits["train"])
    # Mikolov's PTB: 10,000 types with <unk> and the end of sentence; 9,998 words are left besides our 4 specials
    assert len(vocab) == 10_002 and vocab.words[4] == "the" and "N" in vocab
    assert 0.04 < vocab.unk_rate(splits["valid"]) < 0.06  # the literal <unk> tokens, and no new words
    assert all(w in vocab for s in splits["valid"] + splits["test"] for w in s)  # PTB has no out-of-vocabulary words
    ids, lengths = vocab.encode_batch(splits["valid"])
    assert ids.shape == (3370, int(lengths.max())) and vocab.decode(ids[0]) == splits["valid"][0]
