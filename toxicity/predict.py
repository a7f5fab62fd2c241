"""Score comments: ToxicityClassifier (PyTorch), OnnxToxicityClassifier (onnxruntime) and a batch CLI.

    clf = ToxicityClassifier.from_checkpoint("checkpoints/best-checkpoint.ckpt")
    clf.predict(["you are an idiot", "thanks for the fix"])   # DataFrame of per-tag probabilities
    clf.predict("thanks!")                                   # {tag: probability}
    clf.predict(texts, threshold="tuned")                    # 0/1 with the thresholds tuned on validation

    python -m toxicity.predict --ckpt checkpoints/best-checkpoint.ckpt --input comments.csv \\
        --text-column comment_text --output scores.csv [--id-column id] [--threshold 0.5|tuned]

The CLI reads CSV, TSV (optionally compressed) or Parquet `--chunk-rows` rows at a time, so a file of
any size scores in flat memory. It writes the id column (when there is one), one probability column
per tag and, with --threshold, one 0/1 column `<tag>_pred` per tag. Missing or blank texts are scored
as the empty string and counted in the summary. The output appears only once it is complete: a crash,
Ctrl-C or SIGTERM leaves no partial file (SIGKILL can leave a hidden `.*.partial` file beside it).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from toxicity.data import TEXT_COLUMN, DataError, PadToLongest, table_format, tokenize_texts
from toxicity.files import atomic_output, refuse_to_overwrite
from toxicity.model import ToxicCommentTagger
from toxicity.thresholds import load_thresholds

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 128
CHUNK_SIZE = 4096  # texts tokenized and sorted at a time: memory stays flat for any input length
DEFAULT_CHUNK_ROWS = 10_000  # rows the CLI reads from the input file at a time

# an ONNX export folder (written by `python -m toxicity.export --format onnx`)
ONNX_FP32, ONNX_INT8, ONNX_METADATA = "model.onnx", "model.int8.onnx", "toxicity.json"


class CheckpointError(ValueError):
    """A checkpoint that does not exist or was not written by toxicity.fit."""


def thresholds_path(checkpoint: str | Path) -> Path:
    """Where the per-tag thresholds tuned on validation for this checkpoint are kept (next to it)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".thresholds.json")


def read_thresholds(checkpoint: str | Path) -> dict[str, float] | None:
    """The tuned thresholds saved next to the checkpoint, or None when absent or older than the checkpoint.

    A newer checkpoint means a later run replaced it: thresholds tuned for the old model do not apply.
    """
    path = thresholds_path(checkpoint)
    if not path.is_file():
        return None
    if path.stat().st_mtime < Path(checkpoint).stat().st_mtime:
        log.warning("%s is older than %s (tuned for a model that a later run replaced); ignoring it. "
                    "Run `python -m toxicity.evaluate --split val` to tune again.", path, checkpoint)
        return None
    return load_thresholds(path)


def read_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found. Train one with `python -m toxicity.fit` "
                              "(it writes checkpoints/best-checkpoint.ckpt).")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({error}).") from error
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    if "encoder_config" not in hparams or "labels" not in hparams or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a toxicity checkpoint (no tagger hyper-parameters). "
                              "Give a checkpoint written by `python -m toxicity.fit`.")
    return checkpoint


def tagger_from_checkpoint(checkpoint: dict) -> ToxicCommentTagger:
    """The tagger from a checkpoint already read by `read_checkpoint` (no second read, no download)."""
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}  # LightningCLI's
    model = ToxicCommentTagger(**hparams)
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    return model


def check_texts(texts: Sequence) -> None:
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{position}] is {type(text).__name__}, not str; give strings only "
                            "(an empty string is fine).")


