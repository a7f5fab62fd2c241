"""The model families (encoder, text-to-text) on a shared LightningModule base, their backbones, and the
registry that names them in checkpoints."""
