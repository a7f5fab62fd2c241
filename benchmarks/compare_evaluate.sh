#!/usr/bin/env bash
# After benchmarks/compare_runs.sh: each run's best checkpoint on Kaggle's scored test rows of
# jigsaw_sample, the pretrained ones on TweetEval offensive (label -> toxic, cross-dataset), and the
# compare table of the four runs. Reports land in reports/compare-jigsaw_sample/, the compare table in
# benchmarks/results/compare-jigsaw_sample-<YYYY-MM-DD>-<machine>/ (the one naming rule, benchmarks/common.py).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=lightning_logs/jigsaw_sample-compare
OUT=reports/compare-jigsaw_sample
for version in 0 1 2 3; do
    python -m toxicity.evaluate --ckpt "$RUNS/version_$version/checkpoints/best.ckpt" --split test \
        --output "$OUT/version_$version-test" --overwrite > /dev/null
done
for version in 0 2; do  # the pretrained encoder and text-to-text runs
    python -m toxicity.evaluate --ckpt "$RUNS/version_$version/checkpoints/best.ckpt" \
        --data ../shared/data/tweeteval_offensive --split test --label-map label=toxic \
        --output "$OUT/version_$version-tweeteval_offensive" --overwrite > /dev/null
done
NAME=$(python -c 'import time; from benchmarks.common import machine_label, result_name
print(result_name("compare", time.strftime("%Y-%m-%d", time.gmtime()), machine_label(), "jigsaw_sample"))')
python -m toxicity.compare "$RUNS"/version_{0,1,2,3} --output "benchmarks/results/$NAME" --overwrite
