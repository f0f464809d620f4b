"""Sentence corpora: reading one-sentence-a-line text files, Penn Treebank's splits, and a built-in toy corpus.

PTB here is Mikolov's preprocessed version (`$VAEKIT_DATA/ptb/ptb.{train,valid,test}.txt`): already tokenised
(punctuation split off), lower-cased, numbers written `N`, rare words `<unk>`; so `tokenize` only splits on
whitespace. `max_len` counts words, as in `Vocabulary.encode_batch`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from ..core import limits
from ..errors import ConfigError, DataError

PTB_FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
# Bytes held per byte of a text file once read: each token becomes a str object (~50 bytes) plus a list slot.
TEXT_BYTES_PER_FILE_BYTE = 16


def tokenize(line: str) -> list[str]:
    """The whitespace-separated tokens of `line` (PTB is pre-tokenised; no other processing)."""
    return line.split()


@dataclass(frozen=True)
class ReadReport:
    """What `read_sentences` met: `lines` in the file, `blank` ones skipped, `truncated` sentences cut to
    `max_len` words, and the `longest` sentence in words (before cutting)."""

    path: str
    lines: int
    blank: int
    truncated: int
    longest: int
    max_len: int | None = None

    @property
    def sentences(self) -> int:
        return self.lines - self.blank

    def warning(self) -> str | None:
        """A one-line message for the caller to log when sentences were cut, else None."""
        if not self.truncated:
            return None
        return (f"{self.path}: {self.truncated} of {self.sentences} sentences are longer than max_len={self.max_len} "
                f"words (the longest has {self.longest}) and were cut")


def read_sentences(path: str | Path, max_len: int | None = None) -> tuple[list[list[str]], ReadReport]:
    """Tokenised sentences of a UTF-8 file with one sentence a line (blank lines skipped, sentences longer than
    `max_len` words cut), and a ReadReport of what was skipped and cut."""
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
        raise ConfigError(f"max_len must be a whole number >= 1 (words per sentence) or None, got {max_len!r}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"text file {str(path)!r} " + ("is not a file" if path.exists() else "does not exist"))
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"text file {path} is empty")
    limits.check_allocation(size * TEXT_BYTES_PER_FILE_BYTE, f"reading {path}", error=DataError)
    sentences: list[list[str]] = []
    lines = blank = truncated = longest = 0
    with open(path, "rb") as handle:  # bytes, so that a bad byte is reported with its line number
        for lines, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if lines == 1 else "utf-8")  # a leading byte-order mark is dropped
            except UnicodeDecodeError as error:
                raise DataError(f"{path}, line {lines}: not UTF-8 text (byte 0x{raw[error.start]:02x} at column "
                                f"{error.start + 1})") from None
            tokens = tokenize(line)
            if not tokens:
                blank += 1
                continue
            longest = max(longest, len(tokens))
            if max_len is not None and len(tokens) > max_len:
                tokens = tokens[:max_len]
                truncated += 1
            sentences.append(tokens)
    if not sentences:
        raise DataError(f"text file {path} holds no sentences ({blank} blank line(s))")
    return sentences, ReadReport(str(path), lines, blank, truncated, longest, max_len)


# --- a toy corpus: a small grammar with a sentence-level topic (animals or people) -------------------------------

_DETERMINERS = ("the", "a", "every")
_ADJECTIVES = ("big", "small", "old", "young", "happy", "quiet", "lazy", "clever")
_ADVERBS = ("quickly", "slowly", "happily")
_PREPOSITIONS = ("near", "under", "behind", "beside")
_PLACES = ("park", "garden", "river", "hill")
# Each sentence draws one topic: its subject, verb and object all come from it, a global feature for a latent code.
_TOPICS = {
    "animals": {"nouns": ("dog", "cat", "bird", "fox", "mouse", "horse"),
                "transitive": ("chased", "bit", "followed", "smelled"),
                "intransitive": ("slept", "barked", "ran", "jumped"),
                "things": ("ball", "bone", "stick", "tree")},
    "people": {"nouns": ("girl", "boy", "man", "woman", "teacher", "child"),
               "transitive": ("read", "wrote", "bought", "found"),
               "intransitive": ("smiled", "laughed", "walked", "sang"),
               "things": ("book", "letter", "apple", "house")},
}
# Distinct words of toy_corpus (without the special tokens): 3 + 8 + 3 + 4 + 4 + 2 * (6 + 4 + 4 + 4) + 1 (".").
TOY_VOCAB_SIZE = 59
TOY_MIN_LEN, TOY_MAX_LEN = 4, 12  # "the dog slept ." .. "the big old dog chased a small cat near the river ."


def toy_corpus(n: int = 2000, seed: int = 0) -> list[list[str]]:
    """`n` tokenised sentences of a tiny English grammar (TOY_VOCAB_SIZE = 59 words, 4 to 12 tokens each, ending
    in "."), the same for the same seed: subject [transitive verb + object | intransitive verb [adverb]]
    [preposition + place], with subject, verbs and object from one topic per sentence."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a whole number >= 1, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be a whole number, got {seed!r}")
    rng = random.Random(seed)

    def noun_phrase(nouns: tuple[str, ...], max_adjectives: int) -> list[str]:
        k = rng.choices(range(max_adjectives + 1), weights=(4, 4, 2)[: max_adjectives + 1])[0]
        return [rng.choice(_DETERMINERS), *rng.sample(_ADJECTIVES, k), rng.choice(nouns)]

    sentences = []
    for _ in range(n):
        topic = _TOPICS[rng.choice(sorted(_TOPICS))]
        words = noun_phrase(topic["nouns"], 2)  # at most 4 words
        if rng.random() < 0.6:  # transitive: verb + object of at most 3 words
            words += [rng.choice(topic["transitive"]), *noun_phrase(topic["nouns"] + topic["things"], 1)]
        else:
            words.append(rng.choice(topic["intransitive"]))
            if rng.random() < 0.5:
                words.append(rng.choice(_ADVERBS))
        if rng.random() < 0.4:  # 3 words: so at most 4 + 4 + 3 + 1 = 12 tokens
            words += [rng.choice(_PREPOSITIONS), "the", rng.choice(_PLACES)]
        sentences.append(words + ["."])
    return sentences
