"""The model families (encoder, text-to-text, hybrid) on a shared LightningModule base, their backbones,
and the registry that names them in checkpoints (with plugin families from outside the package)."""
