"""A checkpoint as a Hugging Face BertForSequenceClassification folder, checked through the pipeline.

Hugging Face (pooling="pooler" with a BERT encoder only): a folder that
`AutoModelForSequenceClassification.from_pretrained` loads as BertForSequenceClassification with
problem_type="multi_label_classification", so `pipeline("text-classification", model=folder,
top_k=None, truncation=True)` applies the sigmoid itself and returns our probabilities (checked to 1e-5
after writing). The tokenizer is saved with model_max_length = the checkpoint's max_length, so
`truncation=True` cuts texts where ToxicityClassifier does.

Why only pooling="pooler": a stock BertForSequenceClassification computes
classifier(dropout(pooler(hidden)[CLS])), where the pooler is dense + tanh. That is exactly our
encoder → pooler_output → dropout → head, so the weights copy over unchanged. Our other poolings have no
stock equivalent: `mean` (masked mean of all tokens) is not computed by any BERT head, and `cls` (the raw
first hidden state) always goes through the pooler's tanh in BertForSequenceClassification. Faking them
(a custom architecture needing trust_remote_code, or a near-identity pooler) would either not load with
plain transformers offline or give scores that only approximately match, so those checkpoints raise
ExportError; export them to ONNX, or train with --model.pooling pooler when a Hub-style folder is needed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from toxicity.core.files import refuse_to_overwrite
from toxicity.exporters.checks import SAMPLE_TEXTS, ExportError, checked_difference, encoder_classifier

log = logging.getLogger(__name__)


HF_TOLERANCE = 1e-5


# ------------------------------------------------------------------------------------------ Hugging Face
def export_huggingface(ckpt_path: str | Path, out: str | Path, overwrite: bool = False) -> dict:
    """Writes a BertForSequenceClassification folder (config, weights, tokenizer) into `out`.

    Returns the parity check {"max_abs_diff": ...} of the text-classification pipeline against PyTorch.
    """
    from transformers import BertForSequenceClassification

    out = Path(out)
    refuse_to_overwrite(out / "config.json", ckpt_path, overwrite=overwrite)
    classifier = encoder_classifier(ckpt_path)
    tagger = classifier.model
    _check_exportable_to_huggingface(ckpt_path, tagger)
    config = copy.deepcopy(tagger.encoder.config)
    config.update(
        {
            "architectures": ["BertForSequenceClassification"],
            "problem_type": "multi_label_classification",
            "id2label": dict(enumerate(classifier.tags)),
            "label2id": {tag: k for k, tag in enumerate(classifier.tags)},
            "classifier_dropout": tagger.hparams.dropout,
        }
    )
    model = BertForSequenceClassification(config).eval()
    model.bert.load_state_dict(tagger.encoder.state_dict())
    model.classifier.load_state_dict(tagger.head.state_dict())
    model.save_pretrained(out)
    classifier.tokenizer.model_max_length = classifier.max_length
    classifier.tokenizer.save_pretrained(out)
    pipeline_probs = pipeline_probabilities(out, SAMPLE_TEXTS, classifier.tags)
    check = {
        "max_abs_diff": checked_difference(
            out, pipeline_probs, classifier.predict_proba(SAMPLE_TEXTS), HF_TOLERANCE
        )
    }
    log.info("Hugging Face export in %s: %s", out, check)
    return check


def _check_exportable_to_huggingface(ckpt_path: str | Path, tagger) -> None:
    pooling, model_type = tagger.hparams.pooling, tagger.encoder.config.model_type
    if pooling != "pooler" or model_type != "bert":
        raise ExportError(
            f"{ckpt_path}: pooling='{pooling}' with a '{model_type}' encoder has no exact stock "
            "transformers equivalent; only pooling='pooler' with a BERT encoder maps onto "
            "BertForSequenceClassification (see `python -m toxicity.export --help`). Export it with "
            "--format onnx instead, or train with --model.pooling pooler."
        )
    if tagger.hparams.get("truncation", "head") != "head":
        raise ExportError(
            f"{ckpt_path}: trained with --data.truncation {tagger.hparams.truncation}, "
            "which the transformers pipeline cannot do (it keeps the head of a long text); "
            "export it with --format onnx instead."
        )


def pipeline_probabilities(folder: str | Path, texts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Probabilities of the transformers text-classification pipeline on an exported folder, tags in order."""
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(folder), top_k=None, device="cpu")
    results = classify(list(texts), truncation=True)
    return np.array(
        [[{r["label"]: r["score"] for r in result}[tag] for tag in labels] for result in results],
        dtype=np.float32,
    )
