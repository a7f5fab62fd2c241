"""Offline language identification on short comments: which library the Perspective route uses to fill
`detectedLanguages` and to refuse a comment that is not English.

    python -m benchmarks.language_id [--per-source 1000] [--max-chars 100]

What matters most is how often a real short English comment would be wrongly refused as not English
(short TweetEval and Jigsaw texts from shared/data, up to --max-chars characters), then how well short
comments in other languages are recognised (benchmarks/fixtures/short_comments_multilingual.csv, written
for this benchmark). Each candidate runs in its own subprocess, so that its load time and memory are its
own; speed is single-threaded, one text at a time, as the server calls it.

Four refusal rules are counted (RULES): English not the most likely language; not among the three
most likely; not among them while the most likely language has a confidence of at least 0.5; not among
them while the three together have a confidence of at least 0.5.
Writes benchmarks/results/language_id-<YYYY-MM-DD>-<machine>.json and .md (benchmarks.common).
"""

import argparse
import csv
import gzip
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import FIXTURES, RESULTS, ROOT, SHARED_DATA, Run, arguments, table

FIXTURE = FIXTURES / "short_comments_multilingual.csv"
TOP = 3


# --------------------------------------------------------------------------------------- candidates
def py3langid_ranker():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return lambda text: identifier.rank(text)[:TOP]


def lingua_ranker(low_accuracy: bool):
    from lingua import LanguageDetectorBuilder

    builder = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models()
    detector = (builder.with_low_accuracy_mode() if low_accuracy else builder).build()

    def rank(text: str) -> list[str]:
        values = detector.compute_language_confidence_values(text)[:TOP]
        return [(value.language.iso_code_639_1.name.lower(), value.value) for value in values if value.value]

    return rank


def langdetect_ranker():
    from langdetect import DetectorFactory, detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0  # otherwise its answers vary from run to run

    def rank(text: str) -> list[str]:
        try:
            return [(found.lang.split("-")[0], found.prob) for found in detect_langs(text)[:TOP]]
        except LangDetectException:  # no letters
            return []

    return rank


def pycld2_ranker():
    import pycld2

    def rank(text: str) -> list[str]:
        try:
            reliable, _, found = pycld2.detect(text)
        except pycld2.error:
            return []
        # its percentages are of the text's bytes; an unreliable answer counts as no confidence
        return [
            (code.split("-")[0], percent / 100 if reliable else 0.0)
            for _, code, percent, _ in found
            if code != "un" and percent > 0
        ]

    return rank


CANDIDATES = {
    "py3langid": py3langid_ranker,
    "lingua (high accuracy)": lambda: lingua_ranker(low_accuracy=False),
    "lingua (low accuracy)": lambda: lingua_ranker(low_accuracy=True),
    "langdetect": langdetect_ranker,
    "pycld2": pycld2_ranker,
}


# --------------------------------------------------------------------------------------------- texts
def short_english(per_source: int, max_chars: int) -> dict[str, list[str]]:
    """Real short English comments: TweetEval (offensive and hate test tweets) and Jigsaw (train)."""
    tweets = []
    for task in ("tweeteval_offensive", "tweeteval_hate"):
        with gzip.open(SHARED_DATA / task / "test_text.txt.gz", "rt", encoding="utf-8") as file:
            tweets += [line.strip() for line in file]
    with gzip.open(SHARED_DATA / "jigsaw_sample" / "train.csv.gz", "rt", encoding="utf-8") as file:
        wiki = [row["comment_text"].strip() for row in csv.DictReader(file)]
    sample = random.Random(0)
    picked = {}
    for name, texts in (("tweeteval", tweets), ("jigsaw", wiki)):
        short = sorted({text for text in texts if 0 < len(text) <= max_chars})
        picked[name] = sample.sample(short, min(per_source, len(short)))
    return picked


def other_languages() -> list[tuple[str, str]]:
    with open(FIXTURE, encoding="utf-8") as file:
        return [(row["language"], row["text"]) for row in csv.DictReader(file)]


# -------------------------------------------------------------------------------------------- measure
# refused as not English when...
RULES = {
    "top1": lambda found: not found or found[0][0] != "en",  # English is not the most likely language
    "top3": lambda found: bool(found) and "en" not in languages(found),  # nor among the three most likely
    # nor among the three most likely, and the most likely has a confidence of at least 0.5
    "top3_confident": lambda found: bool(found) and "en" not in languages(found) and found[0][1] >= 0.5,
    # nor among the three most likely, and those three together have a confidence of at least 0.5
    "top3_sure": lambda found: "en" not in languages(found) and sum(p for _, p in found) >= 0.5,
}


def languages(found: list[tuple[str, float]]) -> list[str]:
    return [language for language, _ in found]


