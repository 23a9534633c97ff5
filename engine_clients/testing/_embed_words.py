"""The word-level vocabulary shared by the scripted embedding and rerank models (GGUF and Hugging Face).

Every word here is one token, lowercased; any other word is spelled with single characters. Tests that want
vectors and scores they can predict build their texts from these words. No imports: the model builders run
this file from other Python environments.
"""

from __future__ import annotations

import string

# Words that never count as shared by the rerank model (they still count in embeddings).
STOPWORDS = [
    "a", "an", "the", "in", "of", "to", "is", "are", "and", "or", "for", "on", "at", "with", "by", "from",
    "what", "how", "which", "who", "it", "this", "that", "my", "your", "be", "do", "does", "i", "you",
]  # fmt: skip
KEYWORDS = [
    "paris", "london", "berlin", "rome", "france", "germany", "italy", "england", "capital", "city",
    "weather", "rain", "sunny", "forecast", "today", "tomorrow", "temperature", "cold", "hot", "snow",
    "python", "code", "programming", "language", "function", "write", "example", "examples", "bug", "test",
    "cat", "cats", "dog", "dogs", "pet", "pets", "food", "eat", "play", "animal",
    "travel", "guide", "hotel", "train", "flight", "museum", "tower", "river", "bridge", "map",
    "music", "song", "guitar", "piano", "movie", "book", "read", "news", "sports", "football",
    "apple", "banana", "fruit", "recipe", "cook", "bread", "coffee", "tea", "water", "milk",
    "car", "bike", "road", "fast", "slow", "big", "small", "new", "old", "good",
    "hello", "world", "question", "answer", "search", "document", "query", "model", "server", "engine",
]  # fmt: skip
WORDS = STOPWORDS + KEYWORDS


def initial_characters() -> str:
    """Characters that can start a word (letters, digits, punctuation: each punctuation mark is a word)."""
    return string.ascii_lowercase + string.digits + string.punctuation


def continuation_characters() -> str:
    """Characters that can continue a word spelled character by character."""
    return string.ascii_lowercase + string.digits
