"""Model shapes from stored configs: no custom code, and max_length within the encoder's positions."""

from __future__ import annotations

from torch import nn


def config_from_dict(config: dict):
    """A transformers config from a saved dict; one naming custom code (`auto_map`) is refused."""
    from transformers import CONFIG_MAPPING

    if names_custom_code(config):
        raise ValueError(
            "The model config names custom code (auto_map); toxicity never runs code from a "
            "config or checkpoint. Use a model that transformers supports natively."
        )
    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"The model config's model_type {model_type!r} is not one transformers knows.")
    return CONFIG_MAPPING[model_type].from_dict(config)


def names_custom_code(config) -> bool:
    """Whether a config dict, or any config nested in it (an encoder-decoder's halves), has an `auto_map`."""
    if not isinstance(config, dict):
        return False
    return bool(config.get("auto_map")) or any(names_custom_code(value) for value in config.values())


def position_limit(encoder: nn.Module) -> int | None:
    """The most input positions `encoder` can embed; None for relative positions (T5), which have no limit."""
    for name, module in encoder.named_modules():
        if name.endswith(("position_embeddings", "embed_positions")) and isinstance(module, nn.Embedding):
            offset = getattr(module, "offset", None)  # BART-style tables keep `offset` extra rows
            if offset is None:  # RoBERTa-style positions start after the padding index
                offset = 0 if module.padding_idx is None else module.padding_idx + 1
            return module.num_embeddings - offset
    return None


def check_max_length(max_length: int, encoder: nn.Module, backbone: str) -> None:
    """Refuses a `max_length` beyond the encoder's position embeddings (scoring a long text would crash)."""
    limit = position_limit(encoder)
    if limit is not None and max_length > limit:
        raise ValueError(
            f"max_length {max_length} is more than the {limit} positions the encoder of {backbone} "
            f"can embed; use --data.max_length {limit} or less."
        )
