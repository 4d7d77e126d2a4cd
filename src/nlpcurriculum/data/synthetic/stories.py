"""Rule-generated children's stories whose word relations are known by construction.

TinyStories (Eldan & Li 2023, arXiv:2305.07759) showed that very small language models learn
fluent English from simple stories. This module writes stories of the same flavour with a seeded
grammar instead of an LLM, so that every semantic or syntactic relation a word-embedding model might
pick up is *known*: the tables below list the pairs, and the templates make the co-occurrence
statistics carry them.

How the statistics encode each relation (the distributional hypothesis made explicit). A word's
vector is learned from the words around it, so each relation is built as "shared identity context
+ a context that marks the relation's direction":

* gender (``king -> queen``): both words of a pair share role words (``castle``, ``throne``, ``crown``
  for king/queen; ``kite``, ``school`` for boy/girl), and the pronouns that follow them differ
  (``he/his/himself`` vs ``she/her/herself``). The offset king - man is then the "royal role"
  direction and queen - king the "feminine pronoun" direction, so king - man + woman lands near queen.
* plural (``cat -> cats``): both share object words (``milk``, ``whiskers``); singulars come with
  ``a/one/this ... is/was/its``, plurals with ``two/many/these ... are/were/their``.
* tense (``walk -> walked``): both share complements (``along the path``); the base form comes with
  ``every day / likes to / will / tomorrow``, the past with ``yesterday / last week / long ago``.
* capital (``france -> paris``) and nationality (``france -> french``): a country and its capital
  share the nationality word (``french music``); countries come with ``country / land / border``,
  capitals with ``city / streets / buildings``.
* comparative (``big -> bigger``): both share typical nouns (``elephant``, ``whale``); the base form
  comes with ``very / so / looked``, the comparative with ``than / even / grew``.

Words of one relation table are not reused as context words of another, so the relations do not
leak into each other. Stories are ordinary English with capitals and punctuation, so a tokenizer has
real text to work on; :func:`nlpcurriculum.embeddings.simple_word_tokenize` lower-cases them into
words for word2vec.

Left out: anything beyond a few sentences of narrative (no dialogue, no plot), agreement beyond
what the templates need, and ambiguous words (``her`` is both possessive and object, so the
pronoun table pairs ``his/her`` only as possessives and keeps the object form out).

Example (seed 0, one story)::

    >>> generate_stories(1, seed=0)[0][:60]
    'There once lived a gentle son. The son kept his parents near'
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = [
    "gender_pairs",
    "pronoun_pairs",
    "plural_pairs",
    "tense_pairs",
    "capital_pairs",
    "nationality_pairs",
    "comparative_pairs",
    "RELATIONS",
    "generate_stories",
    "analogy_questions",
    "similarity_pairs",
    "relation_words",
]

Pair = tuple[str, str]

# ---------------------------------------------------------------------------------------------
# Relation tables: (source, target). Every word is one lower-case token.
# ---------------------------------------------------------------------------------------------

#: (male, female) character nouns.
gender_pairs: tuple[Pair, ...] = (
    ("king", "queen"),
    ("prince", "princess"),
    ("man", "woman"),
    ("boy", "girl"),
    ("father", "mother"),
    ("brother", "sister"),
    ("son", "daughter"),
    ("uncle", "aunt"),
    ("husband", "wife"),
    ("grandfather", "grandmother"),
)

#: (male, female) pronouns; used to mark gender in the stories, not part of the analogy tables.
pronoun_pairs: tuple[Pair, ...] = (("he", "she"), ("his", "her"), ("himself", "herself"))

#: (singular, plural) object nouns, regular and irregular.
plural_pairs: tuple[Pair, ...] = (
    ("cat", "cats"),
    ("dog", "dogs"),
    ("bird", "birds"),
    ("apple", "apples"),
    ("box", "boxes"),
    ("ball", "balls"),
    ("book", "books"),
    ("flower", "flowers"),
    ("fox", "foxes"),
    ("cup", "cups"),
    ("tree", "trees"),
    ("star", "stars"),
    ("mouse", "mice"),
    ("child", "children"),
)

#: (base/present, past) verbs, regular and irregular.
tense_pairs: tuple[Pair, ...] = (
    ("walk", "walked"),
    ("run", "ran"),
    ("jump", "jumped"),
    ("sing", "sang"),
    ("eat", "ate"),
    ("drink", "drank"),
    ("see", "saw"),
    ("find", "found"),
    ("build", "built"),
    ("paint", "painted"),
    ("swim", "swam"),
    ("write", "wrote"),
    ("play", "played"),
    ("climb", "climbed"),
    ("throw", "threw"),
    ("catch", "caught"),
)

#: (country, capital), real places, lower-cased.
capital_pairs: tuple[Pair, ...] = (
    ("france", "paris"),
    ("spain", "madrid"),
    ("italy", "rome"),
    ("germany", "berlin"),
    ("japan", "tokyo"),
    ("egypt", "cairo"),
    ("greece", "athens"),
    ("russia", "moscow"),
    ("china", "beijing"),
    ("peru", "lima"),
    ("kenya", "nairobi"),
    ("canada", "ottawa"),
)

#: (country, nationality adjective), aligned with :data:`capital_pairs`.
nationality_pairs: tuple[Pair, ...] = (
    ("france", "french"),
    ("spain", "spanish"),
    ("italy", "italian"),
    ("germany", "german"),
    ("japan", "japanese"),
    ("egypt", "egyptian"),
    ("greece", "greek"),
    ("russia", "russian"),
    ("china", "chinese"),
    ("peru", "peruvian"),
    ("kenya", "kenyan"),
    ("canada", "canadian"),
)

#: (adjective, comparative).
comparative_pairs: tuple[Pair, ...] = (
    ("big", "bigger"),
    ("small", "smaller"),
    ("tall", "taller"),
    ("fast", "faster"),
    ("slow", "slower"),
    ("happy", "happier"),
    ("old", "older"),
    ("young", "younger"),
    ("strong", "stronger"),
    ("warm", "warmer"),
    ("cold", "colder"),
    ("loud", "louder"),
    ("quiet", "quieter"),
    ("bright", "brighter"),
    ("soft", "softer"),
)

#: The relations that analogy and similarity evaluations draw from, by name.
RELATIONS: dict[str, tuple[Pair, ...]] = {
    "gender": gender_pairs,
    "plural": plural_pairs,
    "tense": tense_pairs,
    "capital": capital_pairs,
    "nationality": nationality_pairs,
    "comparative": comparative_pairs,
}

# ---------------------------------------------------------------------------------------------
# Context tables: the words that give each pair its shared identity (aligned with the tables).
# ---------------------------------------------------------------------------------------------

_ROLE_WORDS: tuple[tuple[str, ...], ...] = (  # nouns a character of that pair talks about
    ("castle", "throne", "crown", "kingdom"),
    ("palace", "tower", "horse", "carriage"),
    ("market", "village", "shop", "cart"),
    ("school", "kite", "toys", "teacher"),
    ("kitchen", "dinner", "family", "home"),
    ("bicycle", "treehouse", "puzzle", "marbles"),
    ("bedroom", "homework", "blanket", "parents"),
    ("farm", "tractor", "barn", "sheep"),
    ("wedding", "ring", "cottage", "anniversary"),
    ("armchair", "glasses", "garden", "cane"),
)

_OBJECT_WORDS: tuple[tuple[str, ...], ...] = (  # what an object is found with
    ("milk", "whiskers"),
    ("bone", "leash"),
    ("nest", "feathers"),
    ("orchard", "juice"),
    ("cardboard", "lid"),
    ("bat", "net"),
    ("pages", "library"),
    ("petals", "vase"),
    ("den", "tail"),
    ("tea", "saucer"),
    ("leaves", "forest"),
    ("sky", "telescope"),
    ("cheese", "hole"),
    ("nursery", "crib"),
)

_VERB_COMPLEMENTS: tuple[tuple[str, ...], ...] = (  # what a verb is done to / where
    ("along the path", "up the hill"),
    ("in the race", "around the track"),
    ("over the puddle", "on the trampoline"),
    ("a song", "a melody"),
    ("some bread", "a bowl of soup"),
    ("some water", "a glass of lemonade"),
    ("a rainbow", "the moon"),
    ("a coin", "a treasure"),
    ("a bridge", "a wall"),
    ("a picture", "a portrait"),
    ("in the pond", "across the lake"),
    ("a letter", "a poem"),
    ("the piano", "the drum"),
    ("the ladder", "a rope"),
    ("a stone", "a snowball"),
    ("a fish", "a butterfly"),
)

_ADJECTIVE_NOUNS: tuple[tuple[str, ...], ...] = (  # what typically has the property
    ("elephant", "whale"),
    ("ant", "pebble"),
    ("giraffe", "pine"),
    ("cheetah", "rocket"),
    ("snail", "turtle"),
    ("clown", "party"),
    ("owl", "statue"),
    ("kitten", "lamb"),
    ("ox", "bear"),
    ("sun", "fire"),
    ("snow", "ice"),
    ("thunder", "trumpet"),
    ("whisper", "night"),
    ("lamp", "lantern"),
    ("pillow", "cloud"),
)

_NEUTRAL_ADJECTIVES = ("brave", "kind", "clever", "gentle", "little", "curious")
_NUMBERS = ("two", "three", "four", "five", "many", "some")

# ---------------------------------------------------------------------------------------------
# The grammar: a story is an intro plus a few episodes, each a handful of sentence templates.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Character:
    """The hero of a story: a noun from :data:`gender_pairs` and its pronouns."""

    noun: str
    pair: int  # index into gender_pairs / _ROLE_WORDS
    female: bool

    @property
    def he(self) -> str:
        return "she" if self.female else "he"

    @property
    def his(self) -> str:
        return "her" if self.female else "his"

    @property
    def himself(self) -> str:
        return "herself" if self.female else "himself"

    @property
    def counterpart(self) -> str:
        return gender_pairs[self.pair][0 if self.female else 1]


def _sentence(template: str, **slots: str) -> str:
    text = template.format(**slots)
    return text[0].upper() + text[1:]


def _intro(rng: random.Random, c: _Character) -> list[str]:
    roles = _ROLE_WORDS[c.pair]
    r1, r2 = rng.sample(roles, 2)
    first = rng.choice(
        (
            "once upon a time, there was a {adj} {c}.",
            "there once lived a {adj} {c}.",
            "long ago, a {adj} {c} lived far away.",
        )
    )
    second = rng.choice(
        (
            "{he} was proud of {his} {r1}.",
            "every morning, {he} thought about the {r1} and the {r2}.",
            "the {c} loved {his} {r1} more than anything.",
            "{he} often talked about the {r1} to {himself}.",
            "the {c} kept {his} {r1} near the {r2}.",
        )
    )
    slots = dict(
        adj=rng.choice(_NEUTRAL_ADJECTIVES), c=c.noun, he=c.he, his=c.his,
        himself=c.himself, r1=r1, r2=r2,
    )
    return [_sentence(first, **slots), _sentence(second, **slots)]


def _role_episode(rng: random.Random, c: _Character) -> list[str]:
    r1, r2 = rng.sample(_ROLE_WORDS[c.pair], 2)
    templates = (
        ("one day, the {c} went to the {r1}.", "{he} was glad to be there."),
        ("the {c} cleaned the {r1} by {himself}, and {he} smiled.",),
        ("{he} told a friend about {his} {r1} and {his} {r2}.",),
        ("the {c} met the {other} near the {r1}.", "{he} said hello."),
        ("that evening, the {c} sat by the {r2} and {he} felt calm.",),
    )
    slots = dict(c=c.noun, he=c.he, his=c.his, himself=c.himself, r1=r1, r2=r2,
                 other=c.counterpart)
    return [_sentence(t, **slots) for t in rng.choice(templates)]


def _object_episode(rng: random.Random, c: _Character) -> list[str]:
    i = rng.randrange(len(plural_pairs))
    one, many = plural_pairs[i]
    w1, w2 = rng.sample(_OBJECT_WORDS[i], 2)
    slots = dict(c=c.noun, he=c.he, his=c.his, one=one, many=many, w1=w1, w2=w2,
                 n=rng.choice(_NUMBERS))
    if rng.random() < 0.5:
        templates = (
            ("the {c} noticed a {one} near the {w1}.", "the {one} was alone and its {w2} was near."),
            ("{he} spotted one {one} by the {w1}.", "this {one} is the only {one} with a {w2}."),
            ("there was a {one} in {his} room.", "the {one} is next to the {w1}."),
            ("the {c} held a {one} and the {w1}.", "a {one} was all {he} wanted."),
        )
    else:
        templates = (
            ("the {c} noticed {n} {many} near the {w1}.", "the {many} were together with their {w2}."),
            ("{he} spotted {n} {many} by the {w1}.", "these {many} are the {many} with the {w2}."),
            ("there were {n} {many} in {his} room.", "the {many} are next to the {w1}."),
            ("the {c} counted {n} {many} and the {w1}.", "all the {many} were there."),
        )
    return [_sentence(t, **slots) for t in rng.choice(templates)]


def _verb_episode(rng: random.Random, c: _Character) -> list[str]:
    i = rng.randrange(len(tense_pairs))
    base, past = tense_pairs[i]
    comp = rng.choice(_VERB_COMPLEMENTS[i])
    slots = dict(c=c.noun, he=c.he, his=c.his, base=base, past=past, comp=comp)
    if rng.random() < 0.5:
        templates = (
            "every day, the {c} likes to {base} {comp}.",
            "tomorrow, {he} will {base} {comp} again.",
            "the {c} can {base} {comp} every morning.",
            "{he} wants to {base} {comp} with {his} friends.",
            "the {c} and {his} friends always {base} {comp}.",
        )
    else:
        templates = (
            "yesterday, the {c} {past} {comp}.",
            "last week, {he} {past} {comp} with a friend.",
            "long ago, the {c} {past} {comp} for the first time.",
            "then {he} {past} {comp} and laughed.",
            "after lunch yesterday, {he} {past} {comp}.",
        )
    return [_sentence(rng.choice(templates), **slots)]


def _travel_episode(rng: random.Random, c: _Character) -> list[str]:
    i = rng.randrange(len(capital_pairs))
    country, capital = capital_pairs[i]
    nat = nationality_pairs[i][1]
    slots = dict(c=c.noun, he=c.he, his=c.his, country=country, capital=capital, nat=nat)
    templates = (
        "{capital} is the capital of {country}.",
        "the {c} traveled to the city of {capital}.",
        "in {capital}, the city streets were full of {nat} music.",
        "{country} is a large country, and the {nat} people are friendly.",
        "the {c} crossed the country of {country} by train.",
        "{he} loved {nat} food, so {he} visited the land of {country}.",
        "the busy city of {capital} has high buildings and {nat} shops.",
        "the border of {country} has {nat} mountains and rivers.",
    )
    return [_sentence(t, **slots) for t in rng.sample(templates, 2)]


def _compare_episode(rng: random.Random, c: _Character) -> list[str]:
    i = rng.randrange(len(comparative_pairs))
    adj, comp = comparative_pairs[i]
    noun = rng.choice(_ADJECTIVE_NOUNS[i])
    slots = dict(c=c.noun, he=c.he, adj=adj, comp=comp, noun=noun)
    base_t = (
        "the {c} met a very {adj} {noun}.",
        "the {noun} looked so {adj}.",
        "{he} thought the {noun} was very {adj}.",
    )
    comp_t = (
        "the {noun} was {comp} than the {c}.",
        "every year, the {noun} grew {comp} and {comp}.",
        "soon the {noun} was even {comp} than before.",
    )
    return [_sentence(rng.choice(base_t), **slots), _sentence(rng.choice(comp_t), **slots)]


_EPISODES: tuple[Callable[[random.Random, _Character], list[str]], ...] = (
    _role_episode, _object_episode, _verb_episode, _travel_episode, _compare_episode,
)

_ENDINGS = (
    "in the end, the {c} went to sleep.",
    "and {he} lived happily ever after.",
    "the {c} never forgot that day.",
)


def _story(rng: random.Random) -> str:
    pair = rng.randrange(len(gender_pairs))
    female = rng.random() < 0.5
    hero = _Character(gender_pairs[pair][int(female)], pair, female)
    sentences = _intro(rng, hero)
    # Episodes are drawn with replacement so a story can, e.g., count objects twice.
    for episode in rng.choices(_EPISODES, k=rng.randint(2, 4)):
        sentences += episode(rng, hero)
    if rng.random() < 0.5:
        sentences.append(_sentence(rng.choice(_ENDINGS), c=hero.noun, he=hero.he))
    return " ".join(sentences)


def generate_stories(n: int, seed: int | np.random.Generator = 0) -> list[str]:
    """Generate ``n`` short stories from the grammar, reproducibly.

    Args:
        n: number of stories (each 4-11 sentences, about 60 words).
        seed: an int seeds a private generator: the same ``(n, seed)`` gives the same list, and a
            prefix of a longer list with the same seed. A ``numpy.random.Generator`` (as the other
            synthetic generators take) is advanced once to draw that int.

    Returns:
        The stories, one string each, capitalised and punctuated.
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2**63))
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int or numpy.random.Generator, got {type(seed).__name__}")
    rng = random.Random(int(seed))
    return [_story(rng) for _ in range(n)]


