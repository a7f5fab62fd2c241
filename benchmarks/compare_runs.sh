#!/usr/bin/env bash
# The four offline recipes on ../shared/data/jigsaw_sample, one after another, same budget each
# (3 epochs, all 2,597 training rows, early stopping on val_loss), then `toxicity.compare`.
# Runs land in lightning_logs/jigsaw_sample-compare/version_0..3 (in this order).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/jigsaw_sample}
for recipe in cpu_minilm encoder_from_scratch text2text_minilm text2text_from_scratch; do
    /usr/bin/time -f "$recipe: %e s wall, %M KB peak RSS" python -m toxicity.fit --config "experiments/$recipe.yaml" \
        --data.data_path "$DATA" --data.n_clean_train null --trainer.max_epochs 3 \
        --trainer.enable_progress_bar false --trainer.log_every_n_steps 5 --best_link null \
        --trainer.logger.init_args.name jigsaw_sample-compare
done
