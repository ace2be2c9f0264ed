"""Generated container names in the seed's spirit: ``happy_hamster``, ``merry_manatee``, ``shady_giraffe``."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Container  # it imports collections: ~2 ms of every `run`

ADJECTIVES = ["admiring", "adoring", "agitated", "amazing", "angry", "awesome", "blissful", "bold", "boring", "brave", "busy", "charming", "clever", "cool", "compassionate", "competent", "confident", "cranky", "dazzling", "determined", "distracted", "dreamy", "eager", "ecstatic", "elastic", "elated", "elegant", "eloquent", "epic", "fervent", "festive", "flamboyant", "focused", "friendly", "frosty", "gallant", "gifted", "goofy", "gracious", "happy", "hardcore", "heuristic", "hopeful", "hungry", "infallible", "inspiring", "jolly", "jovial", "keen", "kind", "laughing", "loving", "lucid", "magical", "merry", "modest", "musing", "mystifying", "naughty", "nervous", "nice", "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pedantic", "pensive", "practical", "priceless", "quirky", "quizzical", "relaxed", "reverent", "romantic", "sad", "serene", "sharp", "shady", "silly", "sleepy", "stoic", "strange", "stupefied", "suspicious", "sweet", "tender", "thirsty", "trusting", "unruffled", "upbeat", "vibrant", "vigilant", "vigorous", "wizardly", "wonderful", "xenodochial", "youthful", "zealous", "zen"]

ANIMALS = ["aardvark", "albatross", "alligator", "alpaca", "anteater", "antelope", "armadillo", "badger", "beaver", "bison", "bobcat", "buffalo", "camel", "capybara", "caribou", "cheetah", "chinchilla", "cobra", "cougar", "coyote", "crane", "crocodile", "dingo", "dolphin", "donkey", "duck", "eagle", "echidna", "eland", "elephant", "elk", "falcon", "ferret", "flamingo", "fox", "gazelle", "gecko", "gerbil", "gibbon", "giraffe", "gnu", "gopher", "gorilla", "hamster", "hare", "hedgehog", "heron", "hippo", "hyena", "ibex", "iguana", "impala", "jackal", "jaguar", "kangaroo", "kiwi", "koala", "lemur", "leopard", "llama", "lobster", "lynx", "macaw", "manatee", "marmot", "meerkat", "mongoose", "moose", "narwhal", "newt", "ocelot", "octopus", "okapi", "orca", "otter", "owl", "panda", "panther", "pelican", "penguin", "platypus", "porcupine", "puffin", "quail", "quokka", "rabbit", "raccoon", "reindeer", "rhino", "salamander", "seal", "shark", "sloth", "squirrel", "starling", "swan", "tapir", "tiger", "toucan", "turtle", "walrus", "weasel", "wolf", "wombat", "yak", "zebra"]

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_CHARS = _ALNUM | frozenset("_.-")


def _below(n: int) -> int:
    return int.from_bytes(os.urandom(4), "big") % n


def _pick(seq: tuple[str, ...] | list[str]) -> str:
    return seq[_below(len(seq))]


def generate(taken: Container[str]) -> str:
    """A free ``adjective_animal`` name; a digit is appended if the pair is taken (as Docker does)."""
    for attempt in range(100):
        name = f"{_pick(ADJECTIVES)}_{_pick(ANIMALS)}"
        if attempt >= 10:
            name += str(_below(10))
        if name not in taken:
            return name
    return f"{_pick(ADJECTIVES)}_{_pick(ANIMALS)}_{os.urandom(3).hex()}"


def valid(name: str) -> bool:
    """Docker's ``/?[a-zA-Z0-9][a-zA-Z0-9_.-]+`` (by character sets: no regex to compile at start-up)."""
    name = name.removeprefix("/")
    return len(name) >= 2 and name[0] in _ALNUM and _NAME_CHARS.issuperset(name)
