"""Writes toxicity/data/demo/demo_comments.csv from templates (`python -m toxicity.data.demo.generate`).

Every comment is made here from the fragments below, so the file carries no third-party text.
The tags follow Jigsaw's: every tagged comment is also `toxic`, and `severe_toxic` comes with `obscene`.
"""

import random

import pandas as pd

from toxicity.core.tags import LABELS
from toxicity.data.demo import DEMO_CSV

TOPICS = [
    "the history section",
    "this template",
    "the infobox",
    "the lead paragraph",
    "the citation",
    "the football article",
    "the album page",
    "the river article",
    "the election results",
    "the references",
    "the photo caption",
    "the talk archive",
    "the spelling",
    "the map",
]
CLEAN = [
    "Thanks for fixing {t}, it reads much better now.",
    "I moved {t} to a new heading, please check it.",
    "Could you add a source for {t}? I could not find one.",
    "I reverted {t} because the date was wrong, see the talk page.",
    "Good catch on {t}. I agree with the change.",
    "Please discuss {t} here before editing it again.",
    "Welcome to the project! Feel free to ask about {t}.",
    "I think {t} needs a better reference, maybe the 2004 book.",
    "The wording of {t} is a bit unclear to me.",
    "I have updated {t} with the numbers from the official report.",
    "No worries, {t} was an honest mistake and it is fixed now.",
    "Is there a consensus on {t}? I saw two different versions.",
]
INSULTS = ["idiot", "moron", "loser", "clown", "fool", "imbecile"]
CURSES = ["crap", "damn", "shit", "bullshit", "hell"]
GROUPS = ["people of your religion", "your whole ethnic group", "foreigners like you", "your kind"]
TOXIC_TEMPLATES = {
    ("toxic",): [
        "Your edit to {t} is stupid and pointless.",
        "Stop ruining {t}, nobody wants your rubbish here.",
        "What a useless change to {t}, go away.",
    ],
    ("toxic", "insult"): [
        "You are a complete {i}, leave {t} alone.",
        "Only an {i} would write {t} like that.",
        "Listen, you {i}, {t} was fine before you came.",
    ],
    ("toxic", "obscene"): [
        "This {c} edit to {t} is {c}.",
        "What the {c} did you do to {t}?",
        "{t} is full of {c} now.",
    ],
    ("toxic", "obscene", "insult"): [
        "You {c} {i}, keep your hands off {t}.",
        "Shut up about {t}, you {c} {i}.",
    ],
    ("toxic", "severe_toxic", "obscene", "insult"): [
        "You {c} {c} {i}, I hope you choke on {t}, you worthless {c} {i}.",
        "{c} you and {c} your edits to {t}, you pathetic {c} {i}!!!",
    ],
    ("toxic", "threat"): [
        "Touch {t} again and I will find you and hurt you.",
        "I know where you live, revert {t} and you will regret it.",
    ],
    ("toxic", "identity_hate"): [
        "{g} should not be allowed to edit {t}.",
        "Typical of {g}, always wrecking {t}.",
    ],
    ("toxic", "insult", "identity_hate"): ["{g} are all {i}s, and your edit to {t} proves it."],
}


def make_demo_frame(n_clean: int = 480, n_toxic: int = 320, seed: int = 7) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = [(rng.choice(CLEAN).format(t=rng.choice(TOPICS)), ()) for _ in range(n_clean)]
    tag_sets = list(TOXIC_TEMPLATES)
    for k in range(n_toxic):
        tags = tag_sets[k % len(tag_sets)]
        text = rng.choice(TOXIC_TEMPLATES[tags]).format(
            t=rng.choice(TOPICS), i=rng.choice(INSULTS), c=rng.choice(CURSES), g=rng.choice(GROUPS)
        )
        rows.append((text[0].upper() + text[1:], tags))
    rng.shuffle(rows)
    frame = pd.DataFrame(
        {"id": [f"demo{k:05d}" for k in range(len(rows))], "comment_text": [text for text, _ in rows]}
    )
    for label in LABELS:
        frame[label] = [int(label in tags) for _, tags in rows]
    return frame


if __name__ == "__main__":
    frame = make_demo_frame()
    frame.to_csv(DEMO_CSV, index=False)
    print(f"wrote {len(frame)} rows to {DEMO_CSV}")
    print(frame[list(LABELS)].sum().to_string())
