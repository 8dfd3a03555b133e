"""Text to symbol sequences for discrete HMMs (Rabiner 1989): Vocabulary round trips,
unknown tokens, sequence splitting, and the embedded public-domain text."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_tools.text import (
    ENGLISH_LETTERS_SPACE,
    Vocabulary,
    load_embedded_text,
    text_to_sequences,
)


@settings(max_examples=30)
@given(text=st.text(min_size=1, max_size=200))
def test_char_vocabulary_round_trip(text):
    vocab = Vocabulary.build(text, level="char", lowercase=False)
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    assert vocab.size == len(set(text))
    assert Vocabulary.from_json(vocab.to_json()) == vocab


@settings(max_examples=20)
@given(words=st.lists(st.sampled_from(["the", "cat", "sat", "on", "mat", "don't"]), min_size=1, max_size=30))
def test_word_vocabulary_round_trip(words):
    text = " ".join(words)
    vocab = Vocabulary.build(text, level="word")
    ids = vocab.encode(text)
    assert ids.shape == (len(words),)
    assert vocab.decode(ids) == text
    np.testing.assert_array_equal(Vocabulary.from_json(vocab.to_json()).encode(text), ids)


def test_vocabulary_hand_computed_and_unknown_handling():
    vocab = Vocabulary.build("Abba cab", level="char")
    assert vocab.symbols == (" ", "a", "b", "c")  # lower-cased, sorted
    np.testing.assert_array_equal(vocab.encode("abc "), [1, 2, 3, 0])
    with pytest.raises(ValueError, match="symbol 'z' \\(position 1\\).*unk_token"):
        vocab.encode("az")
    with_unk = Vocabulary.build("abba", level="char", unk_token="?")
    assert with_unk.symbols[0] == "?" and with_unk.size == 3
    np.testing.assert_array_equal(with_unk.encode("azb"), [1, 0, 2])
    assert with_unk.decode(with_unk.encode("azb")) == "a?b"
    rare = Vocabulary.build("a a a b", level="word", min_count=2, unk_token="<unk>")
    assert rare.symbols == ("<unk>", "a")
    assert rare.decode(rare.encode("a b c")) == "a <unk> <unk>"
    assert Vocabulary.from_json(rare.to_json()) == rare
    with pytest.raises(ValueError, match="id 5 is out of range.*0..1"):
        rare.decode([5])
    with pytest.raises(ValueError, match="level must be 'char' or 'word'"):
        Vocabulary(["a"], level="byte")
    with pytest.raises(ValueError, match="distinct"):
        Vocabulary(["a", "a"])


def test_text_to_sequences_sentences_and_lengths():
    text = "The cat sat.  The dog\nran away!\n\nA new paragraph, here"
    X, lengths, vocab = text_to_sequences(text, alphabet=ENGLISH_LETTERS_SPACE)
    assert X.shape == (int(lengths.sum()), 1) and X.dtype == np.int64
    assert lengths.dtype == np.int64
    assert vocab.symbols == tuple(ENGLISH_LETTERS_SPACE)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    decoded = [vocab.decode(X[s : s + n, 0]) for s, n in zip(starts, lengths)]
    assert decoded == ["the cat sat", "the dog ran away", "a new paragraph here"]


def test_text_to_sequences_lines_words_and_min_length():
    text = "one two\n\nthree, four five\nsix"
    X, lengths, vocab = text_to_sequences(text, level="word", split="line")
    np.testing.assert_array_equal(lengths, [2, 3, 1])
    assert vocab.decode(X[:, 0]) == "one two three four five six"
    X, lengths, _ = text_to_sequences(text, level="word", split="line", min_length=2)
    np.testing.assert_array_equal(lengths, [2, 3])
    X, lengths, vocab = text_to_sequences("ab\ncd", split="none")
    assert vocab.decode(X[:, 0]) == "ab cd" and lengths.tolist() == [5]


def test_existing_vocab_reused_and_errors():
    _, _, vocab = text_to_sequences("abc abc.", alphabet="abc ")
    X, lengths, same = text_to_sequences("Cab.", vocab=vocab, alphabet="abc ")
    assert same is vocab and vocab.decode(X[:, 0]) == "cab"
    with pytest.raises(ValueError, match="symbol 'z'"):
        text_to_sequences("zebra", vocab=vocab)
    with pytest.raises(ValueError, match="no sequence of at least"):
        text_to_sequences("123 456", alphabet="abc")
    with pytest.raises(ValueError, match="upper-case"):
        text_to_sequences("abc", alphabet="ABC")
    with pytest.raises(ValueError, match="split must be"):
        text_to_sequences("abc", split="word")


def test_embedded_text_is_public_domain_english():
    text = load_embedded_text()
    assert text.startswith("PREFACE")
    assert len(text) > 300_000 and text.isascii()
    assert "ZOOLOGY, n." in text
    notice = load_embedded_text(include_notice=True)
    assert "A Public Domain Text, Copyright Expired" in notice
    X, lengths, vocab = text_to_sequences(text, alphabet=ENGLISH_LETTERS_SPACE)
    assert vocab.size == 27 and int(lengths.sum()) == X.shape[0] > 300_000
    # Letter statistics of English: 'e' is the commonest letter, space commoner still.
    counts = np.bincount(X[:, 0], minlength=27)
    assert vocab.symbols[int(np.argmax(counts))] == " "
    assert vocab.symbols[int(np.argmax(counts[:26]))] == "e"
    with pytest.raises(ValueError, match="name must be one of"):
        load_embedded_text("moby-dick")