def measure(name: str, english: dict[str, list[str]], others: list[tuple[str, str]]) -> dict:
    started = time.perf_counter()
    rank = CANDIDATES[name]()
    load_s = time.perf_counter() - started
    result = {"load_s": round(load_s, 2)}
    seconds, count = 0.0, 0
    for source, texts in english.items():
        ranked = []
        for text in texts:
            started = time.perf_counter()
            ranked.append(rank(text))
            seconds += time.perf_counter() - started
        count += len(texts)
        result[f"english_{source}"] = {"texts": len(texts)} | {
            f"refused_{rule}": rate(sum(map(refused, ranked)), len(texts)) for rule, refused in RULES.items()
        }
        for rule in ("top3_confident", "top3_sure"):
            result[f"english_{source}"][f"refused_{rule}_examples"] = [
                text for text, found in zip(texts, ranked) if RULES[rule](found)
            ][:8]
    ranked = []
    for _, text in others:
        started = time.perf_counter()
        ranked.append(rank(text))
        seconds += time.perf_counter() - started
    count += len(others)
    top1 = [languages(found)[:1] for found in ranked]
    result["other_languages"] = {
        "texts": len(others),
        "recognised_top1": rate(sum(found == [lang] for (lang, _), found in zip(others, top1)), len(others)),
    } | {f"refused_{rule}": rate(sum(map(refused, ranked)), len(others)) for rule, refused in RULES.items()}
    result["other_languages"]["misread_top1"] = {
        text: found for (lang, text), found in zip(others, top1) if found != [lang]
    }
    result["ms_per_text"] = round(1000 * seconds / count, 3)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else float("nan")


def run_in_subprocess(name: str, options: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "benchmarks.language_id", "--only", name]
    command += ["--per-source", str(options.per_source), "--max-chars", str(options.max_chars)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout)


# ---------------------------------------------------------------------------------------------- report
HEADER = [
    "library",
    "English refused: top-1",
    "top-3",
    "top-3, confident",
    "top-3, sure",
    "other languages recognised (top-1)",
    "other languages refused: top-1",
    "top-3",
    "top-3, confident",
    "top-3, sure",
    "ms per text",
    "load s",
    "peak RSS MB",
]


def markdown(results: dict, setup: dict, date: str) -> str:
    cells = []
    for name, result in results.items():
        if "error" in result:
            cells.append([name, f"failed: {result['error']}", *[""] * 11])
            continue
        tweets, wiki = result["english_tweeteval"], result["english_jigsaw"]
        others = result["other_languages"]
        english = [f"{tweets[f'refused_{rule}']:.1%} / {wiki[f'refused_{rule}']:.1%}" for rule in RULES]
        refused = [f"{others[f'refused_{rule}']:.1%}" for rule in RULES]
        cells.append(
            [
                name,
                *english,
                f"{others['recognised_top1']:.1%}",
                *refused,
                result["ms_per_text"],
                result["load_s"],
                result["peak_rss_mb"],
            ]
        )
    lines = [
        f"# Language identification on short comments ({date})",
        "",
        (
            f"English: {setup['english']['tweeteval']} TweetEval and {setup['english']['jigsaw']} Jigsaw "
            f"texts of at most {setup['max_chars']} characters (shared/data); "
            f"other languages: {setup['others']} short comments in 11 languages "
            "(benchmarks/fixtures/short_comments_multilingual.csv)."
        ),
        "",
        *table(HEADER, cells, align="lllllrrrrrrrr"),
    ]
    lines += [
        "",
        (
            "English columns: TweetEval / Jigsaw. Rules, refused as not English when English is: top-1, not "
            "the most likely language; top-3, not among the three most likely (no answer at all is not a "
            "refusal); top-3 confident, not among the three most likely while the most likely has a "
            "confidence of at least 0.5 (pycld2: its share of the text when it calls its answer reliable, "
            "else 0); top-3 sure, not among the three most likely while those three together have a "
            "confidence of at least 0.5."
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = arguments("language_id", __doc__)
    parser.add_argument("--per-source", type=int, default=1000)
    parser.add_argument("--max-chars", type=int, default=100)
    parser.add_argument("--only", choices=list(CANDIDATES), help=argparse.SUPPRESS)  # one, in a subprocess
    parser.add_argument("--output", type=Path, default=RESULTS)
    options = parser.parse_args(argv)
    english, others = short_english(options.per_source, options.max_chars), other_languages()
    if options.only:
        print(json.dumps(measure(options.only, english, others), ensure_ascii=False))
        return
    run = Run.start("language_id", argv=argv)
    setup = {
        "english": {source: len(texts) for source, texts in english.items()},
        "max_chars": options.max_chars,
        "others": len(others),
    }
    results = {}
    for name in CANDIDATES:
        results[name] = run_in_subprocess(name, options)
        print(name, json.dumps({k: v for k, v in results[name].items() if "misread" not in str(k)})[:400])
    report = markdown(results, setup, run.date)
    print(f"Wrote {run.write({'setup': setup, 'candidates': results}, report, out=options.output)} and .md")


if __name__ == "__main__":
    main()
