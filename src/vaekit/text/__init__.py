"""Text data for sentence VAEs: a word vocabulary with fixed special ids, and sentence corpora (PTB, a toy one).

    sentences, report = read_sentences("ptb.train.txt", max_len=50)
    vocab = Vocabulary.build(sentences, max_size=10_000)
    ids, lengths = vocab.encode_batch(sentences, max_len=50)      # <bos> words <eos> <pad>...
    inputs, targets, steps = teacher_forcing(ids, lengths)         # see vaekit.text.vocab for the convention
"""

from .corpus import (PTB_FILES, TOY_MAX_LEN, TOY_MIN_LEN, TOY_VOCAB_SIZE, ReadReport,
                     read_sentences, tokenize, toy_corpus)
from .vocab import (BOS, BOS_ID, EOS, EOS_ID, PAD, PAD_ID, SPECIALS, UNK, UNK_ID, Vocabulary, teacher_forcing)

__all__ = ["Vocabulary", "teacher_forcing", "SPECIALS", "PAD", "BOS", "EOS", "UNK", "PAD_ID", "BOS_ID", "EOS_ID",
           "UNK_ID", "tokenize", "read_sentences", "ReadReport", "PTB_FILES", "toy_corpus",
           "TOY_VOCAB_SIZE", "TOY_MIN_LEN", "TOY_MAX_LEN"]
