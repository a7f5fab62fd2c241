"""TextToTextTagger: the T5 recipe. The model writes a comment's tags as words ("toxic obscene insult").

Input: `toxic comment classification: <comment>` (the prefix is inserted at the token level, so the
data module and the scorers are shared with the encoder family). Target: the names of the row's tags in
schema order joined by spaces, or `not_toxic` (toxicity.models.tag_codec.TagStringCodec). Training is
teacher-forced cross-entropy on the target tokens; AdamW with linear warmup and decay, as the encoder
tagger.

Backbones (`architecture`):
- `seq2seq`: any pretrained sequence-to-sequence model by name, e.g. `t5-small` (needs the hub).
- `bert2bert`: an encoder-decoder warm-started from one BERT-style encoder for both halves (Rothe et al.
  2020): the decoder's self-attention and feed-forward layers and both embeddings are pretrained, its
  cross-attention is new. With the default backbone this is the shipped MiniLM: pretrained, offline.
- `t5`: the T5 architecture built from a config with random weights and the backbone's tokenizer.
`pretrained: false` gives any of them random weights (the from-scratch comparison).

Probability per tag (what AUROC, tuned thresholds, calibration and the report need): the model
generates greedily; at every step where a new word can start (the start, and after each complete tag
word, up to the end-of-sequence step), the decoder gives a probability to the first token of every tag
word. A tag's probability is the largest of these over the steps. Tags are written in schema order, so
a tag the model would write is offered at some step; one it would not write gets the small mass the
decoder leaves it at each step. It is a score, not a calibrated marginal: it ranks well (AUROC), and
thresholds tuned on validation turn it into decisions.
"""

from __future__ import annotations

from typing import Literal

import torch

from toxicity.core.backbone import DEFAULT_BACKBONE, checked_backbone_path, load_config
from toxicity.core.errors import DataError
from toxicity.core.tags import LABELS
from toxicity.data.tokenize import DEFAULT_MAX_LENGTH, Truncation, head_and_tail, special_tokens_around
from toxicity.models.base import TaggerModule
from toxicity.models.shapes import check_max_length, config_from_dict
from toxicity.models.tag_codec import NONE_WORD, DecodedTags, TagStringCodec

PREFIX = "toxic comment classification: "
Architecture = Literal["seq2seq", "bert2bert", "t5"]
# t5-small's shape (Raffel et al. 2020), used for `architecture: t5` without a model_config
T5_SMALL_SHAPE = {"d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6, "num_heads": 8}


def build_seq2seq(
    backbone: str, architecture: Architecture, pretrained: bool, model_config: dict | None, tokenizer
):
    """The sequence-to-sequence model, with its special token ids set for generation and loss."""
    from transformers import AutoModelForSeq2SeqLM, EncoderDecoderModel, T5Config

    if (
        model_config is not None
    ):  # a saved checkpoint, or a config given in full: random weights of that shape
        config = config_from_dict(model_config)
        model = (
            EncoderDecoderModel(config)
            if config.model_type == "encoder-decoder"
            else AutoModelForSeq2SeqLM.from_config(config, trust_remote_code=False)
        )
    elif architecture == "bert2bert":
        model = bert2bert(backbone, pretrained)
    elif architecture == "t5":
        model = AutoModelForSeq2SeqLM.from_config(T5Config(vocab_size=len(tokenizer), **T5_SMALL_SHAPE))
    elif pretrained:
        model = AutoModelForSeq2SeqLM.from_pretrained(
            checked_backbone_path(backbone), trust_remote_code=False
        )
    else:
        model = AutoModelForSeq2SeqLM.from_config(load_config(backbone), trust_remote_code=False)
    set_special_tokens(model.config, tokenizer)
    return model


def bert2bert(backbone: str, pretrained: bool):
    from transformers import EncoderDecoderConfig, EncoderDecoderModel

    if pretrained:
        folder = checked_backbone_path(backbone)
        return EncoderDecoderModel.from_encoder_decoder_pretrained(
            folder, folder, encoder_trust_remote_code=False, decoder_trust_remote_code=False
        )
    encoder = load_config(backbone)
    decoder = load_config(backbone, is_decoder=True, add_cross_attention=True)
    return EncoderDecoderModel(EncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder))