def analogy_questions(relations: str | list[str] | None = None) -> list[tuple[str, str, str, str]]:
    """All ``a : b :: c : d`` questions from the relation tables.

    For a relation with pairs ``(a_i, b_i)`` every ordered choice of two different pairs gives a
    question ``(a_i, b_i, a_j, b_j)``: "a_i is to b_i as a_j is to ?" with answer ``b_j``. A table of
    ``p`` pairs yields ``p * (p - 1)`` questions (gender: 10 pairs -> 90 questions).

    Args:
        relations: a name or list of names from :data:`RELATIONS`; ``None`` for all of them.

    Returns:
        A list of ``(a, b, c, d)`` quadruples, relation by relation in table order.
    """
    names = list(RELATIONS) if relations is None else [relations] if isinstance(relations, str) \
        else list(relations)
    unknown = [r for r in names if r not in RELATIONS]
    if unknown:
        raise ValueError(f"unknown relation(s) {unknown}; known: {sorted(RELATIONS)}")
    questions = []
    for name in names:
        for (a, b), (c, d) in itertools.permutations(RELATIONS[name], 2):
            questions.append((a, b, c, d))
    return questions


def similarity_pairs(seed: int = 0, relations: list[str] | None = None) -> list[tuple[str, str, bool]]:
    """Word pairs labelled related (``True``) or unrelated (``False``).

    Related pairs are the rows of the relation tables. Unrelated pairs match them one for one:
    for each related pair ``(a, b)``, ``a`` is paired with a word drawn from a *different* relation
    table, which by construction never shares context words with ``a``.

    Args:
        seed: seed for drawing the unrelated partners.
        relations: names from :data:`RELATIONS` to draw from; ``None`` for all.

    Returns:
        ``[(a, b, related), ...]``: all related pairs first, then as many unrelated ones.
    """
    names = list(RELATIONS) if relations is None else list(relations)
    unknown = [r for r in names if r not in RELATIONS]
    if unknown or len(names) < 2:
        raise ValueError(f"need >= 2 known relations, got {names}; known: {sorted(RELATIONS)}")
    rng = random.Random(seed)
    related = [(a, b, True) for name in names for a, b in RELATIONS[name]]
    unrelated = []
    for name in names:
        for a, _ in RELATIONS[name]:
            # Every table that holds `a` is off limits (france is in capital and nationality).
            near = {w for o in RELATIONS.values() if any(a in p for p in o) for p in o for w in p}
            others = sorted({w for o in names for p in RELATIONS[o] for w in p} - near)
            unrelated.append((a, rng.choice(others), False))
    return related + unrelated


def relation_words(relations: list[str] | None = None) -> list[str]:
    """The sorted set of words that appear in the relation tables (all, or the named ones)."""
    names = list(RELATIONS) if relations is None else list(relations)
    return sorted({w for name in names for pair in RELATIONS[name] for w in pair})
