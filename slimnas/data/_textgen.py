"""``text``: a procedurally generated text classification task (reviews: topic x sentiment).

Every sentence reviews one of four topics (food, film, travel, tech) and is positive or
negative: eight classes. Topics show in their nouns and verbs, sentiment in adjectives, but:

- negation flips an adjective ("was not good" is negative, "was never boring" positive);
- two-clause sentences carry a second topic and sentiment, and the label is the main clause's:
  the one after "but" or "however", the first one before "although" or "even though";
- some nouns, verbs and adjectives are shared or mild, and a few labels are noise.

So word counts alone (a bag of words) cannot tell which clause matters or what a negation
touches: it lands well below a model that reads word order. Generated from a seed.
"""

from __future__ import annotations

import numpy as np

TOPICS = {
    "food": (["pasta", "soup", "pizza", "salad", "dessert", "curry", "steak", "bread", "sushi", "menu", "waiter",
              "kitchen", "sauce", "dish"], ["tasted", "smelled", "was served", "was cooked", "came out"]),
    "film": (["movie", "plot", "actor", "ending", "script", "soundtrack", "director", "scene", "cast", "sequel",
              "trailer", "dialogue", "camera", "story"], ["played", "was filmed", "was written", "felt", "unfolded"]),
    "travel": (["hotel", "beach", "flight", "room", "tour", "guide", "island", "airport", "view", "resort",
                "train", "city", "cabin", "trip"], ["looked", "was booked", "felt", "was arranged", "turned out"]),
    "tech": (["phone", "laptop", "battery", "screen", "app", "keyboard", "camera", "charger", "update", "printer",
              "router", "speaker", "software", "tablet"], ["worked", "ran", "was installed", "felt", "performed"]),
}
SHARED_NOUNS = ["experience", "price", "service", "quality", "design", "staff", "setup"]
POSITIVE = ["good", "great", "excellent", "wonderful", "delightful", "superb", "pleasant", "impressive", "fun",
            "reliable", "charming", "lovely"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "disappointing", "poor", "dull", "broken", "annoying",
            "mediocre", "slow", "unpleasant"]
MILD = ["fine", "okay", "interesting", "unusual", "different", "simple"]
INTENSIFIERS = ["", "", "", "really ", "very ", "quite ", "truly ", "rather "]
NEGATIONS = ["not ", "never ", "hardly "]
OPENERS = ["", "", "", "honestly , ", "overall , ", "i think ", "to be fair , ", "well , "]
CONTRAST_AFTER = ["but", "however ,", "yet"]  # the main clause comes second
CONTRAST_BEFORE = ["although", "even though", "while"]  # the main clause comes first
CLASSES = [f"{t}-{s}" for t in TOPICS for s in ("positive", "negative")]


def _clause(rng: np.random.Generator, topic: str, positive: bool) -> str:
    nouns, verbs = TOPICS[topic]
    noun = nouns[rng.integers(len(nouns))] if rng.random() < 0.85 else SHARED_NOUNS[rng.integers(len(SHARED_NOUNS))]
    if rng.random() < 0.4:  # a topic word said twice makes the topic clearer in a long sentence
        noun = f"{noun} of the {nouns[rng.integers(len(nouns))]}"
    verb = verbs[rng.integers(len(verbs))] if rng.random() < 0.5 else ("was" if rng.random() < 0.7 else "seemed")
    negated = rng.random() < 0.35
    says_positive = positive != negated  # the adjective before negation
    adjectives = POSITIVE if says_positive else NEGATIVE
    adjective = adjectives[rng.integers(len(adjectives))]
    negation = NEGATIONS[rng.integers(len(NEGATIONS))] if negated else ""
    det = "the" if rng.random() < 0.8 else "this"
    return f"{det} {noun} {verb} {negation}{INTENSIFIERS[rng.integers(len(INTENSIFIERS))]}{adjective}"


def make_text(n: int = 6000, seed: int = 0, label_noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """``n`` review sentences and their labels (indices into :data:`CLASSES`, balanced).

    Args:
        n: number of sentences.
        seed: the generator's seed.
        label_noise: share of labels replaced by a random class.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASSES))
    topics = list(TOPICS)
    texts = []
    for label in labels:
        topic, positive = topics[label // 2], label % 2 == 0
        main = _clause(rng, topic, positive)
        opener = OPENERS[rng.integers(len(OPENERS))]
        form = rng.random()
        if form < 0.4:
            sentence = f"{opener}{main}"
        else:  # a second clause of another topic or sentiment (or both) that does not decide the label
            other_topic = topic if rng.random() < 0.35 else topics[rng.integers(len(topics))]
            other_positive = (not positive) if rng.random() < 0.7 else positive
            other = _clause(rng, other_topic, other_positive)
            if form < 0.55:
                sentence = f"{opener}{main} and {_mild(rng)}"
            elif form < 0.8:
                sentence = f"{opener}{other} {CONTRAST_AFTER[rng.integers(len(CONTRAST_AFTER))]} {main}"
            else:
                sentence = f"{opener}{main} {CONTRAST_BEFORE[rng.integers(len(CONTRAST_BEFORE))]} {other}"
        texts.append(sentence + (" ." if rng.random() < 0.7 else " !"))
    noisy = rng.random(n) < label_noise
    labels = np.where(noisy, rng.integers(0, len(CLASSES), n), labels)
    return np.array(texts), labels.astype(np.int64)


def _mild(rng: np.random.Generator) -> str:
    """A clause that adds words but no sentiment."""
    noun = SHARED_NOUNS[rng.integers(len(SHARED_NOUNS))]
    return f"the {noun} was {MILD[rng.integers(len(MILD))]}"