def set_special_tokens(config, tokenizer) -> None:
    """End and padding ids from the tokenizer; the decoder starts from padding (T5's way) or from [CLS]
    (a BERT decoder, as in the BERT2BERT warm start)."""
    config.eos_token_id = (
        tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    )
    config.pad_token_id = tokenizer.pad_token_id
    if config.model_type == "encoder-decoder":
        config.decoder_start_token_id = tokenizer.cls_token_id
        config.vocab_size = config.decoder.vocab_size
    else:
        config.decoder_start_token_id = tokenizer.pad_token_id


class TagWordPieces:
    """The tokens of each tag word, to build targets and to read generated tokens back as words.

    Reading works on token ids, not on decoded text: a WordPiece tokenizer decodes `severe_toxic` as
    `severe _ toxic`, so splitting decoded text on spaces would not give the words back.
    """

    def __init__(self, codec: TagStringCodec, tokenizer, eos_id: int):
        self.codec, self.eos_id, self.tokenizer = codec, eos_id, tokenizer
        self.pieces = {word: tokenizer(word, add_special_tokens=False)["input_ids"] for word in codec.words}
        firsts = [pieces[0] for pieces in self.pieces.values()]
        if any(not pieces for pieces in self.pieces.values()) or len(set(firsts)) != len(firsts):
            clashing = [w for w, p in self.pieces.items() if not p or firsts.count(p[0]) > 1]
            raise ValueError(
                f"Tag words {clashing} start with the same token under this tokenizer; the "
                "text-to-text tagger needs a distinct first token per tag. Rename the tags."
            )
        self.first_token_ids = [self.pieces[tag][0] for tag in codec.tags]

    def target_ids(self, row) -> list[int]:
        return [piece for word in self.codec.encode_words(row) for piece in self.pieces[word]] + [self.eos_id]

    def read(self, ids: list[int]) -> tuple[list[str], list[int]]:
        """The words of generated ids (a token that starts no tag word is read as an unknown word of its
        own) and the positions where a word can start: 0 and after each word, up to the end token."""
        words, starts, position = [], [], 0
        while position < len(ids) and ids[position] not in (self.eos_id, self.tokenizer.pad_token_id):
            starts.append(position)
            word = self._word_at(ids, position)
            if word is None:
                words.append(self.tokenizer.convert_ids_to_tokens(ids[position]))
                position += 1
            else:
                words.append(word)
                position += len(self.pieces[word])
        starts.append(position)  # the end-of-sequence step: stopping here means no further tag
        return words, starts

    def _word_at(self, ids: list[int], position: int) -> str | None:
        matches = [w for w, p in self.pieces.items() if ids[position : position + len(p)] == p]
        return max(matches, key=lambda w: len(self.pieces[w])) if matches else None