class BatchScorer:
    """The scoring loop shared by the backends.

    Tokenizes CHUNK_SIZE texts at a time, sorts them by length, pads each batch to its longest text and
    asks the backend (`_probabilities`) for one batch of probabilities at a time; results come back in
    the order of the input.
    """

    def __init__(self, tokenizer, labels: Sequence[str], max_length: int = DEFAULT_MAX_LENGTH,
                 thresholds: dict[str, float] | None = None, batch_size: int = 64):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.max_length = max_length
        self.thresholds = thresholds
        self.batch_size = batch_size
        self.collate = PadToLongest(tokenizer.pad_token_id or 0)

    def _probabilities(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, texts: str | Sequence[str], progress: bool | None = None) -> np.ndarray:
        """An (n_texts, n_tags) float32 array of probabilities, in the order of `texts`."""
        texts = [texts] if isinstance(texts, str) else texts if isinstance(texts, list) else list(texts)
        check_texts(texts)
        probs = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        show = len(texts) > 10 * self.batch_size if progress is None else progress
        with tqdm(total=len(texts), disable=not show, unit="comment", desc="scoring") as bar:
            for start in range(0, len(texts), CHUNK_SIZE):
                chunk = texts[start:start + CHUNK_SIZE]
                probs[start:start + len(chunk)] = self._score_chunk(chunk)
                bar.update(len(chunk))
        return probs

    def _score_chunk(self, texts: list[str]) -> np.ndarray:
        ids = tokenize_texts(self.tokenizer, texts, self.max_length)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        out = np.empty((len(ids), len(self.labels)), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            batch = self.collate([{"input_ids": ids[i], "index": i} for i in rows])
            out[rows] = self._probabilities(batch["input_ids"], batch["attention_mask"])
        return out

    def predict(self, texts: str | Sequence[str], threshold: float | str | None = None,
                progress: bool | None = None) -> pd.DataFrame | dict[str, float]:
        """Per-tag probabilities (or 0/1 with a float threshold or "tuned") for one text or a list."""
        single = isinstance(texts, str)
        probs = self.predict_proba(texts, progress)
        values = probs if threshold is None else (probs >= self.thresholds_for(threshold)).astype(np.int64)
        if single:
            return {label: values[0, k].item() for k, label in enumerate(self.labels)}
        return pd.DataFrame(values, columns=self.labels)

    def thresholds_for(self, threshold: float | str) -> np.ndarray:
        """One threshold per tag: `threshold` for all, or the tuned ones for "tuned" (0.5 where none)."""
        if threshold == "tuned":
            if self.thresholds is None:
                raise ValueError("No tuned thresholds for this checkpoint: run `python -m toxicity.evaluate` "
                                 "on its validation split first, or pass a number such as threshold=0.5.")
            return np.array([self.thresholds.get(label, 0.5) for label in self.labels], dtype=np.float32)
        if isinstance(threshold, str):
            raise ValueError(f"threshold must be a number or 'tuned', got {threshold!r}.")
        return np.full(len(self.labels), float(threshold), dtype=np.float32)


class ToxicityClassifier(BatchScorer):
    """Scores comments with a trained ToxicCommentTagger, in length-sorted batches padded per batch."""

    def __init__(self, model: ToxicCommentTagger, max_length: int = DEFAULT_MAX_LENGTH,
                 thresholds: dict[str, float] | None = None, batch_size: int = 64):
        self.model = model.eval()
        super().__init__(model.tokenizer, model.labels, max_length, thresholds, batch_size)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None,
                        batch_size: int = 64) -> ToxicityClassifier:
        """Loads offline: the checkpoint carries the encoder config, tokenizer, tags and max_length."""
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        checkpoint = read_checkpoint(path, map_location=device)  # read once: it can be hundreds of MB
        max_length = checkpoint.get("datamodule_hyper_parameters", {}).get("max_length", DEFAULT_MAX_LENGTH)
        model = tagger_from_checkpoint(checkpoint).to(device)
        del checkpoint
        thresholds = read_thresholds(path)
        log.info("Loaded %s: tags %s, max_length %d, %s.", path, model.labels, max_length,
                 "tuned thresholds" if thresholds else "no tuned thresholds")
        return cls(model, max_length, thresholds, batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def _probabilities(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        logits = self.model(input_ids.to(self.device), attention_mask.to(self.device))
        return torch.sigmoid(logits.float()).cpu().numpy()


class OnnxToxicityClassifier(BatchScorer):
    """The same scoring through onnxruntime, from a folder written by `toxicity.export --format onnx`.

    Same tokenizer, truncation, length sorting and padding as ToxicityClassifier; `int8=True` loads the
    dynamically quantized model (written with --int8).
    """

    def __init__(self, session, tokenizer, labels: Sequence[str], max_length: int = DEFAULT_MAX_LENGTH,
                 thresholds: dict[str, float] | None = None, batch_size: int = 64):
        self.session = session
        super().__init__(tokenizer, labels, max_length, thresholds, batch_size)

    @classmethod
    def from_folder(cls, folder: str | Path, int8: bool = False, batch_size: int = 64,
                    threads: int | None = None) -> OnnxToxicityClassifier:
        import onnxruntime
        from transformers import AutoTokenizer

        folder = Path(folder)
        model_file = folder / (ONNX_INT8 if int8 else ONNX_FP32)
        if not (folder / ONNX_METADATA).is_file() or not model_file.is_file():
            raise CheckpointError(f"{folder}: no {ONNX_METADATA} and {model_file.name} in it. Export with "
                                  f"`python -m toxicity.export --format onnx{' --int8' if int8 else ''}`.")
        metadata = json.loads((folder / ONNX_METADATA).read_text())
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        return cls(session, AutoTokenizer.from_pretrained(folder), metadata["labels"], metadata["max_length"],
                   metadata.get("thresholds"), batch_size)

    def _probabilities(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        feeds = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        return self.session.run(["probabilities"], feeds)[0]


# ------------------------------------------------------------------------------------------ scoring files
def table_columns(path: Path) -> list[str]:
    """The column names of a table file, read from its header (or Parquet schema) only."""
    if not path.is_file():
        raise DataError(f"{path}: file not found.")
    try:
        if table_format(path.name) == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).schema_arrow.names
        return pd.read_csv(path, sep="\t" if table_format(path.name) == "tsv" else ",", nrows=0).columns.tolist()
    except Exception as error:  # pandas and pyarrow raise many kinds for a file that is not a table
        raise DataError(f"{path}: cannot be read as a table ({error}). "
                        "Give a CSV, TSV or Parquet file.") from error


def check_columns(path: Path, text_column: str, id_column: str | None) -> str | None:
    """Raises unless the table has the columns; returns the id column to keep (`id` if present by default)."""
    columns = table_columns(path)
    id_column = id_column or ("id" if "id" in columns else None)
    missing = [c for c in (text_column, id_column) if c is not None and c not in columns]
    if missing:
        raise DataError(f"{path}: no column(s) {missing}; it has {columns}. "
                        "Name the text column with --text-column (and the id column with --id-column).")
    return id_column


def output_separator(path: Path) -> str:
    if path.suffix.lower() not in (".csv", ".tsv"):
        raise DataError(f"{path}: scores are written as CSV or TSV; give an output ending in .csv or .tsv.")
    return "\t" if path.suffix.lower() == ".tsv" else ","


def iter_table(path: Path, columns: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """`columns` of the table, `chunk_rows` rows at a time (CSV/TSV read as strings: an id 007 stays 007)."""
    if table_format(path.name) == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns):
            yield batch.to_pandas()
        return
    yield from pd.read_csv(path, sep="\t" if table_format(path.name) == "tsv" else ",", usecols=columns,
                           dtype=str, keep_default_na=False, na_values=[""], chunksize=chunk_rows)


def clean_texts(column: pd.Series) -> tuple[list[str], int]:
    """The texts with missing values as "", and how many were missing or blank."""
    missing = column.isna().to_numpy()
    texts = ["" if gone else str(text) for text, gone in zip(column.tolist(), missing)]
    return texts, sum(not text.strip() for text in texts)


@dataclass(frozen=True)
class ScoringSummary:
    rows: int
    blank_texts: int
    seconds: float

    @property
    def comments_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


def score_file(scorer: BatchScorer, input_path: str | Path, output_path: str | Path,
               text_column: str = TEXT_COLUMN, id_column: str | None = None,
               threshold: float | str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
               overwrite: bool = False, progress: bool = True) -> ScoringSummary:
    """Scores every row of a table into a CSV (or TSV), `chunk_rows` rows at a time.

    Writes `id_column` (default: `id` when the file has one) first, then one probability column per tag,
    then `<tag>_pred` 0/1 columns when `threshold` is given. The output appears only when complete.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}.")
    refuse_to_overwrite(output_path, input_path, overwrite=overwrite)
    sep = output_separator(output_path)
    id_column = check_columns(input_path, text_column, id_column)
    cutoffs = None if threshold is None else scorer.thresholds_for(threshold)  # fails before any work
    tags, pred_columns = scorer.labels, [f"{tag}_pred" for tag in scorer.labels]
    header = ([id_column] if id_column else []) + tags + (pred_columns if cutoffs is not None else [])
    rows = blank = 0
    started = time.perf_counter()
    with atomic_output(output_path) as partial, \
            tqdm(unit="comment", desc="scoring", disable=not progress) as bar:
        pd.DataFrame(columns=header).to_csv(partial, sep=sep, index=False)
        for chunk in iter_table(input_path, [c for c in (id_column, text_column) if c], chunk_rows):
            texts, chunk_blank = clean_texts(chunk[text_column])
            probs = scorer.predict_proba(texts, progress=False)
            scores = pd.DataFrame(probs, columns=tags)
            if cutoffs is not None:
                scores[pred_columns] = (probs >= cutoffs).astype(np.int64)
            if id_column:
                scores.insert(0, id_column, chunk[id_column].to_numpy())
            scores.to_csv(partial, sep=sep, index=False, header=False, mode="a")
            rows, blank = rows + len(texts), blank + chunk_blank
            bar.update(len(texts))
    if blank:
        log.warning("%s: %d row(s) with a missing or blank '%s' were scored as empty strings.",
                    input_path, blank, text_column)
    return ScoringSummary(rows, blank, time.perf_counter() - started)


# -------------------------------------------------------------------------------------------------- CLI
def _threshold(value: str) -> float | str:
    if value == "tuned":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number such as 0.5, or 'tuned'; got {value!r}") from None


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1; got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m toxicity.predict",
                                     description="Score every comment of a CSV/TSV/Parquet file.")
    parser.add_argument("--ckpt", default="checkpoints/best-checkpoint.ckpt", help="from toxicity.fit")
    parser.add_argument("--input", required=True, type=Path, help="CSV, TSV (maybe .gz) or Parquet file")
    parser.add_argument("--output", required=True, type=Path, help="scores CSV (TSV if it ends in .tsv)")
    parser.add_argument("--text-column", default=TEXT_COLUMN)
    parser.add_argument("--id-column", default=None, help="kept in the output (default: `id` if present)")
    parser.add_argument("--threshold", type=_threshold, default=None,
                        help="also write 0/1 <tag>_pred columns: a number, or 'tuned' (the checkpoint's "
                             "thresholds from `python -m toxicity.evaluate`)")
    parser.add_argument("--batch-size", type=_positive, default=64)
    parser.add_argument("--chunk-rows", type=_positive, default=DEFAULT_CHUNK_ROWS,
                        help="rows read from the input at a time (memory stays flat)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return parser


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C, so the partial output is removed


def main(argv: Sequence[str] | None = None) -> ScoringSummary:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        # the cheap checks first, before the model loads
        refuse_to_overwrite(args.output, args.input, overwrite=args.overwrite)
        output_separator(args.output)
        check_columns(args.input, args.text_column, args.id_column)
        classifier = ToxicityClassifier.from_checkpoint(args.ckpt, args.device, args.batch_size)
        summary = score_file(classifier, args.input, args.output, args.text_column, args.id_column,
                             args.threshold, args.chunk_rows, args.overwrite)
    except (FileExistsError, ValueError) as error:  # CheckpointError and DataError are ValueErrors
        raise SystemExit(f"error: {error}") from None
    blank = (f"; {summary.blank_texts} missing or blank '{args.text_column}' scored as empty strings"
             if summary.blank_texts else "")
    print(f"Scored {summary.rows} comments in {summary.seconds:.1f} s "
          f"({summary.comments_per_second:.1f} comments/s){blank}. Wrote {args.output}.")
    return summary


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    main()
