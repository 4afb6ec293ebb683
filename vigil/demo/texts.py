"""Text material for the demo traffic: the SpamAssassin sample, hand-written lines and obfuscations.

The generator only picks from pools built here, so every string operation happens once per pool entry,
never once per event.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources

# Domains the attack traffic links to; rules and lists can name them exactly.
KNOWN_BAD_DOMAINS: tuple[str, ...] = (
    "cheap-followers.biz",
    "free-crypto-gift.xyz",
    "login-verify-account.top",
    "giftcard-bonus.click",
    "secure-wallet-support.top",
)
# Throwaway TLDs that random-word link-spam domains are registered under.
THROWAWAY_TLDS: tuple[str, ...] = ("xyz", "top", "click", "icu", "buzz", "rest")
THROWAWAY_EMAIL_DOMAINS: tuple[str, ...] = (
    "mailinator.com",
    "guerrillamail.com",
    "10minutemail.com",
    "yopmail.com",
    "sharklasers.com",
    "trashmail.com",
    "dispostable.com",
    "temp-mail.org",
)
COMMON_EMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com",
    "gmail.com",
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "proton.me",
    "fastmail.com",
    "gmx.de",
    "hotmail.co.uk",
)
BENIGN_URLS: tuple[str, ...] = (
    "https://en.wikipedia.org/wiki/Sourdough",
    "https://en.wikipedia.org/wiki/Trust_and_safety",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://github.com/python/cpython",
    "https://www.bbc.co.uk/news",
    "https://www.nytimes.com/section/technology",
    "https://docs.python.org/3/library/random.html",
    "https://www.reddit.com/r/AskHistorians/",
    "https://news.ycombinator.com/",
    "https://www.openstreetmap.org/",
    "https://maps.google.com/?q=coffee",
    "https://www.theguardian.com/science",
    "https://stackoverflow.com/questions/231767",
    "https://archive.org/details/texts",
    "https://twitter.com/nasa",
)
# Words for random throwaway domains ("fast-prize-hub.xyz").
DOMAIN_WORDS: tuple[str, ...] = (
    "best", "cheap", "fast", "free", "gift", "prize", "promo", "deal", "win", "bonus", "secure", "verify",
    "account", "wallet", "crypto", "coin", "boost", "likes", "follow", "star", "hub", "zone", "club", "top",
    "now", "easy", "smart", "mega", "super", "lucky",
)  # fmt: skip

CHAT_LINES: tuple[str, ...] = (
    "anyone else watching the match tonight?",
    "just finished the new season, no spoilers please",
    "Good morning everyone! Coffee number two already.",
    "Does anybody know a decent bike repair shop near the station?",
    "lol that's exactly what happened to me last week",
    "Thanks for the help yesterday, it worked!",
    "Can someone explain how the new settings page works?",
    "Happy birthday Sam!! Hope you have a great one",
    "I made the sourdough recipe from last week, turned out great.",
    "Is the meetup still on for Saturday?",
    "That's a really good point, I hadn't thought of it that way.",
    "Posting the photos from the hike later today.",
    "Which laptop would you recommend for a student on a budget?",
    "agreed, the last update broke my workflow too",
    "Quick reminder: the book club meets on Thursday at 7.",
    "I think the answer is in the FAQ, second section.",
    "haha yes, same here",
    "Who's up for a game later?",
    "Welcome to the channel! Feel free to introduce yourself.",
    "Does the library open on Sundays?",
    "Rain again... at least the garden is happy.",
    "The train was late again this morning.",
    "Just adopted a cat, she is already running the household.",
    "What's everyone reading at the moment?",
    "ok see you there",
    "Can you send me the notes from today's meeting?",
    "Sorry, I missed your message earlier. Call later?",
    "Running a bit late, start without me",
    "Great job on the presentation today!",
    "did you see the announcement about the new feature?",
)
ABUSIVE_LINES: tuple[str, ...] = (
    "You are a worthless idiot and everyone here knows it.",
    "Nobody wants you here. Log off and never come back.",
    "You're pathetic. Seriously, just disappear.",
    "I know where you live and you are going to regret this.",
    "Keep posting and see what happens to you.",
    "You are so stupid it hurts to read your posts.",
    "Shut up, loser. No one asked for your opinion.",
    "You'd better watch your back.",
    "Everyone is laughing at you, you absolute clown.",
    "I will make your life miserable, just wait.",
    "You're a disgusting waste of space.",
    "Answer me, coward. I'm not going away.",
    "You will be sorry you ever crossed me.",
    "Delete your account before I make you.",
    "What a useless moron you are.",
)
SCAM_LINES: tuple[str, ...] = (
    "Congratulations! You have been selected to receive a $500 gift card. Reply with your details to claim.",
    "I am a bank officer with an unclaimed inheritance of $4.5M. I need a trusted partner, 30% is yours.",
    "Crypto giveaway! Send 0.1 bitcoin and receive 1 bitcoin back instantly. Limited time!",
    "This is Support. Your account will be suspended in 24h. Verify your password here to keep it.",
    "You won our lottery draw! Pay a small processing fee to release your prize.",
    "Hi dear, I am stuck abroad and need you to buy gift cards, I will pay you back tomorrow.",
    "Double your money in 48 hours with our guaranteed investment plan. Send bitcoin now.",
    "Security alert: unusual login detected. Confirm your card number to restore access.",
    "Official giveaway: first 100 people to send $50 in gift cards get an iPhone.",
    "Hello friend, I need help to transfer funds from my late father's account. You keep 40%.",
)
# Phrases spam attacks wrap around sample texts.
SPAM_PHRASES: tuple[str, ...] = (
    "buy cheap followers",
    "free crypto",
    "click here",
    "make money fast",
    "100% free",
    "limited offer",
    "get 10k followers today",
    "work from home",
)
REPORT_REASONS: tuple[str, ...] = ("spam", "harassment", "scam", "impersonation", "hate", "nudity", "other")

_LEET = str.maketrans({"o": "0", "e": "3", "a": "4", "i": "1", "s": "5", "t": "7", "O": "0", "E": "3"})
_LEET_LIGHT = str.maketrans({"o": "0", "i": "1", "e": "3"})
# Latin letters and the Cyrillic look-alikes that a glance (and a naive substring rule) cannot tell apart.
_HOMOGLYPHS = str.maketrans(
    {"a": "\u0430", "o": "\u043e", "e": "\u0435", "c": "\u0441", "p": "\u0440", "x": "\u0445"}
)
_HOMOGLYPHS_LIGHT = str.maketrans({"a": "\u0430", "o": "\u043e"})
ZERO_WIDTH_SPACE = "\u200b"


@dataclass(frozen=True, slots=True)
class SampleText:
    """One text of the committed SpamAssassin sample."""

    text: str
    label: str  # "spam" or "ham"
    source: str  # "spamassassin/<folder>/<file>"


def load_sample() -> tuple[SampleText, ...]:
    """Read the committed SpamAssassin sample (``vigil/demo/data/spamassassin_sample.jsonl``).

    >>> texts = load_sample()
    >>> sorted({t.label for t in texts})
    ['ham', 'spam']
    """
    path = resources.files("vigil.demo").joinpath("data", "spamassassin_sample.jsonl")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            rows.append(SampleText(obj["text"], obj["label"], obj["source"]))
    return tuple(rows)


def leetspeak(text: str, heavy: bool = True) -> str:
    """Swap letters for digits: ``leetspeak("free followers")`` gives ``"fr33 f0ll0w3r5"``.

    >>> leetspeak("free followers")
    'fr33 f0ll0w3r5'
    """
    return text.translate(_LEET if heavy else _LEET_LIGHT)


def homoglyphs(text: str, heavy: bool = True) -> str:
    """Swap Latin letters for Cyrillic look-alikes (same glyph, different code point).

    >>> homoglyphs("cool") == "cool"
    False
    """
    return text.translate(_HOMOGLYPHS if heavy else _HOMOGLYPHS_LIGHT)


def zero_width(text: str, rng: random.Random) -> str:
    """Insert zero-width spaces inside words, so substring matches on the plain word fail."""
    words = text.split(" ")
    long_words = [i for i, word in enumerate(words) if len(word) > 3]
    if not long_words:
        return text
    # At least one insertion, or the "obfuscated" text would be the plain one.
    chosen = {rng.choice(long_words)} | {i for i in long_words if rng.random() < 0.6}
    for i in chosen:
        cut = rng.randrange(1, len(words[i]))
        words[i] = words[i][:cut] + ZERO_WIDTH_SPACE + words[i][cut:]
    return " ".join(words)


def spaced(text: str) -> str:
    """Space out letters, words apart by two spaces: ``spaced("send btc")`` gives ``"s e n d  b t c"``.

    >>> spaced("send btc")
    's e n d  b t c'
    """
    return "  ".join(" ".join(word) for word in text.split())


def obfuscate(text: str, rng: random.Random) -> str:
    """Apply one randomly chosen evasion (leetspeak, homoglyphs, zero-width spaces) to ``text``."""
    pick = rng.randrange(4)
    if pick == 0:
        return leetspeak(text, heavy=rng.random() < 0.5)
    if pick == 1:
        return homoglyphs(text, heavy=rng.random() < 0.5)
    if pick == 2:
        return zero_width(text, rng)
    return leetspeak(homoglyphs(text, heavy=False), heavy=False)


def random_domain(rng: random.Random) -> str:
    """A random-word throwaway domain such as ``"lucky-coin-hub.xyz"``."""
    words = rng.sample(DOMAIN_WORDS, rng.randint(2, 3))
    sep = "-" if rng.random() < 0.6 else ""
    number = str(rng.randrange(10, 99)) if rng.random() < 0.3 else ""
    return f"{sep.join(words)}{number}.{rng.choice(THROWAWAY_TLDS)}"


def first_sentence(text: str) -> str:
    """The text up to its first sentence end (the whole text if it has none)."""
    for i, ch in enumerate(text):
        if ch in ".!?" and i > 15 and (i + 1 == len(text) or text[i + 1] == " "):
            return text[: i + 1]
    return text