class TextToTextTagger(TaggerModule):
    """Writes tags as text with a sequence-to-sequence model; scores each tag from the decoder.

    Args:
        backbone: model (`seq2seq`), encoder to warm-start from (`bert2bert`) or tokenizer (`t5`).
        architecture: `seq2seq`, `bert2bert` or `t5` (see the module docstring).
        labels: tag names (linked to `data.label_columns` by the CLI).
        learning_rate, weight_decay, warmup_fraction: AdamW and the linear schedule, as the encoder tagger.
        pretrained: False starts from random weights of the same architecture.
        model_config: the full config (filled in automatically, so a checkpoint loads offline).
        max_length, truncation: how inputs are cut (linked to `data.max_length` and `data.truncation`).
        prefix: the task prefix put before every comment.
        none_word: the target word of a row with no tag.
        max_target_length: the most tokens generated.
    """

    family, config_key = "text2text", "model_config"

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        architecture: Architecture = "bert2bert",
        labels: list[str] = list(LABELS),  # noqa: B006 - LightningCLI shows the default; never mutated
        learning_rate: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.1,
        pretrained: bool = True,
        model_config: dict | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        truncation: Truncation = "head",
        prefix: str = PREFIX,
        none_word: str = NONE_WORD,
        max_target_length: int = 32,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.codec = TagStringCodec(labels, none_word)
        self.seq2seq = build_seq2seq(backbone, architecture, pretrained, model_config, self.tokenizer).train()
        self.hparams.model_config = self.seq2seq.config.to_dict()
        config = self.seq2seq.config
        self.pieces = TagWordPieces(self.codec, self.tokenizer, config.eos_token_id)
        self.register_buffer(
            "prefix_ids",
            torch.tensor(self.tokenizer(prefix, add_special_tokens=False)["input_ids"]),
            persistent=False,
        )
        self.end_tokens = len(special_tokens_around(self.tokenizer)[1])  # [SEP] or </s>, kept when cutting
        self.check_room(max_length, backbone)
        self.decoding_issues = {"unknown": 0, "repeated": 0}
        self.add_auroc_metrics()

    # ------------------------------------------------------------------------------------------- inputs
    def check_room(self, max_length: int, backbone: str) -> None:
        """Refuses a max_length beyond the encoder's positions, or too short to hold the prefix and a
        comment."""
        check_max_length(max_length, self.seq2seq.get_encoder(), backbone)
        fixed = len(self.prefix_ids) + len(special_tokens_around(self.tokenizer)[0]) + self.end_tokens
        if max_length <= fixed:
            raise ValueError(
                f"max_length {max_length} leaves no room for the comment: the prefix and special "
                f"tokens take {fixed}; use --data.max_length {fixed + 1} or more."
            )

    def with_prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Inserts the prefix tokens after [CLS] (BERT-style tokenizers) or at the start (T5); the comment is
        cut first where needed, so that the prefixed input still fits `max_length` (the encoder's
        positions)."""
        cls = self.tokenizer.cls_token_id
        cut = 1 if cls is not None and input_ids.shape[1] and bool((input_ids[:, 0] == cls).all()) else 0
        input_ids, attention_mask = self.make_room_for_prefix(input_ids, attention_mask, cut)
        prefix = self.prefix_ids.to(input_ids.device).expand(len(input_ids), -1)
        ids = torch.cat([input_ids[:, :cut], prefix, input_ids[:, cut:]], dim=1)
        mask = torch.cat([attention_mask[:, :cut], torch.ones_like(prefix), attention_mask[:, cut:]], dim=1)
        return ids, mask

    def make_room_for_prefix(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, front: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows (right-padded) cut to `max_length` minus the prefix, as the data module's truncation would
        have cut them at that length: the same head, or head and tail, with the special tokens kept."""
        room = self.hparams.max_length - len(self.prefix_ids)
        if input_ids.shape[1] <= room:
            return input_ids, attention_mask
        lengths = attention_mask.sum(dim=1).tolist()
        rows = [self.cut_row(ids[:length].tolist(), room, front) for ids, length in zip(input_ids, lengths)]
        ids = torch.full(
            (len(rows), max(map(len, rows))), self.tokenizer.pad_token_id or 0, dtype=input_ids.dtype
        )
        mask = torch.zeros_like(ids, dtype=attention_mask.dtype)
        for k, row in enumerate(rows):
            ids[k, : len(row)], mask[k, : len(row)] = torch.tensor(row, dtype=ids.dtype), 1
        return ids.to(input_ids.device), mask.to(attention_mask.device)

    def cut_row(self, ids: list[int], room: int, front: int) -> list[int]:
        if len(ids) <= room:
            return ids
        end = len(ids) - self.end_tokens
        budget = room - front - self.end_tokens
        content = ids[front:end]
        # a head-and-tail cut of a head-and-tail cut keeps the head and tail of the original text
        kept = head_and_tail(content, budget) if self.hparams.truncation == "head_tail" else content[:budget]
        return ids[:front] + kept + ids[end:]

    def setup(self, stage: str) -> None:
        """Refuses partial labels (several sources, or NaN tags): a target is the set of tags a comment
        has, written as words, and it has no way to say "unknown" for one tag; reading unknown as absent
        would teach every tag a source leaves out to be 0."""
        datamodule = getattr(self.trainer, "datamodule", None)
        sources = list(getattr(datamodule, "source_names", None) or [])
        if sources:
            raise DataError(
                f"the text-to-text family cannot train on partial labels (data.sources: {sources}): its "
                "target names the tags a comment has and cannot leave one unknown. Train the encoder "
                "(toxicity.models.encoder.ToxicCommentTagger) or the hybrid "
                "(toxicity.models.hybrid.HybridTagger) on several sources, or this family on one fully "
                "labelled source (--data.data_path)."
            )

    def target_ids(self, labels: torch.Tensor) -> torch.Tensor:
        if torch.isnan(labels).any():
            raise DataError(
                "the text-to-text family cannot train on a batch with unknown (NaN) tags; give it fully "
                "labelled rows, or train the encoder or hybrid family."
            )
        """Target token ids of each 0/1 row, padded with -100 (ignored by the loss)."""
        rows = [self.pieces.target_ids(row) for row in labels.round().long().tolist()]
        targets = torch.full((len(rows), max(map(len, rows))), -100, dtype=torch.long)
        for k, row in enumerate(rows):
            targets[k, : len(row)] = torch.tensor(row)
        return targets.to(labels.device)

    # ------------------------------------------------------------------------------------------- scoring
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Per-tag logits (log-odds of the per-tag probability), so every scorer applies a sigmoid as
        usual."""
        probs, _ = self.generate_tags(input_ids, attention_mask)
        return torch.logit(probs, eps=1e-6)

    @torch.no_grad()
    def generate_tags(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, encoder_outputs=None
    ) -> tuple[torch.Tensor, list]:
        """(per-tag probabilities, decoded tags per row), from one greedy generation (`encoder_outputs`: the
        prefixed input already encoded, so evaluation runs the encoder once for its loss and generation)."""
        ids, mask = self.with_prefix(input_ids, attention_mask)
        config = self.seq2seq.config
        extra = {} if encoder_outputs is None else {"encoder_outputs": encoder_outputs}
        out = self.seq2seq.generate(
            input_ids=ids,
            attention_mask=mask,
            **extra,
            max_new_tokens=self.hparams.max_target_length,
            do_sample=False,
            num_beams=1,
            output_logits=True,
            return_dict_in_generate=True,
            decoder_start_token_id=config.decoder_start_token_id,
            eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id,
        )
        step_probs = torch.stack(out.logits, dim=1).float().softmax(-1)[:, :, self.pieces.first_token_ids]
        generated = out.sequences[:, 1:].tolist()  # after the decoder start token
        probs = torch.zeros(len(generated), len(self.labels), device=step_probs.device)
        decoded = []
        for row, ids_row in enumerate(generated):
            words, starts = self.pieces.read(ids_row)
            starts = [s for s in starts if s < step_probs.shape[1]]
            probs[row] = step_probs[row, starts].max(dim=0).values
            decoded.append(self.codec.decode_words(words))
        return probs, decoded

    def attribution_hooks(self):
        """Gradient methods refused: a tag's score is the largest first-token probability over the steps of a
        greedy generation, a choice with no gradient through the steps. Occlusion needs scores only."""
        from toxicity.models.attribution import AttributionHooks

        return AttributionHooks(
            refusal="its tag scores come from greedy generation (the largest first-token probability over "
            "the decoding steps), which has no gradient to integrate; explain it with method='occlusion' "
            "(each word left out and the text scored again), which works for every family."
        )

    # ------------------------------------------------------------------------------------------ training
    def _loss(self, batch: dict, encoder_outputs=None) -> torch.Tensor:
        ids, mask = self.with_prefix(batch["input_ids"], batch["attention_mask"])
        return self.seq2seq(
            input_ids=ids,
            attention_mask=mask,
            encoder_outputs=encoder_outputs,
            labels=self.target_ids(batch["labels"]),
        ).loss

    def encode(self, batch: dict):
        ids, mask = self.with_prefix(batch["input_ids"], batch["attention_mask"])
        return self.seq2seq.get_encoder()(input_ids=ids, attention_mask=mask, return_dict=True)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log(
            "train_loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(batch["labels"])
        )
        return loss

    def _evaluation_step(self, batch: dict, stage: str) -> None:
        encoded = self.encode(batch)  # once, for the loss and for generation
        loss = self._loss(batch, encoded)
        probs, decoded = self.generate_tags(batch["input_ids"], batch["attention_mask"], encoded)
        getattr(self, f"{stage}_auroc").update(probs, batch["labels"])
        decisions = torch.tensor([d.row for d in decoded], device=probs.device)  # the generated tags
        getattr(self, f"{stage}_f1").update(decisions, batch["labels"].long())
        self.count_decoding_issues(decoded)
        self.log(
            f"{stage}_loss",
            loss,
            prog_bar=True,
            on_step=False,
            on_epoch=True,
            batch_size=len(batch["labels"]),
            sync_dist=True,
        )

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def count_decoding_issues(self, decoded: list[DecodedTags]) -> None:
        self.decoding_issues["unknown"] += sum(len(d.unknown) for d in decoded)
        self.decoding_issues["repeated"] += sum(len(d.repeated) for d in decoded)

    def _log_epoch(self, stage: str) -> None:
        self._log_auroc(stage)
        for kind, count in self.decoding_issues.items():
            self.log(f"{stage}_{kind}_words", float(count))  # generated words that were no tag / a repeat
        self.decoding_issues = dict.fromkeys(self.decoding_issues, 0)

    def on_train_epoch_end(self) -> None:
        pass  # training is teacher-forced: no generation, so no training AUROC

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")
